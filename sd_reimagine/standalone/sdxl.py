"""The SDXL base + refiner relay on diffusers: it executes the core's refiner plan (`sd_reimagine.refiner_plan`).

The relay calls diffusers' own `StableDiffusionXLPipeline` and `StableDiffusionXLImg2ImgPipeline` with the right
arguments rather than re-implementing their loops, so that a job equals the two documented diffusers calls (the
"ensemble of expert denoisers" recipe) on the same weights and generators. Each batch is one call per model with one
CPU generator per image: fewer UNet calls than one call per image, and an image's pixels depend on its seed, not on
its position in the batch (up to float rounding of batched kernels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ParamError, ReimagineError
from ..images import InputImage
from ..infotext import job_infotext, parse_infotext, write_infotext
from ..mixing import image_seeds, resolve_seed
from ..refiner_plan import PIXELS, SDXL_SPACE, BaseFacts, HandoffSplit, RefinerPlan, plan_refiner
from ..reimagine_plan import GeneratedImage
from ..schedule import switch_timestep
from ..schema import REFINER, SDXL
from .latents import bridge_latents, decode_images, encode_pixels
from .schedulers import make_scheduler

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]

FINAL = "final"
BASE = "base"
EXISTING_IMAGE = "an existing image"


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
class StepCounter:
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
class _Job:
    """A job ready to run: checked values, seeds, schedulers, and the core's plan with its handoff split."""

    values: dict[str, Any]
    refiner_values: dict[str, Any]
    seeds: list[int]
    base_scheduler: Any
    base_steps: int
    refiner: RefinerPlan | None = None
    refiner_scheduler: Any = None
    split: HandoffSplit | None = None

    @property
    def refiner_steps(self) -> int:
        if self.refiner is None:
            return 0
        return self.split.refiner_steps if self.split is not None else self.refiner.steps_run


