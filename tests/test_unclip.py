"""Reimagine on real tiny diffusers models: parity with diffusers' pipeline, determinism, mixing, batching."""

import numpy as np
import pytest
import torch

from sd_reimagine.errors import ParamError, ReimagineError
from sd_reimagine.images import open_image
from sd_reimagine.mixing import Reference
from sd_reimagine.standalone.unclip import UnclipVariations

from .conftest import noise_image

BASE = {"width": 64, "height": 64, "steps": 3, "cfg_scale": 7.0, "seed": 11}


@pytest.fixture(scope="module")
def runner(unclip_pipe):
    return UnclipVariations(unclip_pipe, "tiny-unclip")


def pixels(runner, references, **values):
    job = runner(references, {**BASE, **values}, output_type="np")
    return [g.image for g in job.images]


@pytest.mark.parametrize(("prompt", "noise_level", "cfg"), [("a fox", 0, 7.0), ("", 300, 4.0), ("x", 999, 1.0)])
def test_equals_diffusers_stable_unclip_img2img(unclip_pipe, runner, image_a, prompt, noise_level, cfg):
    reference = unclip_pipe(
        image_a,
        prompt=prompt,
        negative_prompt="blurry" if cfg > 1 else None,
        noise_level=noise_level,
        num_inference_steps=3,
        guidance_scale=cfg,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(11),
        output_type="np",
    ).images[0]
    ours = pixels(
        runner,
        [Reference(open_image(image_a))],
        prompt=prompt,
        negative_prompt="blurry" if cfg > 1 else "",
        noise_level=noise_level,
        cfg_scale=cfg,
    )[0]
    assert np.abs(ours - reference).max() <= 1e-4


def test_same_seed_same_pixels_other_inputs_other_pixels(runner, image_a, image_b):
    refs = [Reference(open_image(image_a))]
    first = pixels(runner, refs)[0]
    assert np.array_equal(first, pixels(runner, refs)[0])
    assert np.abs(first - pixels(runner, refs, seed=12)[0]).max() > 1e-3
    assert np.abs(first - pixels(runner, refs, noise_level=500)[0]).max() > 1e-3
    assert np.abs(first - pixels(runner, refs, prompt="a red boat")[0]).max() > 1e-3
    mixed = pixels(runner, refs + [Reference(open_image(image_b), 1.0)])[0]
    assert np.abs(first - mixed).max() > 1e-3


def test_weights_are_normalised(runner, image_a, image_b):
    a, b = open_image(image_a), open_image(image_b)
    one = pixels(runner, [Reference(a, 1.0), Reference(b, 3.0)])[0]
    scaled = pixels(runner, [Reference(a, 2.0), Reference(b, 6.0)])[0]
    assert np.abs(one - scaled).max() <= 1e-5
    other = pixels(runner, [Reference(a, 3.0), Reference(b, 1.0)])[0]
    assert np.abs(one - other).max() > 1e-3


def test_zero_weight_reference_changes_nothing(runner, image_a, image_b):
    alone = pixels(runner, [Reference(open_image(image_a))])[0]
    with_zero = pixels(runner, [Reference(open_image(image_a)), Reference(open_image(image_b), 0.0)])[0]
    assert np.array_equal(alone, with_zero)


def test_n_variations_have_seed_plus_i_and_match_single_jobs(runner, image_a):
    refs = [Reference(open_image(image_a))]
    job = runner(refs, {**BASE, "n": 3, "sampler": "Euler a"}, output_type="np")
    assert [g.seed for g in job.images] == [11, 12, 13]
    single = runner(refs, {**BASE, "seed": 13, "sampler": "Euler a"}, output_type="np").images[0]
    assert np.abs(job.images[2].image - single.image).max() <= 1e-4
    assert "Seed: 13" in job.images[2].infotext


def test_image_text_mix(runner, image_a, image_b):
    plain = pixels(runner, [Reference(open_image(image_a))])[0]
    assert np.array_equal(plain, pixels(runner, [Reference(open_image(image_a))], image_text_mix=0.0)[0])
    half = pixels(runner, [Reference(open_image(image_a))], image_text_mix=0.5)[0]
    assert np.abs(plain - half).max() > 1e-3
    # At 1 the image embedding is zeroed: the reference no longer matters, only the prompt (and noise level).
    text_a = pixels(runner, [Reference(open_image(image_a))], image_text_mix=1.0)[0]
    text_b = pixels(runner, [Reference(open_image(image_b))], image_text_mix=1.0)[0]
    assert np.abs(text_a - text_b).max() <= 1e-5


def test_structure_strength_keeps_the_first_reference(runner):
    plain_ref = open_image(noise_image(0))
    dark_ref = open_image(noise_image(0).point(lambda v: v // 4))
    free = pixels(runner, [Reference(dark_ref)], steps=4)[0]
    kept = pixels(runner, [Reference(dark_ref)], steps=4, structure_strength=0.75)[0]
    plain_kept = pixels(runner, [Reference(plain_ref)], steps=4, structure_strength=0.75)[0]
    assert np.abs(free - kept).max() > 1e-3
    assert kept.mean() < plain_kept.mean()  # the dark layout survives


@pytest.mark.parametrize(
    ("sampler", "schedule"), [("DPM++ 2M", "Karras"), ("Euler", "Automatic"), ("UniPC", "Automatic")]
)
def test_webui_samplers_run(runner, image_a, sampler, schedule):
    out = pixels(runner, [Reference(open_image(image_a))], sampler=sampler, schedule_type=schedule)[0]
    assert out.shape == (64, 64, 3) and np.isfinite(out).all()


def test_bad_sampler_schedule_combination(runner, image_a):
    with pytest.raises(ParamError, match="schedule_type='Karras'.*DDIM"):
        pixels(runner, [Reference(open_image(image_a))], sampler="DDIM", schedule_type="Karras")


def test_bad_references(runner, image_a):
    with pytest.raises(ReimagineError, match="at least one reference"):
        runner([], BASE)
    with pytest.raises(ParamError, match="weight of reference 1"):
        runner([Reference(open_image(image_a), -1.0)], BASE)
    with pytest.raises(ParamError, match="at least one weight above 0"):
        runner([Reference(open_image(image_a), 0.0)], BASE)


def test_embeddings_are_cached_between_jobs(unclip_pipe, image_a):
    runner = UnclipVariations(unclip_pipe, "tiny")
    calls = []
    handle = unclip_pipe.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        refs = [Reference(open_image(image_a))]
        first = runner(refs, BASE, output_type="np").images[0].image
        second = runner(refs, BASE, output_type="np").images[0].image
    finally:
        handle.remove()
    assert len(calls) == 1 and np.array_equal(first, second)


def test_interrupt_keeps_what_was_made(runner, image_a):
    steps = []

    def stop():
        return len(steps) >= 1

    job = runner(
        [Reference(open_image(image_a))], {**BASE, "n": 2}, progress=lambda i, t: steps.append(i), should_stop=stop
    )
    assert job.interrupted and len(job.images) == 2 and len(steps) == 1
