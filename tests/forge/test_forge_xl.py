"""Reimagine XL in a real Forge, over HTTP: the real-size SDXL base on Forge's own SDXL engine and samplers, the tiny
bigG-size image encoder from models/clip_vision, the pooled slot carrying the image, the user's checkpoint kept."""

from __future__ import annotations

import time

import numpy as np

from sd_reimagine.infotext import parse_infotext

from .conftest import BASE
from .test_forge_api import pixels, variations

XL_JOB = {"model": BASE, "prompt": "a cat", "seed": 7, "sampler": "Euler", "schedule_type": "Automatic"}


def xl_job(forge, **overrides) -> dict:
    response = variations(forge, **{**XL_JOB, **overrides})
    assert response.status_code == 200, response.text
    return response.json()


def test_xl_job_on_the_sdxl_base_reproduces_and_keeps_the_user_checkpoint(forge):
    started = time.perf_counter()
    first = xl_job(forge, noise_level=200)
    print(f"\nReimagine XL job (64x64, 2 steps): {time.perf_counter() - started:.1f} s, timings {first['timings']}")
    fields = parse_infotext(first["info"][0])[2]
    assert fields["Model"] == BASE.removesuffix(".safetensors"), fields
    assert fields["Reimagine image encoder"] == "clip_vision_g" and fields["Reimagine noise level"] == "200"
    assert fields["Sampler"] == "Euler" and fields["Seed"] == "7" and first["seeds"] == [7]
    assert forge.options()["sd_model_checkpoint"] == BASE
    started = time.perf_counter()
    again = xl_job(forge, noise_level=200)
    print(f"same job again: {time.perf_counter() - started:.1f} s")
    assert np.array_equal(pixels(again["images"][0]), pixels(first["images"][0]))


def test_mix_one_is_forges_own_txt2img_and_mix_zero_is_not(forge):
    """At mix 1 the pooled slot holds the prompt's own embedding: Forge's txt2img of the same job, pixel for pixel;
    so the hook changes the conditioning and nothing else (noise, sampler, decode)."""
    job = {"prompt": "a cat", "seed": 21, "steps": 2, "width": 64, "height": 64, "cfg_scale": 7.0}
    plain = forge.post("/sdapi/v1/txt2img", json={**job, "sampler_name": "Euler", "scheduler": "Automatic"})
    assert plain.status_code == 200, plain.text
    plain_pixels = pixels(plain.json()["images"][0])
    ours = xl_job(forge, seed=21, cfg_scale=7.0, image_text_mix=1.0)
    assert np.array_equal(pixels(ours["images"][0]), plain_pixels)
    image_only = xl_job(forge, seed=21, cfg_scale=7.0, image_text_mix=0.0)
    difference = np.abs(pixels(image_only["images"][0]) - plain_pixels).max()
    print(f"\nmix 0 vs Forge's txt2img: max pixel difference {difference}")
    assert difference > 0
    assert forge.options()["sd_model_checkpoint"] == BASE


def test_a_missing_image_encoder_is_a_422_before_any_swap(forge):
    before = forge.get("/reimagine/v1/swaps").json()["last"]
    response = variations(forge, **XL_JOB, image_encoder="/nowhere/clip_vision_g.safetensors")
    assert response.status_code == 422, response.text
    detail = str(response.json()["detail"])
    assert "image_encoder" in detail and "clip_vision_g.safetensors" in detail and "clip_vision" in detail
    assert forge.get("/reimagine/v1/swaps").json()["last"] == before
    assert forge.options()["sd_model_checkpoint"] == BASE


def test_the_post_step_runs_after_an_xl_job_keeping_the_variation_as_base(forge):
    from .conftest import REFINER

    plain = xl_job(forge, seed=31)
    post = {"enabled": True, "refiner": REFINER, "refiner_mode": "refine", "refine_strength": 0.5}
    refined = xl_job(forge, seed=31, refiner={**post, "refiner_steps": 2, "keep_base": True})
    assert refined["seeds"] == [31, 31] and len(refined["images"]) == 2
    final, base = (parse_infotext(text)[2] for text in refined["info"])
    assert final["Post-refiner mode"] == "refine" and final["Reimagine image encoder"] == "clip_vision_g"
    assert base.get("Post-refiner output") == "base"
    assert np.abs(pixels(refined["images"][1]) - pixels(plain["images"][0])).max() <= 1  # the kept base
    assert forge.options()["sd_model_checkpoint"] == BASE
