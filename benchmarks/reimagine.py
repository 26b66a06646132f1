"""Items 1 and 2: Reimagine jobs vs diffusers' StableUnCLIPImg2ImgPipeline, and "Generate again" with caches."""

from __future__ import annotations

from typing import Any

import torch

from .harness import SIZES, Settings, alternate, reference_images, row, timer_for, unclip_pipe

WEIGHTS = (0.5, 0.3, 0.2)
CFG = 7.0
SEED = 1234


def job_values(size: str, n: int) -> dict[str, Any]:
    spec = SIZES[size]
    return {
        "n": n,
        "seed": SEED,
        "steps": spec["steps"],
        "cfg_scale": CFG,
        "width": spec["side"],
        "height": spec["side"],
    }


def _reference_call(pipe, image, values: dict[str, Any]):
    def call():
        generator = torch.Generator(device="cpu").manual_seed(values["seed"])
        return pipe(
            image=image.image,
            prompt="",
            height=values["height"],
            width=values["width"],
            num_inference_steps=values["steps"],
            guidance_scale=values["cfg_scale"],
            num_images_per_prompt=values["n"],
            noise_level=0,
            generator=generator,
            output_type="np",
        )

    return call


def bench_reimagine(size: str, settings: Settings, pipe=None) -> list[dict[str, Any]]:
    """Item 1: 1 and 4 variations of one reference, and 4 of three weighted references, vs the diffusers pipeline.

    Ours runs with use_cache=False (a first job on a new reference: every encoder runs, as in the reference).
    """
    from sd_reimagine.mixing import Reference
    from sd_reimagine.standalone.unclip import UnclipVariations

    pipe = pipe or unclip_pipe(SIZES[size]["scale"])
    timer = timer_for(pipe)
    images = reference_images(3)
    runner = UnclipVariations(pipe, "bench", max_batch=4, use_cache=False)
    cases = [
        ("1 variation, 1 reference", [Reference(images[0])], 1, ""),
        ("4 variations, 1 reference", [Reference(images[0])], 4, ""),
        (
            "4 variations, 3 weighted references",
            [Reference(im, w) for im, w in zip(images, WEIGHTS, strict=True)],
            4,
            "reference = the single-reference pipeline call (diffusers has no weighted mix)",
        ),
    ]
    rows = []
    try:
        for name, refs, n, note in cases:
            values = job_values(size, n)

            def ours(refs=refs, values=values):
                return runner(refs, dict(values), output_type="np")

            mine, theirs = alternate(ours, _reference_call(pipe, refs[0].image, values), settings, timer)
            label = "StableUnCLIPImg2ImgPipeline" + (", num_images_per_prompt=4" if n == 4 else "")
            rows.append(
                row(
                    "1 Reimagine",
                    size,
                    name,
                    mine,
                    theirs,
                    label,
                    target="ratio <= 1.0, overhead <= 1.03",
                    note=note,
                    overhead=True,
                )
            )
    finally:
        timer.detach()
    return rows


def bench_generate_again(size: str, settings: Settings, pipe=None) -> list[dict[str, Any]]:
    """Item 2: the same job again on the same reference, caches on (default) vs use_cache=False."""
    from sd_reimagine.mixing import Reference
    from sd_reimagine.standalone.unclip import UnclipVariations

    pipe = pipe or unclip_pipe(SIZES[size]["scale"])
    refs = [Reference(reference_images(1)[0])]
    values = job_values(size, 1)
    cached = UnclipVariations(pipe, "bench", use_cache=True)
    fresh = UnclipVariations(pipe, "bench", use_cache=False)
    mine, theirs = alternate(
        lambda: cached(refs, dict(values), output_type="np"),
        lambda: fresh(refs, dict(values), output_type="np"),
        settings,
    )
    return [
        row(
            "2 Generate again",
            size,
            "1 variation, same reference, cached",
            mine,
            theirs,
            "same runner, use_cache=False",
            target="ratio < 1.0",
            note="cache skips image encoder + prompt encoding",
        )
    ]
