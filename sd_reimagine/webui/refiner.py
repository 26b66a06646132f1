"""SDXL Refiner post-step for txt2img/img2img in the WebUI: a handoff at a switch point or a refine of the base output.

How one job runs (hooks of the AlwaysVisible script, in the WebUI's order):
- before_process: parse + validate the arguments, resolve the refiner checkpoint, switch the built-in refiner off for
  the job (the post-step wins; recorded as `Post-refiner note`), write the `Post-refiner ...` infotext keys.
  A bad value fails the job before any sampling with the validation message (the WebUI wraps every script hook in a
  try/except that only logs, so the error is raised from the job's next unwrapped step, `p.setup_prompts`).
- process_before_every_sampling (handoff only): the base sampler's sigma schedule is cut at the switch sigma
  `sigma_at_timestep(alphas_cumprod, switch_timestep(switch_at))`, so the base runs only the sigmas above it.
- post_sample: swap to the refiner (`swap.swapped_model`: the user's model comes back also after an error or an
  interrupt), keep the refiner's own VAE, switch base LoRAs/extra networks off, condition with `prompt_parser` at the
  aesthetic scores, sample with the WebUI sampler, and decode with the refiner's VAE while it is loaded: the WebUI gets
  pixels (`already_decoded`), so the base VAE never decodes refiner latents.
- postprocess: keep_base images (with their own infotext, `Post-refiner output: base`) are appended to the result and
  saved with the suffix `-base`.
Latents go to the refiner as they are only when base and refiner are both SDXL and the base output is latent;
otherwise (SD 1.x/2.x base, hires fix output) they cross as pixels: base VAE decode, refiner VAE encode.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import ReimagineError
from ..infotext import group_fields, group_values
from ..schedule import describe_handoff, handoff_index_for_sigmas, sigma_at_timestep, switch_timestep
from ..schema import REFINER, ParamGroup, refiner_or_base
from . import swap

log = logging.getLogger("sd_reimagine")

JOB_ATTR = "reimagine_refiner_job"
OVERRIDES_ATTR = "reimagine_refiner_overrides"
KEY = REFINER["refiner"].infotext  # "Post-refiner": its presence marks an infotext written with the post-step
NOTE_KEY = "Post-refiner note"
BRIDGE_KEY = "Post-refiner bridge"
HANDOFF_KEY = "Post-refiner handoff"
RUN_KEY = "Post-refiner steps run"
OUTPUT_KEY = "Post-refiner output"
BUILTIN_OFF = "built-in refiner {name} off for this job (the post-step runs instead)"
AESTHETIC_OPTIONS = ("sdxl_refiner_high_aesthetic_score", "sdxl_refiner_low_aesthetic_score")


# --- parameters --------------------------------------------------------------------------------------------------


def webui_group() -> ParamGroup:
    """REFINER with the WebUI's sampler and schedule-type names and the first detected SDXL refiner as default."""
    from modules import sd_samplers, sd_schedulers

    samplers = ("",) + tuple(sd_samplers.visible_sampler_names())
    schedules = ("",) + tuple(s.label for s in sd_schedulers.schedulers)
    group = REFINER.replace(REFINER["refiner_sampler"].with_choices(samplers, ""))
    group = group.replace(group["refiner_schedule_type"].with_choices(schedules, ""))
    return group.replace(group["refiner"].with_default(default_refiner()))


def default_refiner() -> str:
    """Title of the first checkpoint detected as SDXL refiner, or '' when there is none."""
    titles = swap.list_checkpoints_by_kind().get("sdxl-refiner", [])
    return sorted(titles, key=str.casefold)[0] if titles else ""