def refiner_kind(pipe) -> str:
    """The checkpoint kind of a loaded SDXL img2img pipeline: a refiner conditions on aesthetic scores."""
    return "sdxl-refiner" if getattr(pipe.config, "requires_aesthetics_score", False) else "sdxl-base"


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
        # 1. Check inputs and plan both models' steps before any model runs
        plan = self.plan(values_sdxl, values_refiner)
        counter = StepCounter(len(plan.seeds) * (plan.base_steps + plan.refiner_steps), progress, should_stop)
        job = SdxlJob([], [], plan.values, plan.refiner_values, plan.base_steps, plan.refiner_steps)
        # 2. Run batch by batch: base, then refiner on the base's latents (no VAE round trip)
        for start in range(0, len(plan.seeds), self.max_batch):
            seeds = plan.seeds[start : start + self.max_batch]
            generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
            latents = self.run_base(plan, generators, counter)
            final = latents
            if plan.refiner is not None and not counter.interrupted:  # an interrupted base keeps its image
                final = self.run_refiner(plan, latents, generators, counter)
            # 3. Decode and label
            self.collect(job, plan, seeds, latents, final, output_type)
            if counter.interrupted:
                job.interrupted = True
                break
        return job

    def plan(self, values_sdxl: dict[str, Any], values_refiner: dict[str, Any]) -> _Job:
        """Validated values, fresh schedulers and the core's plan; raises ParamError naming a bad value."""
        if self.base is None:
            raise ReimagineError("this SDXL relay has no base model loaded: use refine_image for existing images")
        values = SDXL.validate(values_sdxl)
        refiner_values = REFINER.validate(values_refiner)
        values["seed"] = resolve_seed(values["seed"])
        base_scheduler = make_scheduler(self.base.scheduler, values["sampler"], values["schedule_type"])
        base_timesteps = _timesteps(base_scheduler, values["steps"])
        job = _Job(
            values, refiner_values, image_seeds(values["seed"], values["n"]), base_scheduler, len(base_timesteps)
        )
        if not refiner_values["enabled"]:
            return job
        if self.refiner is None:
            raise ReimagineError("the SDXL refiner post-step is enabled but no refiner model is loaded")
        facts = base_facts(values, SDXL_SPACE, refiner_kind(self.refiner))
        job.refiner = plan_refiner(refiner_values, facts, self.refiner_name)
        job.refiner_scheduler = refiner_scheduler(self.refiner, job.refiner)
        if job.refiner.mode == "handoff":
            cutoff = switch_timestep(refiner_values["switch_at"])
            refiner_timesteps = _timesteps(job.refiner_scheduler, values["steps"])
            job.split = job.refiner.split(base_timesteps, cutoff, refiner_levels=refiner_timesteps)
            job.base_steps = job.split.base_steps
        return job

    def run_base(self, plan: _Job, generators: list[torch.Generator], counter: StepCounter) -> torch.Tensor:
        """The base's latents: finished, or stopped at the switch point in handoff mode."""
        values = plan.values
        kwargs: dict[str, Any] = {}
        if plan.refiner is not None and plan.refiner.mode == "handoff":
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

    def run_refiner(self, plan: _Job, latents, generators, counter: StepCounter, output_type: str = "latent"):
        """The refiner on the base's latents: the rest of the schedule (handoff) or img2img at a strength (refine)."""
        schedule: dict[str, Any] = {}
        if plan.refiner.mode == "handoff":
            schedule = {
                "num_inference_steps": plan.values["steps"],
                "denoising_start": plan.refiner.values["switch_at"],
            }
        return refiner_call(
            self.refiner, latents, generators, plan.refiner, plan.refiner_scheduler, counter, output_type, **schedule
        )

    def collect(self, job: SdxlJob, plan: _Job, seeds, base_latents, final_latents, output_type: str) -> None:
        """Decode the batch's latents and append labelled images with the plan's infotext."""
        infotext_values = {**plan.values, "base": self.base_name}
        refined = plan.refiner is not None and final_latents is not base_latents
        extra = plan.refiner.fields(plan.split) if plan.refiner is not None else {}
        final_pipe = self.refiner if refined else self.base
        for seed, image in zip(
            seeds, decode_images(final_pipe, final_pipe.vae, final_latents, output_type), strict=True
        ):
            infotext = job_infotext(SDXL, infotext_values, seed, self.base_name, extra)
            job.images.append(RelayImage(image, seed, infotext, FINAL))
        if not (refined and plan.refiner.keep_base):
            return
        base_extra = plan.refiner.base_fields(plan.split)
        for seed, image in zip(seeds, decode_images(self.base, self.base.vae, base_latents, output_type), strict=True):
            infotext = job_infotext(SDXL, infotext_values, seed, self.base_name, base_extra)
            job.base_images.append(RelayImage(image, seed, infotext, BASE))

    def refine_image(self, image: InputImage, values_refiner: dict[str, Any], seed: int = -1, **kwargs) -> SdxlJob:
        """Refine an existing image with this relay's refiner (the pixel bridge); see `refine_image`."""
        return refine_image(self.refiner, image, values_refiner, seed, model=self.refiner_name, **kwargs)


# --- refiner calls shared by the relay and the image path -------------------------------------------------------


def refiner_call(
    refiner,
    latents: torch.Tensor,
    generators: list[torch.Generator],
    plan: RefinerPlan,
    scheduler,
    counter: StepCounter,
    output_type: str = "latent",
    **schedule: Any,
):
    """One img2img call of the refiner on latents in its own latent space; strength unless `schedule` overrides."""
    values = plan.values
    with using_scheduler(refiner, scheduler):
        return refiner(
            image=latents,
            prompt=plan.prompt,
            negative_prompt=plan.negative_prompt or None,  # an empty negative prompt is zeros, as in the WebUI
            strength=values["refine_strength"],
            num_inference_steps=schedule.pop("num_inference_steps", values["refiner_steps"]),
            guidance_scale=values["refiner_cfg_scale"],
            aesthetic_score=values["aesthetic_score"],
            negative_aesthetic_score=values["negative_aesthetic_score"],
            num_images_per_prompt=len(generators),
            generator=_one_or_list(generators),
            output_type=output_type,
            callback_on_step_end=counter.callback,
            **schedule,
        ).images


def refiner_scheduler(refiner, plan: RefinerPlan):
    """A fresh scheduler for the refiner with the plan's sampler and schedule type."""
    try:
        return make_scheduler(refiner.scheduler, plan.sampler, plan.schedule_type)
    except ParamError as exc:
        raise ParamError("refiner_" + exc.name, exc.value, exc.allowed) from None


