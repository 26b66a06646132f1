"""One refiner residency per job in a real WebUI 1.10.1: batch count 4 at `sd_checkpoints_limit` 1 loads the refiner
once and the base once, and returns, names and saves exactly what the batch-by-batch order does; the Automatic
setting picks one residency at limit 1 and batch by batch at limit 2 (both models resident)."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from pathlib import Path

import pytest

from sd_reimagine.refiner_plan import RESIDENCY_AUTO, RESIDENCY_BATCH, RESIDENCY_ONE
from sd_reimagine.webui.settings import REFINER_RESIDENCY as SETTING

from .test_refiner_webui import BASE, SCRIPT, fields_of, post_step

LOADED = re.compile(r"(?:Weights|Model) loaded in [0-9.]+s")


@pytest.fixture(scope="module")
def limit_one(webui):
    """The WebUI's default `sd_checkpoints_limit` 1 (every model change a disk load), the SDXL base as user model."""
    before = webui.options()
    options = {"sd_checkpoints_limit": 1, "sd_model_checkpoint": f"{BASE}.safetensors", "samples_save": True}
    assert webui.post("/sdapi/v1/options", json=options).status_code == 200
    yield webui
    restore = {
        k: before[k] for k in ("sd_checkpoints_limit", "sd_model_checkpoint", "samples_save", SETTING) if k in before
    }
    webui.post("/sdapi/v1/options", json=restore)


def pixel_hash(b64: str) -> str:
    """Hash of the pixels (the PNG bytes also hold the infotext, compared on its own)."""
    from io import BytesIO

    from PIL import Image

    return hashlib.sha256(Image.open(BytesIO(base64.b64decode(b64))).convert("RGB").tobytes()).hexdigest()


def run_job(webui, residency: str, mode: str, outdir: Path, steps: int = 4) -> dict:
    """txt2img, batch count 4, with the post-step; returns images, infotexts, saved files, our swaps, loads."""
    options = {SETTING: residency, "outdir_txt2img_samples": str(outdir), "outdir_samples": ""}
    assert webui.post("/sdapi/v1/options", json=options).status_code == 200
    last = webui.get("/reimagine/v1/swaps?after=999999999").json()["last"]
    log_start = len(webui.log_text())
    payload = {
        "prompt": "a red crown",
        "seed": 20,
        "steps": steps,
        "width": 64,
        "height": 64,
        "sampler_name": "Euler a",
        "n_iter": 4,
        "save_images": True,
        "alwayson_scripts": {SCRIPT: {"args": [post_step(mode, refine_strength=0.5, refiner_steps=4)]}},
    }
    response = webui.post("/sdapi/v1/txt2img", json=payload)
    assert response.status_code == 200, response.text[:2000]
    body = response.json()
    import json

    info = json.loads(body["info"])
    swaps = webui.get(f"/reimagine/v1/swaps?after={last}").json()["swaps"]
    files = sorted(outdir.rglob("*.png"))
    return {
        "images": [pixel_hash(image) for image in body["images"]],
        "infotexts": info["infotexts"],
        "files": [(f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files],
        "swaps": [s["action"] for s in swaps],
        "loads": len(LOADED.findall(webui.log_text()[log_start:])),
    }


@pytest.mark.parametrize("mode", ["refine", "handoff"])
def test_batch_count_4_loads_each_model_once_and_makes_the_same_images(limit_one, tmp_path, mode):
    run_job(limit_one, RESIDENCY_ONE, mode, tmp_path / "warm-up")  # the first image after a load may differ by 1/255
    per_batch = run_job(limit_one, RESIDENCY_BATCH, mode, tmp_path / "per-batch")
    one = run_job(limit_one, RESIDENCY_ONE, mode, tmp_path / "one-residency")
    assert per_batch["swaps"] == ["swap", "restore"] * 4
    assert one["swaps"] == ["swap", "restore"]
    assert (per_batch["loads"], one["loads"]) == (8, 2), (per_batch["loads"], one["loads"])
    for a, b in zip(one["infotexts"], per_batch["infotexts"], strict=True):
        assert a == b
    differ = [i for i, (a, b) in enumerate(zip(one["images"], per_batch["images"], strict=True)) if a != b]
    assert not differ, (differ, len(one["images"]))  # grid, 4 refined, 4 kept base images
    assert one["files"] == per_batch["files"] and len(one["files"]) >= 8  # same names, same bytes
    seeds = [fields_of(text)["Seed"] for text in one["infotexts"][1:5]]  # after the grid
    assert seeds == ["20", "21", "22", "23"]
    assert all(fields_of(text)["Post-refiner mode"] == mode for text in one["infotexts"])


def test_automatic_residency_follows_the_checkpoints_limit(limit_one, tmp_path):
    at_one = run_job(limit_one, RESIDENCY_AUTO, "refine", tmp_path / "auto-limit-1")
    assert at_one["swaps"] == ["swap", "restore"]  # every swap a load: one refiner load per job
    assert limit_one.post("/sdapi/v1/options", json={"sd_checkpoints_limit": 2}).status_code == 200
    try:
        run_job(limit_one, RESIDENCY_AUTO, "refine", tmp_path / "warm-up")  # both models loaded from here on
        at_two = run_job(limit_one, RESIDENCY_AUTO, "refine", tmp_path / "auto-limit-2")
        forced = run_job(limit_one, RESIDENCY_ONE, "refine", tmp_path / "forced-one")
    finally:
        assert limit_one.post("/sdapi/v1/options", json={"sd_checkpoints_limit": 1}).status_code == 200
    assert at_two["swaps"] == ["swap", "restore"] * 4 and at_two["loads"] == 0  # both resident: batch by batch
    assert forced["swaps"] == ["swap", "restore"]  # the setting still forces one residency
    assert at_two["infotexts"] == forced["infotexts"] == at_one["infotexts"]
    assert at_two["images"] == forced["images"]


def test_interrupt_while_batches_wait_keeps_every_base_image(limit_one, tmp_path):
    options = {SETTING: RESIDENCY_ONE, "outdir_txt2img_samples": str(tmp_path)}
    assert limit_one.post("/sdapi/v1/options", json=options).status_code == 200
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(job=run_job_raw(limit_one, tmp_path)))
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline:
        job = limit_one.get("/sdapi/v1/progress?skip_current_image=true").json()["state"].get("job", "")
        if "Batch 3 out of 4" in job:
            break
        time.sleep(0.05)
    limit_one.post("/sdapi/v1/interrupt")
    thread.join(timeout=300)
    body = result["job"]
    assert body.status_code == 200, body.text[:2000]
    import json

    infotexts = json.loads(body.json()["info"])["infotexts"]
    assert len(infotexts) >= 2  # the batches that waited come back as their base images
    assert any("refiner not run" in fields_of(text).get("Post-refiner note", "") for text in infotexts)
    assert limit_one.options()["sd_model_checkpoint"].startswith(BASE)
    assert limit_one.get("/reimagine/v1/models").json()["loaded"].startswith(BASE)


def run_job_raw(webui, outdir: Path):
    payload = {
        "prompt": "a red crown",
        "seed": 30,
        "steps": 30,
        "width": 128,
        "height": 128,
        "sampler_name": "Euler a",
        "n_iter": 4,
        "alwayson_scripts": {SCRIPT: {"args": [post_step("refine", refine_strength=0.5, refiner_steps=4)]}},
    }
    return webui.post("/sdapi/v1/txt2img", json=payload)
