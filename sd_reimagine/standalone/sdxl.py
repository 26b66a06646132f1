"""The SDXL base + refiner relay on diffusers: handoff at a switch point, or refine of the finished base latents.

The relay calls diffusers' own `StableDiffusionXLPipeline` and `StableDiffusionXLImg2ImgPipeline` with the right
arguments rather than re-implementing their loops, so that a job equals the two documented diffusers calls (the
"ensemble of expert denoisers" recipe) on the same weights and generators. Each batch is one call per model with one
CPU generator per image: fewer UNet calls than one call per image, and an image's pixels depend on its seed, not on
its position in the batch (up to float rounding of batched kernels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ParamError, ReimagineError
from ..images import InputImage
from ..infotext import group_fields, job_infotext, parse_infotext, write_infotext
from ..mixing import image_seeds, resolve_seed
from ..schedule import handoff_steps, img2img_steps
from ..schema import REFINER, SDXL, refiner_or_base
from .models import default_device, load_pipeline, model_name
from .schedulers import make_scheduler
from .unclip import GeneratedImage

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]

SHAREABLE = ("text_encoder_2", "vae")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
FINGERPRINT_CHUNK = 1024 * 1024

FINAL = "final"
BASE = "base"


@dataclass
class RelayImage(GeneratedImage):
    """An output image labelled `final` (what the job makes) or `base` (the kept pre-refiner image)."""

    label: str = FINAL


@dataclass
class SdxlJob:
    """What one SDXL job returns: final and kept base images in seed order, the steps each model ran, flags."""

    images: list[RelayImage]
    base_images: list[RelayImage]
    values: dict[str, Any]
    values_refiner: dict[str, Any]
    base_steps: int = 0
    refiner_steps: int = 0
    bridged: bool = False
    interrupted: bool = False

    def all_images(self) -> list[RelayImage]:
        """Final images, each followed by its kept base image (when keep_base)."""
        bases = {image.seed: image for image in self.base_images}
        ordered: list[RelayImage] = []
        for image in self.images:
            ordered.append(image)
            if image.seed in bases:
                ordered.append(bases[image.seed])
        return ordered


@dataclass
class _Progress:
    """Step counter across the calls of a job; turns should_stop into diffusers' interrupt flag."""

    total: int
    progress: ProgressFn | None = None
    should_stop: StopFn | None = None
    done: int = 0
    interrupted: bool = False

    def callback(self, pipe, step: int, timestep, kwargs: dict) -> dict:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        if self.should_stop is not None and self.should_stop():
            # diffusers skips the remaining steps of this call and returns the latents as they are
            pipe._interrupt = True
            self.interrupted = True
        return {}


@dataclass
class _Plan:
    """Everything a job needs before any model runs: checked values, schedulers and step counts."""

    values: dict[str, Any]
    refiner_values: dict[str, Any]
    seeds: list[int]
    base_scheduler: Any
    refiner_scheduler: Any = None
    base_steps: int = 0
    refiner_steps: int = 0
    prompts: dict[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.refiner_values["enabled"])

    @property
    def mode(self) -> str:
        return self.refiner_values["refiner_mode"]


