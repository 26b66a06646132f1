"""One refiner residency per job on Forge: batch count 2 with the post-step loads the refiner once and gives the
images and infotexts that refining batch by batch gives (real-size checkpoints, so loads are real disk loads)."""

from __future__ import annotations

import re
import time

import numpy as np

from sd_reimagine.refiner_plan import RESIDENCY_AUTO, RESIDENCY_BATCH
from sd_reimagine.webui.settings import REFINER_RESIDENCY

from .conftest import BASE, REFINER
from .test_forge_api import infotexts, pixels, txt2img

LOADED = re.compile(r"Model loaded in [0-9.]+s")
POST = {"refiner_mode": "refine", "refine_strength": 0.5, "refiner_steps": 2, "keep_base": True}


def job(forge, residency: str) -> dict:
    """One batch-count-2 job with the post-step; what it returned, its swaps and the loads its log shows."""
    assert forge.post("/sdapi/v1/options", json={REFINER_RESIDENCY: residency}).status_code == 200
    swaps_before = forge.get("/reimagine/v1/swaps").json()["last"]
    loads_before = len(LOADED.findall(forge.log_text()))
    started = time.perf_counter()
    response = txt2img(forge, POST, n_iter=2, steps=2)
    assert response.status_code == 200, response.text
    swaps = forge.get("/reimagine/v1/swaps").json()["swaps"]
    return {
        "images": [pixels(b64) for b64 in response.json()["images"]],
        "infotexts": infotexts(response),
        "refiner_loads": sum(1 for s in swaps if s["number"] > swaps_before and s["to"].startswith(REFINER)),
        "loads": len(LOADED.findall(forge.log_text())) - loads_before,
        "seconds": time.perf_counter() - started,
    }


def test_batch_count_2_refines_in_one_refiner_load_with_the_same_images(forge):
    per_batch = job(forge, RESIDENCY_BATCH)
    deferred = job(forge, RESIDENCY_AUTO)  # Forge keeps one model resident: Automatic picks one refiner load
    print(
        f"\nForge batch count 2: per batch {per_batch['seconds']:.1f} s, {per_batch['loads']} loads; "
        f"one residency {deferred['seconds']:.1f} s, {deferred['loads']} loads"
    )
    assert per_batch["refiner_loads"] == 2 and deferred["refiner_loads"] == 1
    assert deferred["loads"] < per_batch["loads"]
    assert len(deferred["images"]) == len(per_batch["images"]) == 4  # 2 refined + 2 kept base images
    for ours, reference in zip(deferred["images"], per_batch["images"], strict=True):
        assert np.abs(ours - reference).max() <= 1
    assert deferred["infotexts"] == per_batch["infotexts"]
    assert "Post-refiner output: base" in deferred["infotexts"][-1]
    assert forge.options()["sd_model_checkpoint"] == BASE
