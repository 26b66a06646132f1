"""The GPU benchmark's jobs, each as ours (the standalone host's runners) and diffusers' own pipeline calls on the
same weights: Reimagine on unCLIP-H, SDXL base + refiner handoff, Reimagine XL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

PROMPT = "a lighthouse on a cliff at dusk"
SEED, CFG, SWITCH_AT = 1234, 7.0, 0.8


@dataclass(frozen=True)
class Size:
    """Image side, steps and image count of each job."""

    unclip_side: int
    unclip_steps: int
    unclip_n: int
    xl_side: int
    xl_steps: int
    xl_n: int


REAL = Size(unclip_side=768, unclip_steps=20, unclip_n=4, xl_side=1024, xl_steps=30, xl_n=1)
TINY = Size(unclip_side=64, unclip_steps=4, unclip_n=4, xl_side=64, xl_steps=4, xl_n=1)


@dataclass
class Job:
    """One comparison: a name, our call, diffusers' call, the UNets that run, what the reference is."""

    name: str
    ours: Callable[[], Any]
    reference: Callable[[], Any]
    unets: tuple
    reference_name: str
    note: str = ""


def _generator() -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(SEED)


def _values(side: int, steps: int, n: int, prompt: str) -> dict[str, Any]:
    return {"prompt": prompt, "n": n, "seed": SEED, "steps": steps, "cfg_scale": CFG, "width": side, "height": side}


def reference_image(side: int = 256):
    """A deterministic noise picture as the job's reference image."""
    from benchmarks.harness import reference_images

    return reference_images(1, side)[0]


def unclip_job(models, size: Size) -> Job:
    """Reimagine (4 variations of one reference) vs StableUnCLIPImg2ImgPipeline(num_images_per_prompt=4)."""
    from sd_reimagine.mixing import Reference
    from sd_reimagine.standalone.unclip import UnclipVariations

    pipe, image = models.unclip, reference_image()
    runner = UnclipVariations(pipe, "bench-unclip-h", max_batch=size.unclip_n, use_cache=False)
    values = _values(size.unclip_side, size.unclip_steps, size.unclip_n, "")

    def reference():
        return pipe(
            image=image.image,
            prompt="",
            height=size.unclip_side,
            width=size.unclip_side,
            num_inference_steps=size.unclip_steps,
            guidance_scale=CFG,
            num_images_per_prompt=size.unclip_n,
            noise_level=0,
            generator=_generator(),
            output_type="np",
        )

    name = f"Reimagine unCLIP-H {size.unclip_side}px, {size.unclip_steps} steps, {size.unclip_n} variations"
    return Job(
        name,
        lambda: runner([Reference(image)], dict(values), output_type="np"),
        reference,
        (pipe.unet,),
        "StableUnCLIPImg2ImgPipeline",
    )


def sdxl_job(models, size: Size) -> Job:
    """The SDXL relay's handoff vs base(denoising_end, latent) + refiner(denoising_start)."""
    from sd_reimagine.standalone.sdxl import SdxlRelay

    base, refiner = models.base, models.refiner
    relay = SdxlRelay(base, refiner, "bench-base", "bench-refiner")
    values = _values(size.xl_side, size.xl_steps, 1, PROMPT)
    refiner_values = {
        "enabled": True,
        "refiner_mode": "handoff",
        "switch_at": SWITCH_AT,
        "refiner_cfg_scale": CFG,
        "keep_base": False,  # the reference returns only the refined image
    }

    def reference():
        common = {"prompt": PROMPT, "num_inference_steps": size.xl_steps, "guidance_scale": CFG}
        latents = base(
            **common,
            height=size.xl_side,
            width=size.xl_side,
            denoising_end=SWITCH_AT,
            generator=_generator(),
            output_type="latent",
        ).images
        return refiner(**common, image=latents, denoising_start=SWITCH_AT, generator=_generator(), output_type="np")

    name = f"SDXL base + refiner handoff {SWITCH_AT}, {size.xl_side}px, {size.xl_steps} steps"
    return Job(
        name,
        lambda: relay.run(dict(values), dict(refiner_values), output_type="np"),
        reference,
        (base.unet, refiner.unet),
        "StableDiffusionXLPipeline(denoising_end) + StableDiffusionXLImg2ImgPipeline(denoising_start)",
    )


def xl_job(models, size: Size) -> Job:
    """Reimagine XL (image embedding in the pooled slot, bigG vision tower) vs the SDXL pipeline's txt2img."""
    from sd_reimagine.mixing import Reference
    from sd_reimagine.standalone.reimagine_xl import XlVariations

    base, tower, image = models.base, models.tower, reference_image()
    runner = XlVariations(base, tower, "bench-xl", max_batch=4)
    values = _values(size.xl_side, size.xl_steps, size.xl_n, "")

    def ours():
        tower.cache.clear()  # a first job on this reference: the vision tower runs, as it would for a new picture
        return runner([Reference(image)], dict(values), output_type="np")

    def reference():
        return base(
            prompt="",
            height=size.xl_side,
            width=size.xl_side,
            num_inference_steps=size.xl_steps,
            guidance_scale=CFG,
            num_images_per_prompt=size.xl_n,
            generator=_generator(),
            output_type="np",
        )

    name = f"Reimagine XL {size.xl_side}px, {size.xl_steps} steps, {size.xl_n} image"
    note = "ours also runs the bigG vision tower once (the reference has no image input)"
    return Job(name, ours, reference, (base.unet,), "StableDiffusionXLPipeline (txt2img)", note)


JOBS = {"unclip": unclip_job, "sdxl": sdxl_job, "xl": xl_job}