class SdxlRelay:
    """Runs SDXL jobs on a loaded base (None for refine-only) and refiner (None for base-only)."""

    def __init__(self, base, refiner, base_name: str = "", refiner_name: str = "", max_batch: int = 4):
        self.base = base
        self.refiner = refiner
        self.base_name = base_name
        self.refiner_name = refiner_name
        self.max_batch = max_batch

    @property
    def shares_vae(self) -> bool:
        return self.base is not None and self.refiner is not None and self.base.vae is self.refiner.vae

    def run(
        self,
        values_sdxl: dict[str, Any],
        values_refiner: dict[str, Any],
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        output_type: str = "pil",
    ) -> SdxlJob:
        """Base (and refiner when enabled) for n seeds; with keep_base, the base's images too.

        The kept base image is decoded from the base's last latents: the finished base in refine mode, the
        partly denoised latents at the switch point in handoff mode (noisy by design: the refiner finishes them).
        """
        # 1. Check inputs and plan both schedules before any model runs
        plan = self.plan(values_sdxl, values_refiner)
        counter = _Progress(len(plan.seeds) * (plan.base_steps + plan.refiner_steps), progress, should_stop)
        job = SdxlJob([], [], plan.values, plan.refiner_values, plan.base_steps, plan.refiner_steps)
        # 2. Run batch by batch: base, then refiner on the base's latents (no VAE round trip)
        for start in range(0, len(plan.seeds), self.max_batch):
            seeds = plan.seeds[start : start + self.max_batch]
            generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
            latents = self.run_base(plan, generators, counter)
            final = latents
            if plan.enabled and not counter.interrupted:  # an interrupted base keeps its image, unrefined
                final = self.run_refiner(plan, latents, generators, counter)
            # 3. Decode and label
            self.collect(job, plan, seeds, latents, final, output_type)
            if counter.interrupted:
                job.interrupted = True
                break
        return job

    def plan(self, values_sdxl: dict[str, Any], values_refiner: dict[str, Any]) -> _Plan:
        """Validated values, fresh schedulers and the steps each model runs; raises ParamError naming a bad value."""
        if self.base is None:
            raise ReimagineError("this SDXL relay has no base model loaded: use refine_image for existing images")
        values = SDXL.validate(values_sdxl)
        refiner_values = REFINER.validate(values_refiner)
        values["seed"] = resolve_seed(values["seed"])
        base_scheduler = make_scheduler(self.base.scheduler, values["sampler"], values["schedule_type"])
        plan = _Plan(values, refiner_values, image_seeds(values["seed"], values["n"]), base_scheduler)
        plan.base_steps = len(_timesteps(base_scheduler, values["steps"]))
        if not plan.enabled:
            return plan
        if self.refiner is None:
            raise ReimagineError("the SDXL refiner post-step is enabled but no refiner model is loaded")
        plan.refiner_scheduler = refiner_scheduler(self.refiner, refiner_values, values)
        plan.prompts = refiner_prompts(refiner_values, values["prompt"], values["negative_prompt"])
        if plan.mode == "handoff":
            plan.base_steps, plan.refiner_steps = _handoff_counts(plan, values["steps"])
        else:
            plan.refiner_steps = refine_step_count(refiner_values)
        return plan

    def run_base(self, plan: _Plan, generators: list[torch.Generator], counter: _Progress) -> torch.Tensor:
        """The base's latents: finished, or stopped at the switch point in handoff mode."""
        values = plan.values
        kwargs: dict[str, Any] = {}
        if plan.enabled and plan.mode == "handoff":
            kwargs["denoising_end"] = plan.refiner_values["switch_at"]
        with using_scheduler(self.base, plan.base_scheduler):
            return self.base(
                prompt=values["prompt"],
                negative_prompt=values["negative_prompt"] or None,
                num_images_per_prompt=len(generators),
                height=values["height"],
                width=values["width"],
                num_inference_steps=values["steps"],
                guidance_scale=values["cfg_scale"],
                generator=_one_or_list(generators),
                output_type="latent",
                callback_on_step_end=counter.callback,
                **kwargs,
            ).images

    def run_refiner(self, plan: _Plan, latents, generators, counter: _Progress, output_type: str = "latent"):
        """The refiner on the base's latents: the rest of the schedule (handoff) or img2img at a strength (refine)."""
        if plan.mode == "handoff":
            schedule = {
                "num_inference_steps": plan.values["steps"],
                "denoising_start": plan.refiner_values["switch_at"],
            }
        else:
            schedule = {}
        return refiner_call(
            self.refiner,
            latents,
            generators,
            plan.refiner_values,
            plan.prompts,
            plan.refiner_scheduler,
            counter,
            output_type,
            **schedule,
        )

    def collect(self, job: SdxlJob, plan: _Plan, seeds, base_latents, final_latents, output_type: str) -> None:
        """Decode the batch's latents and append labelled images with their infotext."""
        values = plan.values
        infotext_values = {**values, "base": self.base_name}
        extra = self.refiner_fields(plan.refiner_values) if plan.enabled else {}
        refined = plan.enabled and final_latents is not base_latents
        final_vae = self.refiner.vae if refined else self.base.vae
        final_pipe = self.refiner if refined else self.base
        for seed, image in zip(seeds, decode_images(final_pipe, final_vae, final_latents, output_type), strict=True):
            infotext = job_infotext(SDXL, infotext_values, seed, self.base_name, extra)
            job.images.append(RelayImage(image, seed, infotext, FINAL))
        if not (refined and plan.refiner_values["keep_base"]):
            return
        base_extra = {**extra, "Post-refiner image": BASE}
        for seed, image in zip(seeds, decode_images(self.base, self.base.vae, base_latents, output_type), strict=True):
            infotext = job_infotext(SDXL, infotext_values, seed, self.base_name, base_extra)
            job.base_images.append(RelayImage(image, seed, infotext, BASE))

    def refiner_fields(self, refiner_values: dict[str, Any]) -> dict[str, Any]:
        """The refiner's infotext fields (all keys begin with `Post-refiner`), naming the refiner that ran."""
        return refiner_fields(refiner_values, self.refiner_name)

    def refine_image(self, image: InputImage, values_refiner: dict[str, Any], seed: int = -1, **kwargs) -> SdxlJob:
        """Refine an existing image with this relay's refiner (the pixel bridge); see `refine_image`."""
        return refine_image(self.refiner, image, values_refiner, seed, model=self.refiner_name, **kwargs)