def script_values(
    args: Sequence[Any], overrides: Mapping[str, Any] | None = None, strict: bool = False
) -> dict[str, Any]:
    """Script arguments (positional in schema order, or one dict with the schema names) -> checked values.

    strict (API requests): the dict form must follow the JSON schema's types; the positional form also carries the
    UI's own component values, so it is converted as the UI's are.
    """
    group = webui_group()
    json_object = len(args) >= 1 and isinstance(args[0], Mapping)
    if json_object:
        given = dict(args[0])
    else:
        given = {name: value for name, value in zip(group.names, args, strict=False) if value is not None}
    values = group.validate(given, strict=strict and json_object)
    if overrides:
        values = group.validate({**values, **overrides, "enabled": True})  # an X/Y/Z axis asks for the post-step
    if values["enabled"] and not values["refiner"].strip():
        raise ReimagineError("refiner: choose a refiner checkpoint (none was given and none was detected)")
    return values


def infotext_fields(values: Mapping[str, Any], refiner_title: str) -> dict[str, Any]:
    """`Post-refiner ...` infotext keys of a job (empty texts left out: they mean 'same as the base')."""
    fields = group_fields(REFINER, {**values, "refiner": refiner_title})
    return {key: value for key, value in fields.items() if value != ""}


def pasted_values(fields: Mapping[str, str]) -> dict[str, Any] | None:
    """Values for the controls from pasted infotext fields; None when the infotext has no post-step."""
    if KEY not in fields:
        return None
    group = webui_group()
    values = {**group.defaults(), "refiner_prompt": "", "refiner_negative_prompt": ""}
    values.update(group_values(group, "", "", fields))
    values["enabled"] = True
    return values


# --- per-job state -----------------------------------------------------------------------------------------------


@dataclass
class Handoff:
    """The base's last sampling pass: its full sigma schedule, the steps it ran, its sampler and output latents."""

    sigmas: Any = None
    index: int = 0
    sampler: Any = None
    latents: Any = None
    start: int = 0


@dataclass
class RefinerJob:
    """One job's checked values, refiner checkpoint and what the post-step produced."""

    values: dict[str, Any]
    info: Any
    handoff: Handoff = field(default_factory=Handoff)
    base_images: list[tuple[Any, int]] = field(default_factory=list)  # (pixels in [-1, 1], image index)
    rng: Any = None  # seeded noise of the refiner pass (refine mode, pixel-bridge handoff)

    @property
    def mode(self) -> str:
        return self.values["refiner_mode"]


@lru_cache(maxsize=1)
def refused_job_class() -> type:
    """An exception that is a ReimagineError and a FastAPI HTTPException (422).

    The WebUI's API answers an HTTPException with its status and message and prints no traceback, so a refused
    `alwayson_scripts` value is an HTTP 422 with one log line instead of a 500 with a 90-line traceback.
    """
    from fastapi import HTTPException

    class RefusedJob(HTTPException, ReimagineError):
        def __init__(self, message: str):
            HTTPException.__init__(self, status_code=422, detail=message)

        def __str__(self) -> str:
            return str(self.detail)

    return RefusedJob


def job_error(error: BaseException) -> BaseException:
    """What the job stops with: a refused input as RefusedJob (HTTP 422), anything else as it is."""
    return refused_job_class()(str(error)) if isinstance(error, ReimagineError) else error


class _FailedSamples(list):
    """Post-sample result that re-raises the post-step's error when the WebUI reads it (its hooks swallow errors)."""

    def __init__(self, error: BaseException):
        super().__init__()
        self.error = error

    @property
    def already_decoded(self) -> bool:
        raise self.error


def fail_job(p, error: BaseException) -> None:
    """Make the job stop with `error` at its next unwrapped step (the WebUI only logs errors of script hooks)."""

    refused = job_error(error)

    def raise_error(*_args, **_kwargs):
        raise refused

    p.setup_prompts = raise_error
    log.warning("Reimagine post-refiner refused the job: %s", error)


# --- hooks -------------------------------------------------------------------------------------------------------


def before_process(p, args: Sequence[Any]) -> None:
    """Validate, resolve the refiner, settle the built-in refiner conflict and write the infotext keys."""
    setattr(p, JOB_ATTR, None)
    try:
        values = script_values(args, getattr(p, OVERRIDES_ATTR, None), strict=bool(getattr(p, "is_api", False)))
        if not values["enabled"]:
            return
        info = swap.resolve_for_role(values["refiner"], "refiner", "refiner")
        if values["refiner_mode"] == "handoff":
            check_handoff_samplers(p, values)
    except ReimagineError as error:
        fail_job(p, error)
        return
    setattr(p, JOB_ATTR, RefinerJob(values, info))
    p.extra_generation_params.update(infotext_fields(values, info.short_title))
    disable_builtin_refiner(p)
    swap.limit_warning()


