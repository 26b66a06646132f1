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
    pixel; so the hook changes the conditioning and nothing else (noise, sampler, decode). The SDXL base is the
    user's model here, so the Reimagine job swaps nothing."""
    job = {"prompt": "a red boat", "seed": 21, "steps": 3, "width": 64, "height": 64, "sampler_name": "Euler a"}
    options = {"sd_model_checkpoint": f"{XL_MODEL}.safetensors"}
    assert webui.post("/sdapi/v1/options", json=options).status_code == 200
    try:
        plain = webui.post("/sdapi/v1/txt2img", json={**job, "cfg_scale": 7.0})
        assert plain.status_code == 200, plain.text
        plain_pixels = pixels(plain.json()["images"][0])
        swaps_before = webui.get("/reimagine/v1/swaps").json()["last"]
        ours = xl_job(webui, prompt="a red boat", seed=21, image_text_mix=1.0)
        assert np.array_equal(pixels(ours["images"][0]), plain_pixels)
        image_only = xl_job(webui, prompt="a red boat", seed=21, image_text_mix=0.0)
        assert np.abs(pixels(image_only["images"][0]) - plain_pixels).max() > 8
        assert webui.get("/reimagine/v1/swaps").json()["last"] == swaps_before  # no needless reload
    finally:
        user = {"sd_model_checkpoint": f"{USER_MODEL}.safetensors"}
        assert webui.post("/sdapi/v1/options", json=user).status_code == 200


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


REFINE = {"enabled": True, "refiner": "tiny-sdxl-refiner", "refiner_mode": "refine", "refine_strength": 0.5}


def test_the_refiner_post_step_runs_after_the_variations_keeping_the_base_image(webui):
    plain = xl_job(webui, seed=31)
    refined = xl_job(webui, seed=31, refiner={**REFINE, "refiner_steps": 2, "keep_base": True})
    assert refined["seeds"] == [31, 31] and len(refined["images"]) == 2
    final, base = (parse_infotext(text)[2] for text in refined["info"])
    assert final["Post-refiner mode"] == "refine" and final["Reimagine image encoder"] == "clip_vision_g"
    assert base.get("Post-refiner output") == "base" and base["Reimagine noise level"] == final["Reimagine noise level"]
    assert np.array_equal(pixels(refined["images"][1]), pixels(plain["images"][0]))  # the kept base = the variation
    assert np.abs(pixels(refined["images"][0]) - pixels(plain["images"][0])).max() > 2
    assert_user_model_back(webui)


def test_a_bad_refiner_value_is_a_422_naming_it(webui):
    response = webui.post("/reimagine/v1/variations", json=xl_body(refiner={**REFINE, "switch_at": 5}))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "refiner", "switch_at"] and "switch_at=5 is not allowed" in error["msg"]
    schema = webui.get("/reimagine/v1/schema").json()
    assert "switch_at" in schema["properties"]["refiner"]["properties"]