# --- refiner calls shared by the relay and the image path -------------------------------------------------------


def refiner_call(
    refiner,
    latents: torch.Tensor,
    generators: list[torch.Generator],
    refiner_values: dict[str, Any],
    prompts: dict[str, Any],
    scheduler,
    counter: _Progress,
    output_type: str = "latent",
    **schedule: Any,
):
    """One img2img call of the refiner on latents in its own latent space; strength unless `schedule` overrides."""
    with using_scheduler(refiner, scheduler):
        return refiner(
            image=latents,
            strength=refiner_values["refine_strength"],
            num_inference_steps=schedule.pop("num_inference_steps", refiner_values["refiner_steps"]),
            guidance_scale=refiner_values["refiner_cfg_scale"],
            aesthetic_score=refiner_values["aesthetic_score"],
            negative_aesthetic_score=refiner_values["negative_aesthetic_score"],
            num_images_per_prompt=len(generators),
            generator=_one_or_list(generators),
            output_type=output_type,
            callback_on_step_end=counter.callback,
            **prompts,
            **schedule,
        ).images


def refiner_prompts(refiner_values: dict[str, Any], prompt: str, negative_prompt: str) -> dict[str, Any]:
    """The refiner's prompt and negative prompt: its own, or the base's when empty (an empty negative = zeros)."""
    return {
        "prompt": refiner_or_base(refiner_values, "refiner_prompt", prompt),
        "negative_prompt": refiner_or_base(refiner_values, "refiner_negative_prompt", negative_prompt) or None,
    }


def refiner_scheduler(refiner, refiner_values: dict[str, Any], values: dict[str, Any]):
    """A fresh scheduler for the refiner: its own sampler/schedule type, or the base's when empty."""
    sampler = refiner_or_base(refiner_values, "refiner_sampler", values["sampler"])
    schedule_type = refiner_or_base(refiner_values, "refiner_schedule_type", values["schedule_type"])
    try:
        return make_scheduler(refiner.scheduler, sampler, schedule_type)
    except ParamError as exc:
        raise ParamError("refiner_" + exc.name, exc.value, exc.allowed) from None


def refine_step_count(refiner_values: dict[str, Any]) -> int:
    """Steps the refiner runs in refine mode; ParamError when strength x steps leaves none."""
    _, run = img2img_steps(refiner_values["refiner_steps"], refiner_values["refine_strength"])
    if run < 1:
        raise ParamError(
            "refine_strength",
            refiner_values["refine_strength"],
            f"at least 1 / refiner_steps ({1 / refiner_values['refiner_steps']:.3g}) so that the refiner runs a step",
        )
    return run