def disable_builtin_refiner(p) -> None:
    """The post-step wins over the built-in refiner: switch it off for this job and say so in the infotext."""
    name = getattr(p, "refiner_checkpoint", None)
    if name in (None, "", "None", "none"):
        return
    p.refiner_checkpoint = None
    p.refiner_switch_at = None
    p.extra_generation_params[NOTE_KEY] = BUILTIN_OFF.format(name=name)
    print(f"Reimagine post-refiner: {BUILTIN_OFF.format(name=name)}")


def check_handoff_samplers(p, values: Mapping[str, Any]) -> None:
    """Handoff cuts a sigma schedule: base and refiner samplers must be k-diffusion samplers."""
    from modules import sd_samplers_kdiffusion

    names = {"sampler": p.sampler_name, "refiner_sampler": refiner_or_base(values, "refiner_sampler", p.sampler_name)}
    if getattr(p, "enable_hr", False):
        names["hires sampler"] = getattr(p, "hr_sampler_name", None) or p.sampler_name
    for what, name in names.items():
        if name not in sd_samplers_kdiffusion.k_diffusion_samplers_map:
            raise ReimagineError(
                f"{what}={name!r}: handoff needs a k-diffusion sampler (Euler, Euler a, DPM++ 2M, ...); "
                "use refiner_mode='refine' with DDIM/PLMS/UniPC/LCM"
            )


def before_sampling(p) -> None:
    """Handoff: cut the base's schedule at the switch sigma (only the last pass when hires fix runs)."""
    job: RefinerJob | None = getattr(p, JOB_ATTR, None)
    if job is None or job.mode != "handoff":
        return
    if getattr(p, "enable_hr", False) and not getattr(p, "is_hr_pass", False):
        return
    from modules import shared

    sigma_switch = sigma_at_timestep(_alphas(shared.sd_model), switch_timestep(job.values["switch_at"]))
    job.handoff = Handoff()
    stop_base_at(p.sampler, job.handoff, sigma_switch)


def _alphas(model) -> list[float]:
    return [float(a) for a in model.alphas_cumprod]


def stop_base_at(sampler, handoff: Handoff, sigma_switch: float) -> None:
    """Patch one sampler instance: schedule cut after the last sigma above `sigma_switch`; output latents kept."""
    from modules import sd_samplers_common

    get_sigmas, sample, sample_img2img = sampler.get_sigmas, sampler.sample, sampler.sample_img2img
    handoff.sampler = sampler

    def cut_sigmas(p, steps):
        sigmas = get_sigmas(p, steps)
        handoff.sigmas = sigmas
        handoff.index = max(handoff_index_for_sigmas(sigmas.tolist(), sigma_switch), handoff.start)
        return sigmas[: handoff.index + 1]

    def keep(result):
        handoff.latents = result
        return result

    def cut_sample(p, x, *args, **kwargs):
        return keep(sample(p, x, *args, **kwargs))

    def cut_sample_img2img(p, x, noise, c, uc, steps=None, image_conditioning=None):
        total, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        handoff.start = total - t_enc - 1
        return keep(sample_img2img(p, x, noise, c, uc, steps=steps, image_conditioning=image_conditioning))

    sampler.get_sigmas, sampler.sample, sampler.sample_img2img = cut_sigmas, cut_sample, cut_sample_img2img


def post_sample(p, ps) -> None:
    """Run the refiner on this batch; on error the job fails with it (the user's model is restored first)."""
    from modules import shared

    job: RefinerJob | None = getattr(p, JOB_ATTR, None)
    if job is None:
        return
    if shared.state.interrupted or shared.state.skipped:
        p.extra_generation_params[NOTE_KEY] = "skipped: the job was interrupted"
        return
    try:
        ps.samples = run_post_step(p, job, ps.samples)
    except ReimagineError as error:  # the WebUI's hook wrapper would only log it: fail the job instead
        log.warning("Reimagine post-refiner stopped the job: %s", error)
        ps.samples = _FailedSamples(job_error(error))
    except Exception as error:
        log.exception("Reimagine post-refiner failed")
        ps.samples = _FailedSamples(error)


