"""The SDXL refiner pass in both WebUI hosts: hand-over or pixel bridge, conditioning, sampling, kept base images.

It executes the core's plan (`sd_reimagine.refiner_plan`); each host's post-step (`a1111/refiner.py`,
`forge/refiner.py`) calls it with the refiner its swap loaded.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import ReimagineError
from ..refiner_plan import (
    KEY,
    LATENTS,
    NOTE_KEY,
    PIXELS,
    plan_refiner,
)
from ..schema import refiner_or_base
from .refiner_job import HIRES_OUTPUT, JOB_ATTR, BaseBatch, RefinerJob

log = logging.getLogger("sd_reimagine")
AESTHETIC_OPTIONS = ("sdxl_refiner_high_aesthetic_score", "sdxl_refiner_low_aesthetic_score")


def prepare_batch(p, job: RefinerJob, samples, keep_pixels: bool = False) -> BaseBatch:
    """While the base model is loaded: re-plan with its facts, keep its latents and, when needed, its image."""
    from modules import shared

    job.rng = None
    base_model = shared.sd_model
    decoded = bool(getattr(samples, "already_decoded", False))
    latents = job.handoff.latents if job.mode == "handoff" and decoded else (None if decoded else samples)
    pixels_reason = HIRES_OUTPUT if latents is None else ""
    job.plan = plan_refiner(job.values, job.facts(p, job.values, job.info, base_model, pixels_reason), job.plan.refiner)
    direct = job.plan.handover == LATENTS
    need_pixels = keep_pixels or not direct or job.plan.keep_base
    base_x0 = handoff_x0(job, latents) if job.mode == "handoff" and need_pixels else None
    pixels = base_pixels(job, samples, decoded, base_x0, base_model) if need_pixels else None
    fields = (list(p.prompts), list(p.negative_prompts), list(p.seeds), list(p.subseeds))
    return BaseBatch(p.iteration, *fields, latents if direct else None, pixels, job.handoff)


def refine_batch(p, job: RefinerJob, batch: BaseBatch, refiner_model) -> list:
    """One batch through the loaded refiner: refined pixels decoded by the refiner's own VAE."""
    from modules import devices, processing

    job.handoff = batch.handoff
    x, noise = refiner_input(p, job, batch.latents, batch.pixels, batch.latents is not None)
    with networks_off(p):
        with devices.autocast():
            c, uc = refiner_conds(p, job.values, refiner_steps(job))
        refined = refiner_sample(p, job, x, noise, c, uc)
    return processing.decode_latent_batch(refiner_model, refined, target_device=devices.cpu, check_for_nans=True)


def finish_refining(p, job: RefinerJob, refined: list[BaseBatch]) -> None:
    """After the refiner pass: the plan's infotext, the base's extra networks back, the kept base images."""
    from modules import devices, extra_networks

    record_plan(p, job)
    if not getattr(p, "disable_extra_networks", False) and getattr(p, "extra_network_data", None):
        with devices.autocast():
            extra_networks.activate(p, p.extra_network_data)
    if not job.plan.keep_base:
        return
    for batch in refined:
        if batch.pixels is not None:
            first = batch.iteration * p.batch_size
            job.base_images.extend((batch.pixels[i].cpu(), first + i) for i in range(len(batch.pixels)))


def record_plan(p, job: RefinerJob) -> None:
    """The infotext of the refined images: the plan's fields as the job ran (replacing the provisional ones)."""
    params = p.extra_generation_params
    for key in [k for k in params if k.startswith(KEY) and k != NOTE_KEY]:
        del params[key]
    params.update(job.plan.fields(job.split))
    if job.plan.handover == PIXELS:
        print(f"Reimagine post-refiner: pixel bridge, {job.plan.bridge_reason}: base VAE decode -> refiner VAE encode")
    if job.split is not None:
        print(f"Reimagine post-refiner handoff: {job.split.describe()}")


def handoff_x0(job: RefinerJob, latents):
    """The base's CFG x0 estimate at the switch sigma (one more base step): kept base image and pixel bridge."""
    import torch
    from modules import devices

    handoff = job.handoff
    if latents is None or handoff.sigmas is None:
        raise ReimagineError("handoff: the base sampler did not run through the post-step's schedule cut")
    sigma = float(handoff.sigmas[handoff.index])
    sampler = handoff.sampler
    with torch.no_grad(), devices.autocast():
        return sampler.model_wrap_cfg(
            latents, latents.new_full((latents.shape[0],), sigma), **sampler.sampler_extra_args
        )


def base_pixels(job: RefinerJob, samples, decoded: bool, base_x0, base_model):
    """The base image in [-1, 1] (decoded by the base VAE; in handoff mode its x0 estimate at the switch)."""
    import torch
    from modules import devices, processing

    if job.mode == "handoff":
        source = base_x0
    elif decoded:
        return torch.stack([torch.as_tensor(s) for s in samples]).float()
    else:
        source = samples
    decoded_batch = processing.decode_latent_batch(base_model, source, target_device=devices.cpu, check_for_nans=True)
    return torch.stack(list(decoded_batch)).float()


def refiner_input(p, job: RefinerJob, latents, pixels, direct: bool):
    """(x, noise) for sample_img2img: base latents as they are, or base pixels encoded by the refiner's VAE."""
    import torch
    from modules import devices, rng, sd_samplers_common, shared

    if direct:
        x = latents.to(shared.device)
    else:
        images = torch.clamp((pixels + 1.0) / 2.0, 0.0, 1.0).to(shared.device, dtype=devices.dtype_vae)
        x = sd_samplers_common.images_tensor_to_samples(images, None, shared.sd_model).to(devices.dtype)
    if job.mode == "handoff" and direct:
        return x, torch.zeros_like(x)  # the base latents already carry the noise of the switch sigma
    seeded = rng.ImageRNG(
        x.shape[1:],
        p.seeds,
        subseeds=p.subseeds,
        subseed_strength=p.subseed_strength,
        seed_resize_from_h=p.seed_resize_from_h,
        seed_resize_from_w=p.seed_resize_from_w,
    )
    job.rng = seeded
    return x, seeded.next().to(x.device, x.dtype)


