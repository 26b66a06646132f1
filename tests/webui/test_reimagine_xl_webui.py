"""Reimagine XL inside a real WebUI 1.10.1: the WebUI's SDXL model and samplers, the tiny bigG-layout image encoder
in models/clip_vision, the pooled slot carrying the image, the user's model restored."""

from __future__ import annotations

import numpy as np
import pytest

from sd_reimagine.infotext import parse_infotext

from .test_reimagine_webui import USER_MODEL, assert_user_model_back, noise_png, pixels, solid_png

XL_MODEL = "tiny-sdxl-base"


@pytest.fixture(scope="module", autouse=True)
def user_state(webui):
    options = {"sd_model_checkpoint": f"{USER_MODEL}.safetensors", "sd_vae": "Automatic"}
    assert webui.post("/sdapi/v1/options", json=options).status_code == 200
    return webui


def xl_body(**overrides) -> dict:
    values = {"model": XL_MODEL, "seed": 7, "steps": 3, "width": 64, "height": 64, "sampler": "Euler a"}
    values["images"] = [{"image": noise_png(0), "weight": 1.0}]
    return {**values, **overrides}


def xl_job(webui, **overrides) -> dict:
    response = webui.post("/reimagine/v1/variations", json=xl_body(**overrides))
    assert response.status_code == 200, response.text
    return response.json()


def test_xl_is_listed_and_runs_on_the_sdxl_base_with_the_user_model_restored(webui):
    models = webui.get("/reimagine/v1/models").json()
    assert any(XL_MODEL in str(entry) for entry in models.values()), models
    result = xl_job(webui, prompt="a lighthouse", noise_level=200)
    fields = parse_infotext(result["info"][0])[2]
    assert fields["Model"].startswith(XL_MODEL), fields
    assert fields["Reimagine image encoder"] == "clip_vision_g" and fields["Reimagine noise level"] == "200"
    assert fields["Sampler"] == "Euler a" and fields["Seed"] == "7"
    assert_user_model_back(webui)


def test_same_seed_reproduces_and_noise_image_and_mix_matter(webui):
    first = pixels(xl_job(webui)["images"][0])
    assert np.array_equal(first, pixels(xl_job(webui)["images"][0]))
    assert np.abs(pixels(xl_job(webui, noise_level=900)["images"][0]) - first).max() > 8
    other = [{"image": solid_png((250, 20, 20)), "weight": 1.0}]  # same seed, exact repeat: any change is the image
    assert np.abs(pixels(xl_job(webui, images=other)["images"][0]) - first).max() > 2
    assert np.abs(pixels(xl_job(webui, image_text_mix=1.0)["images"][0]) - first).max() > 8


def test_mix_one_is_the_webuis_own_sdxl_txt2img_and_mix_zero_is_not(webui):
    """At mix 1 the pooled slot holds the prompt's own embedding: the WebUI's txt2img of the same job, pixel for
    pixel; so the hook changes the conditioning and nothing else (noise, sampler, decode)."""
    job = {"prompt": "a red boat", "seed": 21, "steps": 3, "width": 64, "height": 64, "sampler_name": "Euler a"}
    override = {"sd_model_checkpoint": f"{XL_MODEL}.safetensors"}
    plain = webui.post(
        "/sdapi/v1/txt2img",
        json={**job, "cfg_scale": 7.0, "override_settings": override, "override_settings_restore_afterwards": True},
    )
    assert plain.status_code == 200, plain.text
    plain_pixels = pixels(plain.json()["images"][0])
    ours = xl_job(webui, prompt="a red boat", seed=21, image_text_mix=1.0)
    assert np.array_equal(pixels(ours["images"][0]), plain_pixels)
    image_only = xl_job(webui, prompt="a red boat", seed=21, image_text_mix=0.0)
    assert np.abs(pixels(image_only["images"][0]) - plain_pixels).max() > 8


def test_n_images_have_consecutive_seeds_and_structure_strength_runs(webui):
    two = xl_job(webui, n=2)
    assert two["seeds"] == [7, 8]
    single = xl_job(webui, seed=8)
    assert np.abs(pixels(two["images"][1]) - pixels(single["images"][0])).max() <= 1
    structured = xl_job(webui, structure_strength=0.5, steps=4)
    assert "Reimagine structure strength: 0.5" in structured["info"][0]
    assert_user_model_back(webui)


def test_a_missing_image_encoder_is_a_422_before_any_swap(webui):
    before = webui.get("/reimagine/v1/swaps").json()["last"]
    response = webui.post("/reimagine/v1/variations", json=xl_body(image_encoder="/nowhere/clip_vision_g.safetensors"))
    assert response.status_code == 422, response.text
    detail = str(response.json()["detail"])
    assert "image_encoder" in detail and "clip_vision_g.safetensors" in detail and "clip_vision" in detail
    assert webui.get("/reimagine/v1/swaps").json()["last"] == before
    assert_user_model_back(webui)