def postprocess(p, processed) -> None:
    """keep_base: append the base images (own infotext, saved with suffix -base) after the refined ones."""
    job: RefinerJob | None = getattr(p, JOB_ATTR, None)
    if job is None or not job.base_images:
        return
    for pixels, index in job.base_images:
        image, text = base_image(p, pixels, index)
        processed.images.append(image)
        processed.infotexts.append(text)
    job.base_images.clear()


# --- the post-step -----------------------------------------------------------------------------------------------


def run_post_step(p, job: RefinerJob, samples):
    """Base output (latents, or pixels after hires fix) -> refined pixels (`DecodedSamples`)."""
    from modules import devices, extra_networks, processing, shared

    job.rng = None
    base_model = shared.sd_model
    decoded = bool(getattr(samples, "already_decoded", False))
    latents = job.handoff.latents if job.mode == "handoff" and decoded else (None if decoded else samples)
    direct = latents is not None and same_latent_space(base_model, job.info)
    need_pixels = not direct or job.values["keep_base"]
    base_x0 = handoff_x0(job, latents) if job.mode == "handoff" and need_pixels else None
    pixels = base_pixels(job, samples, decoded, base_x0, base_model) if need_pixels else None  # before the swap
    with swapped_model_guard(job) as refiner_model:
        p.extra_generation_params[KEY] = job.info.short_title  # with its hash now that it is loaded
        x, noise = refiner_input(p, job, latents if direct else None, pixels, direct)
        note_bridge(p, direct, decoded)
        with networks_off(p):
            with devices.autocast():
                c, uc = refiner_conds(p, job.values, refiner_steps(job))
            refined = refiner_sample(p, job, x, noise, c, uc)
        result = processing.decode_latent_batch(refiner_model, refined, target_device=devices.cpu, check_for_nans=True)
    if not getattr(p, "disable_extra_networks", False) and getattr(p, "extra_network_data", None):
        with devices.autocast():
            extra_networks.activate(p, p.extra_network_data)
    if job.values["keep_base"] and pixels is not None:
        first = p.iteration * p.batch_size
        job.base_images.extend((pixels[i].cpu(), first + i) for i in range(len(pixels)))
    return result


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


@contextmanager
def swapped_model_guard(job: RefinerJob):
    """The refiner as shared.sd_model with its own VAE; swap.swapped_model puts the user's model and VAE back."""
    from modules import shared

    with swap.swapped_model(job.info, field="refiner"):
        keep_own_vae(shared.sd_model)
        yield shared.sd_model


def own_vae(checkpoint_file: str) -> str | None:
    """The VAE that belongs to a checkpoint: user metadata or a file named after it, else the one baked in (None)."""
    from modules import sd_vae

    from_metadata = sd_vae.resolve_vae_from_user_metadata(checkpoint_file)
    if from_metadata.resolved:
        return from_metadata.vae
    return sd_vae.find_vae_near_checkpoint(checkpoint_file)


_VAE_CACHE: dict[tuple[str, float], dict[str, Any]] = {}


def keep_own_vae(model) -> None:
    """A globally selected VAE (an SD 1.x one, say) is never applied to the refiner: its own weights are loaded.

    Only the refiner object's VAE weights change; the WebUI's VAE bookkeeping (one global `loaded_vae_file` for all
    loaded models) is left alone, so the user's model keeps the VAE the user chose.
    """
    from modules import devices, sd_vae

    filename = model.sd_checkpoint_info.filename
    wanted = own_vae(filename)
    if sd_vae.resolve_vae(filename).vae == wanted:
        return  # the WebUI's own choice for the refiner is already its own VAE
    print(f"Reimagine post-refiner: refiner uses its own VAE ({wanted or 'built in'}), not the selected one")
    model.first_stage_model.load_state_dict(own_vae_weights(filename, wanted))
    model.first_stage_model.to(devices.dtype_vae)