@contextmanager
def networks_off(p):
    """Base LoRAs and other extra networks are switched off for the refiner pass."""
    from modules import devices, extra_networks

    with devices.autocast():
        extra_networks.activate(refiner_p(p), {})
    yield


def refiner_steps(job: RefinerJob) -> int:
    """Steps the refiner's prompt schedule counts: the steps it runs."""
    return job.split.refiner_steps if job.split is not None else job.plan.steps_run


def refiner_prompts(p, values: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Refiner prompt and negative (extra-network tags removed), or the base's when empty."""
    from modules import extra_networks

    count = len(p.prompts)
    prompts = refiner_or_base(values, "refiner_prompt", None)
    prompts = extra_networks.parse_prompts([prompts] * count)[0] if prompts else list(p.prompts)
    negative = refiner_or_base(values, "refiner_negative_prompt", None)
    return prompts, [negative] * count if negative else list(p.negative_prompts)


def refiner_conds(p, values: Mapping[str, Any], steps: int):
    """(cond, uncond) from the refiner model at the job's aesthetic scores (the SDXL conditioner reads two opts)."""
    from modules import prompt_parser, shared

    prompts, negatives = refiner_prompts(p, values)
    positive = prompt_parser.SdConditioning(prompts, width=p.width, height=p.height)
    negative = prompt_parser.SdConditioning(negatives, is_negative_prompt=True, width=p.width, height=p.height)
    scores = (values["aesthetic_score"], values["negative_aesthetic_score"])
    with temporary_options(dict(zip(AESTHETIC_OPTIONS, scores, strict=True))):
        c = prompt_parser.get_multicond_learned_conditioning(shared.sd_model, positive, steps)
        uc = prompt_parser.get_learned_conditioning(shared.sd_model, negative, steps)
    return c, uc


@contextmanager
def temporary_options(values: Mapping[str, Any]):
    """Set WebUI options in memory only (no save, no callbacks) and put the previous state back."""
    from modules import shared

    data = shared.opts.data
    missing = object()
    saved = {key: data.get(key, missing) for key in values}
    data.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                data.pop(key, None)
            else:
                data[key] = value


def refiner_p(p):
    """A shallow copy of the job for the refiner pass: own params, no built-in refiner, no mask, own infotext dict."""
    pl = copy.copy(p)
    pl.extra_generation_params = dict(p.extra_generation_params)
    pl.refiner_checkpoint_info = None
    pl.refiner_switch_at = None
    pl.sampler_noise_scheduler_override = None
    pl.is_hr_pass = False
    pl.mask = None
    pl.nmask = None
    pl.image_cfg_scale = None
    return pl


def refiner_sample(p, job: RefinerJob, x, noise, c, uc):
    """Sample with the WebUI sampler on the plan's schedule: handoff continues the base's sigmas from the switch,
    refine runs the last `steps_run` sigmas of a `refiner_steps` schedule of the refiner's sampler."""
    from modules import devices, processing, sd_samplers, shared

    plan = job.plan
    pl = refiner_p(p)
    pl.cfg_scale = plan.values["refiner_cfg_scale"]
    pl.sampler_name = plan.sampler
    pl.scheduler = plan.schedule_type
    pl.rng = getattr(job, "rng", None) or p.rng
    sampler = sd_samplers.create_sampler(pl.sampler_name, shared.sd_model)
    if job.mode == "handoff":
        sigmas = job.handoff.sigmas[job.handoff.index :]
    else:
        sigmas = sampler.get_sigmas(pl, plan.schedule_steps)[plan.refine_start :]
    sampler.get_sigmas = lambda _p, _steps: sigmas
    # denoise 1 with steps = len(sigmas) - 1 makes the WebUI's img2img run exactly these sigmas from the first one
    pl.steps, pl.denoising_strength, steps = len(sigmas) - 1, 1.0, len(sigmas) - 1
    image_conditioning = processing.txt2img_image_conditioning(shared.sd_model, x, p.width, p.height)
    with devices.without_autocast() if devices.unet_needs_upcast else devices.autocast():
        return sampler.sample_img2img(pl, x, noise, c, uc, steps=steps, image_conditioning=image_conditioning)


def job_base_fields(p) -> dict[str, Any]:
    """The plan's fields for the kept base image of this job."""
    job: RefinerJob = getattr(p, JOB_ATTR)
    return job.plan.base_fields(job.split)


def base_image(p, pixels, index: int):
    """(PIL image, infotext) of one kept base image; saved with the suffix -base when the job saves samples."""
    import numpy as np
    import torch
    from modules import images, processing, shared
    from PIL import Image

    array = torch.clamp((pixels.float() + 1.0) / 2.0, 0.0, 1.0)
    image = Image.fromarray((255.0 * np.moveaxis(array.numpy(), 0, 2)).astype(np.uint8))
    params = p.extra_generation_params
    saved = dict(params)
    params.update(job_base_fields(p))
    try:
        text = processing.create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=index)
    finally:
        params.clear()
        params.update(saved)
    if shared.opts.enable_pnginfo:
        image.info["parameters"] = text
    if p.save_samples():
        seed, prompt = p.all_seeds[index], p.all_prompts[index]
        images.save_image(
            image, p.outpath_samples, "", seed, prompt, shared.opts.samples_format, info=text, p=p, suffix="-base"
        )
    return image, text
