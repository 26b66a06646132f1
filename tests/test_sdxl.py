"""The SDXL base + refiner relay against diffusers' own two-call recipe, on tiny random-weight models (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from sd_reimagine.errors import ParamError, ReimagineError  # noqa: E402
from sd_reimagine.images import open_image  # noqa: E402
from sd_reimagine.infotext import group_values, parse_infotext  # noqa: E402
from sd_reimagine.schema import REFINER, SDXL  # noqa: E402
from sd_reimagine.standalone import latents as latents_module  # noqa: E402
from sd_reimagine.standalone import (
    sdxl,  # noqa: E402
    sdxl_loading,  # noqa: E402
)
from sd_reimagine.testing.tiny_diffusers import TINY_SDXL_BASE, TINY_SDXL_REFINER, write_tiny_models  # noqa: E402

SIZE, STEPS, SEED, CFG = 64, 4, 1234, 7.0  # CFG: the schema default (diffusers defaults to 5)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def relay(tiny_models):
    return sdxl_loading.load_sdxl_relay(
        str(tiny_models[TINY_SDXL_BASE]), str(tiny_models[TINY_SDXL_REFINER]), torch.float32, "cpu"
    )


def base_values(**overrides):
    values = {"base": "tiny", "prompt": "a red fox", "seed": SEED, "steps": STEPS, "width": SIZE, "height": SIZE}
    return SDXL.validate({**values, **overrides})


def refiner_values(**overrides):
    values = {"enabled": True, "refiner": "tiny-refiner", "refiner_steps": STEPS, "refine_strength": 0.5}
    return REFINER.validate({**values, **overrides})


def run_np(relay, values=None, refiner=None, **kwargs):
    return relay.run(values or base_values(), refiner or refiner_values(), output_type="np", **kwargs)


def pixels(job, index=0):
    return np.asarray(job.images[index].image)


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def reference_handoff(relay, seed, switch_at=0.8):
    generator = torch.Generator().manual_seed(seed)
    common = {"num_inference_steps": STEPS, "generator": generator, "guidance_scale": CFG}
    latents = relay.base(
        prompt="a red fox", height=SIZE, width=SIZE, denoising_end=switch_at, output_type="latent", **common
    ).images
    return relay.refiner(
        prompt="a red fox", image=latents, denoising_start=switch_at, output_type="np", **common
    ).images[0]


def test_refiner_shares_identical_components(relay, tiny_models):
    shared = sdxl_loading.shareable_components(str(tiny_models[TINY_SDXL_BASE]), str(tiny_models[TINY_SDXL_REFINER]))
    assert shared == ("text_encoder_2", "vae")
    assert relay.refiner.text_encoder_2 is relay.base.text_encoder_2
    assert relay.shares_vae


def test_handoff_matches_diffusers_two_calls(relay):
    job = run_np(relay, base_values(n=2))
    assert (job.base_steps, job.refiner_steps) == (3, 1)  # leading 4 steps: 751, 501, 251 | 1 (switch t = 200)
    for index, seed in enumerate((SEED, SEED + 1)):
        assert job.images[index].seed == seed
        assert max_diff(pixels(job, index), reference_handoff(relay, seed)) <= 1e-4
    assert not job.bridged


def test_refine_matches_img2img_on_base_latents(relay):
    job = run_np(relay, refiner=refiner_values(refiner_mode="refine"))
    generator = torch.Generator().manual_seed(SEED)
    latents = relay.base(
        prompt="a red fox",
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        generator=generator,
        output_type="latent",
    ).images
    expected = relay.refiner(
        prompt="a red fox",
        image=latents,
        strength=0.5,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        generator=generator,
        output_type="np",
    ).images[0]
    assert max_diff(pixels(job), expected) <= 1e-4
    assert (job.base_steps, job.refiner_steps) == (STEPS, 2)


def test_refiner_disabled_is_plain_base(relay):
    job = run_np(relay, refiner=refiner_values(enabled=False))
    expected = relay.base(
        prompt="a red fox",
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        generator=torch.Generator().manual_seed(SEED),
        output_type="np",
    ).images[0]
    assert max_diff(pixels(job), expected) <= 1e-4
    assert "Post-refiner" not in job.images[0].infotext
    assert job.base_images == []


def test_same_seed_same_pixels_other_seed_other_pixels(relay):
    first, again = run_np(relay), run_np(relay)
    other = run_np(relay, base_values(seed=SEED + 7))
    assert max_diff(pixels(first), pixels(again)) == 0
    assert max_diff(pixels(first), pixels(other)) > 1e-3


@pytest.mark.parametrize("mode", ["handoff", "refine"])
def test_keep_base_returns_both_images(relay, mode):
    job = run_np(relay, refiner=refiner_values(refiner_mode=mode, keep_base=True))
    assert [image.label for image in job.all_images()] == ["final", "base"]
    assert job.base_images[0].seed == job.images[0].seed
    assert max_diff(job.base_images[0].image, pixels(job)) > 1e-3
    if mode == "refine":  # the finished base: what the base alone makes
        plain = run_np(relay, refiner=refiner_values(enabled=False))
        assert max_diff(job.base_images[0].image, pixels(plain)) <= 1e-4
    assert not run_np(relay, refiner=refiner_values(refiner_mode=mode, keep_base=False)).base_images


def test_refiner_prompt_changes_pixels(relay):
    plain = run_np(relay)
    prompted = run_np(relay, refiner=refiner_values(refiner_prompt="a blue bird"))
    assert max_diff(pixels(plain), pixels(prompted)) > 1e-4


def test_aesthetic_score_changes_pixels(relay):
    plain = run_np(relay)
    scored = run_np(relay, refiner=refiner_values(aesthetic_score=1.0))
    assert max_diff(pixels(plain), pixels(scored)) > 1e-4


def test_infotext_round_trips_the_refiner_values(relay):
    values = refiner_values(refiner_prompt="sharp, detailed: 8k", refiner_cfg_scale=5.5, switch_at=0.7)
    job = relay.run(base_values(), values)
    prompt, negative, fields = parse_infotext(job.images[0].infotext)
    assert prompt == "a red fox" and fields["Seed"] == str(SEED) and fields["Model"] == relay.base_name
    refiner_keys = [key for key in fields if key.startswith("Post-refiner")]
    assert "Post-refiner prompt" in refiner_keys and "Post-refiner switch at" in refiner_keys
    # a handoff records what applies to it: the switch point and the steps each model ran, not refine's keys
    assert (
        fields["Post-refiner handoff"]
        == f"base {job.base_steps} steps (t >= 300), refiner {job.refiner_steps} steps (t < 300)"
    )
    assert "Post-refiner strength" not in fields and "Post-refiner steps" not in fields
    parsed = group_values(REFINER, prompt, negative, fields)
    expected = {**values, "refiner": relay.refiner_name}
    for name in ("enabled", "refine_strength", "refiner_steps"):
        expected.pop(name)
    assert parsed == expected


def test_bridge_taken_for_foreign_input_skipped_for_sdxl_latents(relay):
    job = run_np(relay, refiner=refiner_values(enabled=False))
    image = open_image(job_to_pil(job))
    refined = relay.refine_image(image, refiner_values(), seed=SEED, prompt="a red fox", output_type="np")
    assert refined.bridged and refined.images[0].image.shape == (SIZE, SIZE, 3)
    latents = relay_latents(relay)
    same = sdxl.refine_latents(
        relay.refiner, latents, "sdxl", relay.base.vae, refiner_values(), seed=SEED, prompt="fox"
    )
    assert not same.bridged and "Post-refiner bridge" not in same.images[0].infotext
    foreign_vae = other_vae()
    foreign = sdxl.refine_latents(relay.refiner, latents, "sd", foreign_vae, refiner_values(), seed=SEED, prompt="fox")
    assert foreign.bridged
    assert "Post-refiner strength" in foreign.images[0].infotext
    assert "Post-refiner bridge: pixels (base and refiner latent spaces differ)" in foreign.images[0].infotext


def test_bridge_latents_round_trips_through_pixels(relay):
    latents = relay_latents(relay)
    bridged = latents_module.bridge_latents(latents, relay.base.vae, relay.refiner.vae)
    assert bridged.shape == latents.shape


def test_webui_sampler_with_karras_runs_and_leaves_loaded_schedulers(relay):
    loaded = (relay.base.scheduler, relay.refiner.scheduler)
    job = run_np(
        relay,
        base_values(sampler="DPM++ 2M", schedule_type="Karras"),
        refiner_values(refiner_sampler="Euler a", refiner_schedule_type="Automatic"),
    )
    assert np.isfinite(pixels(job)).all()
    assert (relay.base.scheduler, relay.refiner.scheduler) == loaded
    assert "Post-refiner sampler: Euler a" in job.images[0].infotext


def test_should_stop_interrupts_and_keeps_what_was_made(relay):
    seen = []
    job = run_np(relay, base_values(n=2), should_stop=lambda: bool(seen), progress=lambda i, n: seen.append((i, n)))
    assert job.interrupted and len(job.images) == 2 and seen[0] == (1, 8)


@pytest.mark.parametrize(
    ("base", "refiner", "name"),
    [
        ({"width": 65}, {}, "width"),
        ({}, {"switch_at": 1.5}, "switch_at"),
        ({"steps": 2}, {"switch_at": 0.2}, "switch_at"),  # leading 2 steps: 501, 1; cutoff 800 leaves the base none
        ({}, {"refiner_mode": "refine", "refiner_steps": 4, "refine_strength": 0.2}, "refine_strength"),
        ({}, {"refiner_sampler": "Nope"}, "refiner_sampler"),
        ({"sampler": "Euler", "schedule_type": "Karras"}, {"refiner_sampler": "DDIM"}, "refiner_schedule_type"),
    ],
)
def test_bad_values_name_the_parameter(relay, base, refiner, name):
    with pytest.raises(ParamError) as caught:
        relay.run({**base_values(), **base}, {**refiner_values(), **refiner})
    assert caught.value.name == name


# --- helpers ----------------------------------------------------------------------------------------------------


def job_to_pil(job):
    from PIL import Image

    return Image.fromarray((pixels(job) * 255).round().astype(np.uint8))


def relay_latents(relay):
    return relay.base(
        prompt="a red fox",
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        generator=torch.Generator().manual_seed(SEED),
        output_type="latent",
    ).images


def other_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(5)
    return AutoencoderKL(
        block_out_channels=(16, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
    )


def test_refine_only_relay_refines_images_and_refuses_jobs(tiny_models, relay):
    refine_only = sdxl_loading.load_sdxl_relay(None, str(tiny_models[TINY_SDXL_REFINER]), torch.float32, "cpu")
    image = open_image(job_to_pil(run_np(relay, refiner=refiner_values(enabled=False))))
    job = refine_only.refine_image(image, refiner_values(), seed=SEED, prompt="a red fox")
    assert job.bridged and job.images[0].image.size == (SIZE, SIZE)
    assert "Post-refiner: tiny-sdxl-refiner" in job.images[0].infotext
    with pytest.raises(ReimagineError):
        refine_only.run(base_values(), refiner_values())