def refiner_fields(refiner_values: dict[str, Any], refiner: str = "") -> dict[str, Any]:
    """Infotext fields of the refiner (keys begin with `Post-refiner`; `enabled` has none)."""
    named = {**refiner_values, "refiner": refiner or refiner_values["refiner"]}
    return {key: value for key, value in group_fields(REFINER, named).items() if key.startswith("Post-refiner")}


def _handoff_counts(plan: _Plan, steps: int) -> tuple[int, int]:
    """(base, refiner) steps of a handoff; ParamError when the switch point leaves either model no step."""
    switch_at = plan.refiner_values["switch_at"]
    base_steps, _ = handoff_steps(_timesteps(plan.base_scheduler, steps), switch_at)
    _, refiner_steps = handoff_steps(_timesteps(plan.refiner_scheduler, steps), switch_at)
    if base_steps < 1 or refiner_steps < 1:
        who = "the base" if base_steps < 1 else "the refiner"
        raise ParamError("switch_at", switch_at, f"a switch point that leaves {who} at least one of the {steps} steps")
    return base_steps, refiner_steps


def _timesteps(scheduler, steps: int) -> list[float]:
    scheduler.set_timesteps(steps)
    return [float(t) for t in scheduler.timesteps]


def _one_or_list(generators: list[torch.Generator]):
    return generators[0] if len(generators) == 1 else generators


@contextmanager
def using_scheduler(pipe, scheduler) -> Iterator[None]:
    """Run `pipe` with a job's fresh scheduler; the loaded scheduler is put back, also after an error."""
    loaded = pipe.scheduler
    pipe.scheduler = scheduler
    try:
        yield
    finally:
        pipe.scheduler = loaded


# --- the pixel bridge ---------------------------------------------------------------------------------------------


def refine_image(
    refiner,
    image: InputImage,
    values_refiner: dict[str, Any],
    seed: int = -1,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    sampler: str = "Default",
    schedule_type: str = "Automatic",
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    output_type: str = "pil",
    model: str = "",
) -> SdxlJob:
    """Refine any existing image (an unCLIP variation, a photo): encoded with the refiner's VAE, then img2img.

    An image has no switch point, so this is always refine mode (refine_strength, refiner_steps). Prompts left
    None come from the image's own infotext when it has one. The result's infotext is the image's plus the
    refiner's fields.
    """
    source_prompt, source_negative, source_fields = parse_infotext(image.infotext or "")
    pixels = refiner.image_processor.preprocess(image.image)
    latents = encode_pixels(refiner.vae, pixels)
    job = _refine(
        refiner,
        latents,
        values_refiner,
        seed,
        prompt=source_prompt if prompt is None else prompt,
        negative_prompt=source_negative if negative_prompt is None else negative_prompt,
        sampler=sampler,
        schedule_type=schedule_type,
        progress=progress,
        should_stop=should_stop,
        output_type=output_type,
        model=model,
        fields={k: v for k, v in source_fields.items() if not k.startswith("Post-refiner")},
    )
    job.bridged = True
    return job


def refine_latents(
    refiner,
    latents: torch.Tensor,
    source_vae,
    values_refiner: dict[str, Any],
    seed: int = -1,
    prompt: str = "",
    negative_prompt: str = "",
    **kwargs: Any,
) -> SdxlJob:
    """Refine another base's latents: handed over when they are in the refiner's latent space, else bridged."""
    bridged = not same_latent_space(source_vae, refiner.vae)
    if bridged:
        latents = bridge_latents(latents, source_vae, refiner.vae)
    job = _refine(refiner, latents, values_refiner, seed, prompt, negative_prompt, **kwargs)
    job.bridged = bridged
    return job