def base_facts(values: dict[str, Any], latent_space: str, kind: str, bridge_reason: str = "") -> BaseFacts:
    """What the standalone host knows of a base pass (any diffusers scheduler can stop and continue a schedule)."""
    return BaseFacts(
        prompt=values.get("prompt", ""),
        negative_prompt=values.get("negative_prompt", ""),
        sampler=values.get("sampler", "Default"),
        schedule_type=values.get("schedule_type", "Automatic"),
        latent_space=latent_space,
        refiner_kind=kind,
        bridge_reason=bridge_reason,
    )


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


# --- refining latents or images of any source ------------------------------------------------------------------


def refine_image(refiner, image: InputImage, values_refiner: dict[str, Any], seed: int = -1, **kwargs: Any) -> SdxlJob:
    """Refine any existing image (an unCLIP variation, a photo): encoded with the refiner's VAE, then img2img.

    An image has no switch point, so this is always refine mode. Prompts left None come from the image's own
    infotext when it has one; the result's infotext is the image's plus the refiner's fields.
    """
    source_prompt, source_negative, source_fields = parse_infotext(image.infotext or "")
    prompt, negative = kwargs.pop("prompt", None), kwargs.pop("negative_prompt", None)
    latents = encode_pixels(refiner.vae, refiner.image_processor.preprocess(image.image))
    kept = {k: v for k, v in source_fields.items() if not k.startswith("Post-refiner")}
    return _refine(
        refiner,
        latents,
        values_refiner,
        seed,
        source_prompt if prompt is None else prompt,
        source_negative if negative is None else negative,
        space=PIXELS,
        bridge_reason=EXISTING_IMAGE,
        fields=kept,
        **kwargs,
    )


def refine_latents(
    refiner, latents: torch.Tensor, source_space: str, source_vae, values_refiner: dict[str, Any], **kwargs: Any
) -> SdxlJob:
    """Refine another base's latents: handed over in the SDXL latent space, else bridged through pixels."""
    if source_space != SDXL_SPACE:
        latents = bridge_latents(latents, source_vae, refiner.vae)
    return _refine(refiner, latents, values_refiner, space=source_space, **kwargs)


def _refine(
    refiner,
    latents: torch.Tensor,
    values_refiner: dict[str, Any],
    seed: int = -1,
    prompt: str = "",
    negative_prompt: str = "",
    sampler: str = "Default",
    schedule_type: str = "Automatic",
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    output_type: str = "pil",
    model: str = "",
    space: str = PIXELS,
    bridge_reason: str = "",
    fields: dict[str, Any] | None = None,
) -> SdxlJob:
    """Refine mode on latents already in the refiner's space: one image per latent, seeds seed + i."""
    # 1. Check inputs and plan
    refiner_values = REFINER.validate({**values_refiner, "refiner_mode": "refine", "enabled": True})
    base_like = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "sampler": sampler,
        "schedule_type": schedule_type,
    }
    plan = plan_refiner(refiner_values, base_facts(base_like, space, refiner_kind(refiner), bridge_reason), model)
    scheduler = refiner_scheduler(refiner, plan)
    seeds = image_seeds(resolve_seed(seed), latents.shape[0])
    # 2. Refine
    counter = StepCounter(plan.steps_run * len(seeds), progress, should_stop)
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    images = refiner_call(refiner, latents, generators, plan, scheduler, counter, output_type)
    # 3. Label
    height, width = (side * refiner.vae_scale_factor for side in latents.shape[-2:])
    job = SdxlJob([], [], {"prompt": prompt, "negative_prompt": negative_prompt}, refiner_values, 0, plan.steps_run)
    for seed_i, image in zip(seeds, images, strict=True):
        own = {"Seed": seed_i, "Size": f"{width}x{height}"}
        infotext = write_infotext(prompt, negative_prompt, {**(fields or {}), **own, **plan.fields()})
        job.images.append(RelayImage(image, seed_i, infotext, FINAL))
    job.bridged = plan.handover == PIXELS
    job.interrupted = counter.interrupted
    return job
