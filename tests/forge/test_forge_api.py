"""Reimagine and the SDXL Refiner post-step in a real Forge, over HTTP (order matters: each model load costs
15-35 s on a CPU, so the tests are arranged to load each model as few times as possible)."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from .conftest import BASE, REFINER, UNCLIP, UNCLIP_L

SMALL = {"width": 64, "height": 64, "steps": 2}
POST_STEP = "Reimagine SDXL Refiner"


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def reference() -> str:
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")
    return png_b64(Image.fromarray(pixels))


def pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(np.int16)


def variations(forge, **values):
    body = {"images": [{"image": reference(), "weight": 1}], "prompt": "a cat", **SMALL, **values}
    return forge.post("/reimagine/v1/variations", json=body)


def txt2img(forge, post_step: dict | None = None, **extra):
    body = {"prompt": "a cat", "seed": 3, "steps": 4, "width": 64, "height": 64, "sampler_name": "Euler", **extra}
    if post_step is not None:
        body["alwayson_scripts"] = {POST_STEP: {"args": [{"enabled": True, "refiner": REFINER, **post_step}]}}
    return forge.post("/sdapi/v1/txt2img", json=body)


def infotexts(response) -> list[str]:
    import json

    return json.loads(response.json()["info"])["infotexts"]


def test_routes_answer_as_on_a1111(forge):
    assert forge.get("/reimagine/v1/version").json()["host"] == "forge"
    kinds = forge.get("/reimagine/v1/models").json()["kinds"]
    assert (kinds["unclip-h"], kinds["sdxl-base"], kinds["sdxl-refiner"]) == ([UNCLIP], [BASE], [REFINER])
    assert kinds["unclip-l"] == [UNCLIP_L]
    assert "noise_level" in forge.get("/reimagine/v1/schema").json()["properties"]


@pytest.mark.parametrize(
    ("values", "loc"),
    [
        ({"noise_level": 5000}, ["body", "noise_level"]),
        ({"model": "no-such-model"}, ["body", "model"]),
        ({"model": REFINER}, ["body", "model"]),  # an SDXL refiner is neither unCLIP nor an SDXL base
        ({"steps": "many"}, ["body", "steps"]),
    ],
)
def test_bad_request_is_422_naming_the_field(forge, values, loc):
    response = variations(forge, **values)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_reimagine_reproducible_noise_level_matters_user_model_untouched(forge):
    first = variations(forge, n=2, seed=5, noise_level=0)
    assert first.status_code == 200, first.text
    job = first.json()
    assert job["seeds"] == [5, 6] and not job["interrupted"] and len(job["images"]) == 2
    assert "Reimagine noise level: 0" in job["info"][0] and "Reimagine references: " in job["info"][0]
    again = variations(forge, n=1, seed=6, noise_level=0).json()  # image 2 of a job = a job of its seed alone
    assert np.array_equal(pixels(again["images"][0]), pixels(job["images"][1]))
    noised = variations(forge, n=1, seed=5, noise_level=800).json()
    assert "Reimagine noise level: 800" in noised["info"][0]
    assert np.abs(pixels(noised["images"][0]) - pixels(job["images"][0])).max() > 0
    assert forge.options()["sd_model_checkpoint"] == BASE


def test_reimagine_interrupt_returns_what_was_done(forge):
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=variations(forge, n=3, seed=1, steps=12)))
    worker.start()
    deadline = time.time() + 300
    while time.time() < deadline and forge.get("/sdapi/v1/progress").json()["state"]["sampling_step"] < 2:
        time.sleep(0.3)
    assert forge.post("/sdapi/v1/interrupt").status_code == 200
    worker.join(timeout=300)
    job = result["r"].json()
    assert result["r"].status_code == 200 and job["interrupted"] and len(job["images"]) < 3
    assert forge.options()["sd_model_checkpoint"] == BASE


def test_refused_post_step_value_is_422(forge):
    response = txt2img(forge, {"refiner_mode": "handoff", "switch_at": 5})
    assert response.status_code == 422, response.text
    assert "switch_at=5 is not allowed" in response.text


def test_handoff_with_forge_refiner_also_on(forge):
    post_step = {"refiner_mode": "handoff", "switch_at": 0.5, "keep_base": True}
    response = txt2img(forge, post_step, refiner_checkpoint=REFINER, refiner_switch_at=0.5)
    assert response.status_code == 200, response.text
    refined, base = infotexts(response)
    assert len(response.json()["images"]) == 2
    assert "Post-refiner mode: handoff" in refined and "Post-refiner handoff: " in refined
    assert "Post-refiner note: " in refined and "\nRefiner: " not in refined and ", Refiner: " not in refined
    assert "Post-refiner output: base" in base
    assert forge.options()["sd_model_checkpoint"] == BASE
    swaps = forge.get("/reimagine/v1/swaps").json()["swaps"]
    assert swaps and swaps[-1]["to"].startswith(REFINER)


def test_refine_mode_and_user_model_back_for_the_next_job(forge):
    response = txt2img(
        forge, {"refiner_mode": "refine", "refine_strength": 0.5, "refiner_steps": 2, "keep_base": False}
    )
    assert response.status_code == 200, response.text
    (text,) = infotexts(response)
    assert "Post-refiner mode: refine" in text and "Post-refiner steps run: 1" in text
    assert forge.options()["sd_model_checkpoint"] == BASE
    plain = txt2img(forge)  # Forge reloads the user's model for the next job
    assert plain.status_code == 200 and "Model: real-sdxl-base" in infotexts(plain)[0]
    assert "Post-refiner" not in infotexts(plain)[0]