def _refine(
    refiner,
    latents: torch.Tensor,
    values_refiner: dict[str, Any],
    seed: int,
    prompt: str,
    negative_prompt: str,
    sampler: str = "Default",
    schedule_type: str = "Automatic",
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    output_type: str = "pil",
    model: str = "",
    fields: dict[str, Any] | None = None,
) -> SdxlJob:
    """Refine mode on latents already in the refiner's space: one image per latent, seeds seed + i."""
    # 1. Check inputs
    refiner_values = REFINER.validate({**values_refiner, "refiner_mode": "refine", "enabled": True})
    base_like = {"sampler": sampler, "schedule_type": schedule_type}
    scheduler = refiner_scheduler(refiner, refiner_values, base_like)
    steps = refine_step_count(refiner_values)
    seeds = image_seeds(resolve_seed(seed), latents.shape[0])
    prompts = refiner_prompts(refiner_values, prompt, negative_prompt)
    # 2. Refine
    counter = _Progress(steps * len(seeds), progress, should_stop)
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    images = refiner_call(refiner, latents, generators, refiner_values, prompts, scheduler, counter, output_type)
    # 3. Label
    height, width = (side * refiner.vae_scale_factor for side in latents.shape[-2:])
    extra = refiner_fields(refiner_values, model)
    job = SdxlJob([], [], {"prompt": prompt, "negative_prompt": negative_prompt}, refiner_values, 0, steps)
    for seed_i, image in zip(seeds, images, strict=True):
        infotext = write_infotext(
            prompt, negative_prompt, {**(fields or {}), "Seed": seed_i, "Size": f"{width}x{height}", **extra}
        )
        job.images.append(RelayImage(image, seed_i, infotext, FINAL))
    job.interrupted = counter.interrupted
    return job


def bridge_latents(latents: torch.Tensor, source_vae, target_vae) -> torch.Tensor:
    """Latents of one model in another's latent space: decode with the source VAE, encode with the target's."""
    return encode_pixels(target_vae, decode_latents(source_vae, latents).clamp(-1, 1))


def same_latent_space(source_vae, target_vae) -> bool:
    """True only when the two VAEs are provably the same: one object, or the same config and identical weights."""
    if source_vae is target_vae:
        return True
    if type(source_vae) is not type(target_vae) or _public_config(source_vae) != _public_config(target_vae):
        return False
    source, target = source_vae.state_dict(), target_vae.state_dict()
    if source.keys() != target.keys():
        return False
    return all(source[k].shape == target[k].shape and torch.equal(source[k].cpu(), target[k].cpu()) for k in source)


def _public_config(vae) -> dict[str, Any]:
    """The VAE's architecture config without bookkeeping (`_name_or_path`, `_diffusers_version`...)."""
    return {key: value for key, value in dict(vae.config).items() if not key.startswith("_")}