def own_vae_weights(checkpoint_file: str, vae_file: str | None) -> dict[str, Any]:
    """VAE state dict from a VAE file or the VAE baked into a checkpoint (cached by path and mtime)."""
    import os

    from modules import sd_vae

    source = vae_file or checkpoint_file
    key = (source, os.path.getmtime(source))
    if key not in _VAE_CACHE:
        _VAE_CACHE.clear()
        _VAE_CACHE[key] = sd_vae.load_vae_dict(vae_file, "cpu") if vae_file else baked_vae(checkpoint_file)
    return _VAE_CACHE[key]


def baked_vae(checkpoint_file: str) -> dict[str, Any]:
    """The `first_stage_model.*` tensors of a checkpoint (safetensors: only those are read)."""
    prefix = "first_stage_model."
    if checkpoint_file.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(checkpoint_file, framework="pt", device="cpu") as handle:
            return {k[len(prefix) :]: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}
    from modules import sd_models

    state = sd_models.read_state_dict(checkpoint_file, map_location="cpu")
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def same_latent_space(base_model, refiner_info) -> bool:
    """SDXL base and SDXL refiner share one latent space (one VAE family); nothing else is assumed to."""
    kind = swap.checkpoint_kind(refiner_info.filename)
    return bool(getattr(base_model, "is_sdxl", False)) and kind in ("sdxl-base", "sdxl-refiner")


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


def note_bridge(p, direct: bool, decoded: bool) -> None:
    """Record in infotext and log how the base output reached the refiner."""
    if direct:
        return
    reason = "hires fix output" if decoded else "base and refiner latent spaces differ"
    p.extra_generation_params[BRIDGE_KEY] = f"pixels ({reason})"
    print(f"Reimagine post-refiner: pixel bridge, {reason}: base VAE decode -> refiner VAE encode")


@contextmanager
def networks_off(p):
    """Base LoRAs and other extra networks are switched off for the refiner pass."""
    from modules import devices, extra_networks

    with devices.autocast():
        extra_networks.activate(refiner_p(p), {})
    yield


def refiner_steps(job: RefinerJob) -> int:
    """Steps the refiner's prompt schedule counts: the handoff's remaining steps, or the refine steps."""
    if job.mode == "handoff":
        return max(len(job.handoff.sigmas) - 1 - job.handoff.index, 1)
    return job.values["refiner_steps"]


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
    """Sample with the WebUI sampler: handoff continues the base's schedule from the switch sigma to 0."""
    from modules import devices, processing, sd_samplers, shared

    values = job.values
    pl = refiner_p(p)
    pl.cfg_scale = values["refiner_cfg_scale"]
    pl.sampler_name = refiner_or_base(values, "refiner_sampler", p.sampler_name)
    pl.rng = getattr(job, "rng", None) or p.rng
    sampler = sd_samplers.create_sampler(pl.sampler_name, shared.sd_model)
    if job.mode == "handoff":
        rest = job.handoff.sigmas[job.handoff.index :]
        sampler.get_sigmas = lambda _p, _steps: rest
        pl.steps, pl.denoising_strength, steps = len(rest) - 1, 1.0, len(rest) - 1
        note_handoff(p, job, len(rest) - 1)
    else:
        pl.steps, pl.denoising_strength, steps = values["refiner_steps"], values["refine_strength"], None
        pl.scheduler = refiner_or_base(values, "refiner_schedule_type", p.scheduler)
        note_refine(p, pl)
    image_conditioning = processing.txt2img_image_conditioning(shared.sd_model, x, p.width, p.height)
    with devices.without_autocast() if devices.unet_needs_upcast else devices.autocast():
        return sampler.sample_img2img(pl, x, noise, c, uc, steps=steps, image_conditioning=image_conditioning)


