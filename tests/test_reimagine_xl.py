"""Reimagine XL on tiny weights: the formula against an independent reference, the vision tower, the job, the CLI."""

import math

import numpy as np
import pytest
import torch

from sd_reimagine.clip_vision import VisionTower, find_image_encoder, load_vision_tower
from sd_reimagine.errors import ModelNotAvailableError, ParamError
from sd_reimagine.images import open_image
from sd_reimagine.infotext import parse_infotext
from sd_reimagine.reimagine_plan import ReimagineFacts, plan_reimagine
from sd_reimagine.reimagine_xl import (
    BIGG_ID,
    CLIP_VISION_G_FILE,
    XL_ENGINE,
    alphas_cumprod,
    clip_pixels,
    context_for_prompt,
    pooled_for_seed,
)
from sd_reimagine.testing.tiny_clip_vision import write_tiny_clip_vision

from .conftest import noise_image
from .test_cli import cli

XL_FACTS = ReimagineFacts("tiny-sdxl-base", 4, engine=XL_ENGINE, image_encoder="tiny-clip-vision-g")


def test_the_noise_schedule_is_the_cosine_schedule_diffusers_names_squaredcos_cap_v2():
    from diffusers import DDPMScheduler

    reference = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    assert torch.allclose(alphas_cumprod().float(), reference.float(), atol=1e-6)


def plan_of(values, references):
    return plan_reimagine({"n": 1, "seed": 3, **values}, references, XL_FACTS)


def test_pooled_is_the_noised_weighted_image_embedding_mixed_with_the_text():
    a, b = open_image(noise_image(0)), open_image(noise_image(1))
    embeds, text = torch.randn(2, 8), torch.randn(1, 8)
    plan = plan_of({"noise_level": 300, "image_text_mix": 0.25}, [(a, 3.0), (b, 1.0)])
    got = pooled_for_seed(embeds, plan, torch.Generator().manual_seed(3), text)
    # independent reference: the formula of reimagine_xl.py written out
    generator = torch.Generator().manual_seed(3)
    noises = [torch.randn((1, 8), generator=generator) for _ in range(2)]
    alpha = float(alphas_cumprod()[300])
    noised = [math.sqrt(alpha) * embeds[i] + math.sqrt(1 - alpha) * noises[i][0] for i in range(2)]
    expected = 0.75 * (0.75 * noised[0] + 0.25 * noised[1]) + 0.25 * text[0]
    assert torch.allclose(got[0], expected, atol=1e-5)


def test_mix_one_is_the_text_pooled_embedding_and_an_empty_prompt_zeroes_the_context():
    image = open_image(noise_image(0))
    text = torch.randn(1, 8)
    plan = plan_of({"noise_level": 0, "image_text_mix": 1.0}, [(image, 1.0)])
    assert torch.equal(pooled_for_seed(torch.randn(1, 8), plan, torch.Generator().manual_seed(0), text), text)
    context = torch.randn(1, 77, 16)
    assert torch.equal(context_for_prompt(context, "a cat"), context)
    assert not context_for_prompt(context, "  ").any()


def test_an_image_encoder_of_another_size_is_refused_naming_image_encoder():
    plan = plan_of({}, [(open_image(noise_image(0)), 1.0)])
    with pytest.raises(ParamError, match=r"^image_encoder=.*16-value.*\(32 values; 1280 for real SDXL"):
        pooled_for_seed(torch.randn(1, 16), plan, torch.Generator(), torch.randn(1, 32))


def test_clip_pixels_resize_the_short_side_crop_the_centre_and_normalise():
    from PIL import Image

    pixels = clip_pixels(Image.new("RGB", (300, 150), (255, 0, 0)), 32)
    assert pixels.shape == (1, 3, 32, 32)
    assert pixels[0, 0].allclose(torch.tensor((1 - 0.48145466) / 0.26862954))
    assert pixels[0, 1].allclose(torch.tensor(-0.4578275 / 0.26130258))


def test_the_tower_loads_from_a_clip_vision_g_file_with_the_transformers_weights(tmp_path):
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from sd_reimagine.testing.tiny_clip_vision import tiny_vision_config

    path = write_tiny_clip_vision(tmp_path / CLIP_VISION_G_FILE)
    tower = load_vision_tower("", [tmp_path])  # empty: the file in the folder
    assert tower.name == "clip_vision_g" and tower.embedding_size == 32
    reference = CLIPVisionModelWithProjection(CLIPVisionConfig(**tiny_vision_config()))
    reference.load_state_dict(load_file(str(path)), strict=False)
    image = open_image(noise_image(4))
    expected = reference(pixel_values=clip_pixels(image.image, 32)).image_embeds
    assert torch.allclose(tower.embed(image), expected, atol=1e-5)
    assert isinstance(tower, VisionTower) and image.digest in tower.cache


def test_a_missing_tower_says_which_file_to_put_where(tmp_path):
    assert find_image_encoder("", [tmp_path]) == BIGG_ID
    with pytest.raises(ModelNotAvailableError) as error:
        load_vision_tower("", [tmp_path / "clip_vision"])  # offline (HF_HUB_OFFLINE=1 in conftest)
    message = str(error.value)
    assert BIGG_ID in message and CLIP_VISION_G_FILE in message and str(tmp_path / "clip_vision") in message
    with pytest.raises(ModelNotAvailableError, match="no such file"):
        load_vision_tower(str(tmp_path / "nowhere.safetensors"))