def encode_pixels(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Scaled latents of pixels in [-1, 1] (the posterior mean: deterministic, as the WebUI encodes)."""
    with torch.no_grad(), _float32_if_needed(vae) as dtype:
        posterior = vae.encode(pixels.to(device=vae.device, dtype=dtype)).latent_dist
        latents = posterior.mode()
    mean, std = _latents_stats(vae, latents)
    if mean is not None:
        return ((latents - mean) * vae.config.scaling_factor / std).to(vae.dtype)
    return (latents * vae.config.scaling_factor).to(vae.dtype)


def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Pixels in about [-1, 1] of scaled latents, as the SDXL pipelines decode them."""
    mean, std = _latents_stats(vae, latents)
    unscaled = (
        latents * std / vae.config.scaling_factor + mean if mean is not None else latents / vae.config.scaling_factor
    )
    with torch.no_grad(), _float32_if_needed(vae) as dtype:
        return vae.decode(unscaled.to(device=vae.device, dtype=dtype), return_dict=False)[0]


def decode_images(pipe, vae, latents: torch.Tensor, output_type: str = "pil") -> list:
    """Images of latents, decoded and post-processed as the pipeline itself would (watermark included)."""
    if output_type == "latent":
        return list(latents)
    pixels = decode_latents(vae, latents)
    if getattr(pipe, "watermark", None) is not None:
        pixels = pipe.watermark.apply_watermark(pixels)
    return list(pipe.image_processor.postprocess(pixels, output_type=output_type))


def _latents_stats(vae, latents: torch.Tensor):
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is None or std is None:
        return None, None
    as_tensor = lambda v: torch.tensor(v).view(1, -1, 1, 1).to(latents.device, latents.dtype)  # noqa: E731
    return as_tensor(mean), as_tensor(std)


@contextmanager
def _float32_if_needed(vae) -> Iterator[torch.dtype]:
    """The SDXL VAE overflows in float16 (`force_upcast`): run it in float32 for this call only."""
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        yield torch.float32 if upcast else vae.dtype
    finally:
        if upcast:
            vae.to(dtype=torch.float16)


# --- loading ------------------------------------------------------------------------------------------------------


def load_sdxl_relay(
    base: str | None,
    refiner: str | None,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    offload: bool = False,
    max_batch: int = 4,
) -> SdxlRelay:
    """Load a base and/or refiner; the refiner reuses the base's text_encoder_2 and VAE when they are identical.

    `offload` keeps only the running model on the GPU (diffusers' `enable_model_cpu_offload`, which needs
    accelerate and a CUDA device); on the CPU it does nothing: both models simply stay in memory.
    """
    default_dev, default_dtype = default_device()
    device, dtype = device or default_dev, dtype or default_dtype
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    base_pipe = load_pipeline(StableDiffusionXLPipeline, base, dtype) if base else None
    refiner_pipe = None
    if refiner:
        shared = shareable_components(base, refiner) if base_pipe is not None else ()
        components = {name: getattr(base_pipe, name) for name in shared}
        refiner_pipe = load_pipeline(StableDiffusionXLImg2ImgPipeline, refiner, dtype, **components)
    for pipe in (base_pipe, refiner_pipe):
        if pipe is not None:
            _place(pipe, device, offload)
            pipe.set_progress_bar_config(disable=True)
    return SdxlRelay(
        base_pipe, refiner_pipe, model_name(base) if base else "", model_name(refiner) if refiner else "", max_batch
    )


def _place(pipe, device: str, offload: bool) -> None:
    if offload and str(device).startswith("cuda") and _has_accelerate():
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)


def _has_accelerate() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


def shareable_components(base: str, refiner: str) -> tuple[str, ...]:
    """Which of text_encoder_2 / vae the refiner can take from the base: both local diffusers folders (or cached
    Hugging Face snapshots) with the same config and weight files of identical size, first and last MiB."""
    base_dir, refiner_dir = _local_folder(base), _local_folder(refiner)
    if base_dir is None or refiner_dir is None:
        return ()
    shared = []
    for name in SHAREABLE:
        fingerprint = component_fingerprint(base_dir / name)
        if fingerprint is not None and fingerprint == component_fingerprint(refiner_dir / name):
            shared.append(name)
    return tuple(shared)


def component_fingerprint(folder: Path) -> tuple | None:
    """(config hash, then name, size, sha256 of first + last MiB per weight file) of one component folder.

    Hashing two MiB instead of gigabytes keeps this instant; equal sizes and ends of a safetensors file (its header
    names every tensor and offset) make different weights in between very unlikely. Variant files (`*.fp16.*`) are
    ignored unless a folder has nothing else, as from_pretrained without a variant ignores them.
    """
    config = folder / "config.json"
    if not config.is_file():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    plain = [p for p in files if p.name.count(".") == 1]
    files = plain or files
    if not files:
        return None
    return (hashlib.sha256(config.read_bytes()).hexdigest(), *(_file_fingerprint(p) for p in files))


def _file_fingerprint(path: Path) -> tuple[str, int, str]:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(FINGERPRINT_CHUNK))
        if size > FINGERPRINT_CHUNK:
            handle.seek(max(size - FINGERPRINT_CHUNK, FINGERPRINT_CHUNK))
            digest.update(handle.read())
    return path.name, size, digest.hexdigest()


def _local_folder(spec: str) -> Path | None:
    """The diffusers folder of a spec: a local folder, or the cached snapshot of a Hugging Face id (never fetched)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.suffix or path.exists() or spec.count("/") != 1:
        return None  # single-file checkpoints hold every component in one file: nothing to compare cheaply
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no hub client): load both models in full
        return None