def note_handoff(p, job: RefinerJob, refiner_steps_run: int) -> None:
    """Infotext + log: how many steps each model ran."""
    text = describe_handoff(job.handoff.index - job.handoff.start, refiner_steps_run, job.values["switch_at"])
    p.extra_generation_params[HANDOFF_KEY] = text
    print(f"Reimagine post-refiner handoff: {text}")


def note_refine(p, pl) -> None:
    """Infotext + log: steps the refine pass runs (the WebUI's img2img counting)."""
    from modules import sd_samplers_common

    _, t_enc = sd_samplers_common.setup_img2img_steps(pl, None)
    p.extra_generation_params[RUN_KEY] = t_enc + 1
    print(f"Reimagine post-refiner refine: {t_enc + 1} steps at strength {pl.denoising_strength}")


def base_image(p, pixels, index: int):
    """(PIL image, infotext) of one kept base image; saved with the suffix -base when the job saves samples."""
    import numpy as np
    import torch
    from modules import images, processing, shared
    from PIL import Image

    array = torch.clamp((pixels.float() + 1.0) / 2.0, 0.0, 1.0)
    image = Image.fromarray((255.0 * np.moveaxis(array.numpy(), 0, 2)).astype(np.uint8))
    params = p.extra_generation_params
    params[OUTPUT_KEY] = "base"
    try:
        text = processing.create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=index)
    finally:
        params.pop(OUTPUT_KEY, None)
    if shared.opts.enable_pnginfo:
        image.info["parameters"] = text
    if p.save_samples():
        seed, prompt = p.all_seeds[index], p.all_prompts[index]
        images.save_image(
            image, p.outpath_samples, "", seed, prompt, shared.opts.samples_format, info=text, p=p, suffix="-base"
        )
    return image, text


# --- UI ------------------------------------------------------------------------------------------------------------


def build_ui(elem_prefix: str) -> tuple[list, list]:
    """The accordion (its checkbox is `enabled`) with one control per parameter: (components in schema order, paste
    fields)."""
    import gradio as gr
    from modules.ui_components import InputAccordion

    from ..ui import Controls, parameter_controls

    group = webui_group()
    controls = Controls()
    label = "SDXL Refiner post-step (Reimagine)"
    with InputAccordion(False, label=label, elem_id=f"{elem_prefix}_enabled") as enabled:
        controls.params["refiner"] = gr.Dropdown(
            choices=checkpoint_titles(),
            value=group["refiner"].default or None,
            label=group["refiner"].label,
            info="SDXL refiner (or SDXL base) checkpoints, detected from their headers; other kinds are refused.",
            elem_id=f"{elem_prefix}_refiner",
        )
        parameter_controls(controls, group, elem_prefix, skip=("enabled", "refiner"))
        message = swap.limit_warning()
        if message:
            gr.Markdown(f"Note: {message}", elem_classes=["reimagine-note"])
    components = [enabled, *(controls.params[name] for name in group.names[1:])]
    return components, paste_fields(dict(zip(group.names, components, strict=True)))


def checkpoint_titles() -> list[str]:
    """The checkpoints the post-step can run: SDXL refiners first, then SDXL bases."""
    return swap.titles_for_role("refiner")


def paste_fields(components: Mapping[str, Any]) -> list:
    """PasteFields for every `Post-refiner ...` key; an infotext without the post-step switches it off."""
    from modules.infotext_utils import PasteField

    fields = [PasteField(components["enabled"], lambda d: KEY in d, api=None)]
    for name, component in components.items():
        if name != "enabled":
            fields.append(PasteField(component, _paste_getter(name), api=None))
    return fields


def _paste_getter(name: str):
    def getter(fields: Mapping[str, str]):
        values = _safe_pasted_values(fields)
        if values is None:
            return None
        if name == "refiner":
            return _title_or_name(values[name])
        return values[name]

    return getter


def _safe_pasted_values(fields: Mapping[str, str]) -> dict[str, Any] | None:
    try:
        return pasted_values(fields)
    except ReimagineError as error:
        log.warning("Reimagine post-refiner: infotext not pasted: %s", error)
        return None


def _title_or_name(name: str) -> str:
    try:
        return swap.resolve_checkpoint(name).title
    except ReimagineError:
        return name