def test_a_file_of_another_layout_is_refused_naming_the_layout(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "open_clip_layout.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(4, 3, 2, 2)}, str(path))
    with pytest.raises(ParamError, match=r"^image_encoder=.*transformers layout"):
        load_vision_tower(str(path))


@pytest.fixture(scope="module")
def xl_runner(tiny_models):
    from sd_reimagine.standalone.session import Session

    session = Session()
    return session.reimagine_xl(str(tiny_models["tiny-sdxl-base"]), str(tiny_models["tiny-clip-vision-g"]))


def xl_values(tiny_models, **values):
    model, encoder = str(tiny_models["tiny-sdxl-base"]), str(tiny_models["tiny-clip-vision-g"])
    return {"model": model, "image_encoder": encoder, "steps": 2, "width": 64, "height": 64, "seed": 11, **values}


def pixels(result, index=0):
    return np.asarray(result.images[index].image).astype(int)


def test_a_job_equals_diffusers_own_sdxl_call_with_the_formula_in_the_pooled_slot(tiny_models, xl_runner):
    from sd_reimagine.mixing import Reference

    image = open_image(noise_image(5))
    values = xl_values(tiny_models, prompt="a lighthouse", noise_level=250)
    ours = xl_runner([Reference(image, 1.0)], values)
    pipe = xl_runner.pipe
    context, negative, text_pooled, negative_pooled = pipe.encode_prompt(
        "a lighthouse", device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True
    )
    generator = torch.Generator().manual_seed(11)
    noise = torch.randn((1, 32), generator=generator)
    alpha = float(alphas_cumprod()[250])
    pooled = math.sqrt(alpha) * xl_runner.tower.embed(image) + math.sqrt(1 - alpha) * noise
    reference = pipe(
        prompt_embeds=context,
        pooled_prompt_embeds=pooled,
        negative_prompt_embeds=negative,
        negative_pooled_prompt_embeds=negative_pooled,
        num_inference_steps=2,
        guidance_scale=7.0,
        width=64,
        height=64,
        generator=generator,
    ).images[0]
    assert np.array_equal(pixels(ours), np.asarray(reference).astype(int))


def test_seeds_reproduce_and_noise_level_image_and_mix_matter(tiny_models, xl_runner):
    from sd_reimagine.mixing import Reference

    a, b = Reference(open_image(noise_image(0)), 1.0), Reference(open_image(noise_image(9)), 1.0)
    three = xl_runner([a], xl_values(tiny_models, n=3))
    second = xl_runner([a], xl_values(tiny_models, seed=12))
    assert np.abs(pixels(three, 1) - pixels(second)).max() <= 2  # image i of a job = a job with seed + i
    assert np.abs(pixels(xl_runner([a], xl_values(tiny_models, noise_level=900))) - pixels(three)).max() > 10
    assert np.abs(pixels(xl_runner([b], xl_values(tiny_models))) - pixels(three)).max() > 10
    assert np.abs(pixels(xl_runner([a], xl_values(tiny_models, image_text_mix=1.0))) - pixels(three)).max() > 10
    fields = parse_infotext(three.infotexts[0])[2]
    assert fields["Reimagine image encoder"] == "tiny-clip-vision-g" and fields["Model"] == "tiny-sdxl-base"
    assert fields["Seed"] == "11" and fields["Reimagine generation"] == "1"


def test_structure_strength_starts_from_the_reference_and_lineage_goes_on(tiny_models, xl_runner):
    from sd_reimagine.mixing import Reference

    image = open_image(noise_image(2))
    first = xl_runner([Reference(image, 1.0)], xl_values(tiny_models, structure_strength=0.5, steps=4))
    assert "Reimagine structure strength: 0.5" in first.infotexts[0]
    child_image = first.images[0].image.copy()
    child_image.info["parameters"] = first.infotexts[0]
    child = xl_runner([Reference(open_image(child_image), 1.0)], xl_values(tiny_models))
    fields = parse_infotext(child.infotexts[0])[2]
    assert fields["Reimagine generation"] == "2" and fields["Reimagine parent"] == open_image(child_image).short_hash


def test_unclip_jobs_record_no_image_encoder(tiny_models):
    plan = plan_reimagine({"image_encoder": "x.safetensors"}, [(open_image(noise_image(0)), 1.0)], ReimagineFacts("u"))
    assert plan.values["image_encoder"] == "" and "Reimagine image encoder" not in plan.fields()


def test_cli_runs_reimagine_xl_on_an_sdxl_base_and_refuses_a_mismatched_encoder(tiny_models, tmp_path):
    image = tmp_path / "a.png"
    noise_image(3).save(image)
    base = tiny_models["tiny-sdxl-base"]
    common = ("variations", "--model", base, "--image", image, "--steps", 1, "--width", 64, "--height", 64)
    ok = cli(*common, "--image-encoder", tiny_models["tiny-clip-vision-g"], "--out", tmp_path / "out")
    assert ok.returncode == 0, ok.stderr
    saved = sorted((tmp_path / "out" / "reimagine").glob("*.png"))
    assert len(saved) == 1 and "Reimagine image encoder: tiny-clip-vision-g" in open_image(saved[0]).infotext
    small = write_tiny_clip_vision(tmp_path / "small.safetensors", projection_dim=16)
    bad = cli(*common, "--image-encoder", small, "--out", tmp_path / "bad")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert bad.stderr.startswith("error: image_encoder=") and "16-value" in bad.stderr
