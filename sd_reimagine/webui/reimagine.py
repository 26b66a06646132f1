"""Reimagine on the WebUI family's own processing and samplers: what A1111 and Forge share (the parameter group on the
host's sampler lists, the processing object of a plan, the job's result and timings). Each host's `reimagine.py`
adds its checkpoint swap and conditioning (`a1111/reimagine.py`, `forge/reimagine.py`)."""

from __future__ import annotations

import time
from dataclasses import replace

from ..reimagine_plan import FIRST_REFERENCE, GeneratedImage, ReimaginePlan, VariationResult
from ..schema import DEFAULT_SAMPLER, REIMAGINE, ParamGroup
from . import settings
from .host import HostLists, live_lists
from .reimagine_post_step import image_seeds
from .swap_records import SWAP_TIMES

MODEL_TOOLTIP = "WebUI checkpoint title, name or hash (empty: the Reimagine setting, else the first unCLIP found)."


def host_group(lists: HostLists | None = None) -> ParamGroup:
    """REIMAGINE with the WebUI's samplers and schedule types, and the model defaulting to the setting."""
    lists = lists or live_lists()
    samplers = [DEFAULT_SAMPLER, *lists.samplers]
    schedules = list(lists.schedule_types)
    model = replace(REIMAGINE["model"], default="", label="unCLIP checkpoint", tooltip=MODEL_TOOLTIP)
    group = REIMAGINE.replace(model)
    sampler = replace(REIMAGINE["sampler"], tooltip=f"'{DEFAULT_SAMPLER}' is the WebUI's default sampler.")
    group = group.replace(sampler.with_choices(samplers, DEFAULT_SAMPLER))
    return group.replace(REIMAGINE["schedule_type"].with_choices(schedules, "Automatic"))


def webui_sampler(name: str) -> str:
    """'Default' is the WebUI's default sampler; other names are the WebUI's own."""
    from modules import sd_samplers

    return sd_samplers.samplers[0].name if name in ("", DEFAULT_SAMPLER) else name


def make_processing(plan: ReimaginePlan, save: bool, is_api: bool, classes: tuple[type, type]):
    """The txt2img (or, starting from the first reference, img2img) processing of a plan; the model is loaded.

    classes: the (txt2img, img2img) processing classes whose conditioning carries the references."""
    txt2img_class, img2img_class = classes
    values = plan.values
    outdir = settings.outdir()
    common = dict(
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"],
        seed=values["seed"],
        subseed=-1,
        subseed_strength=0,
        steps=values["steps"],
        cfg_scale=values["cfg_scale"],
        sampler_name=webui_sampler(values["sampler"]),
        scheduler=values["schedule_type"],
        width=values["width"],
        height=values["height"],
        batch_size=len(plan.batches[0]),
        n_iter=len(plan.batches),
        do_not_save_samples=not save,
        do_not_save_grid=True,
        outpath_samples=outdir,
        outpath_grids=outdir,
    )
    if plan.start == FIRST_REFERENCE:
        first = plan.references[0].image.image
        p = img2img_class(init_images=[first], denoising_strength=plan.denoise, resize_mode=0, **common)
    else:
        p = txt2img_class(**common)
    p.extra_generation_params.update(plan.fields())
    p.is_api = is_api
    return p


def job_result(processed, plan: ReimaginePlan, timings: dict[str, float]) -> VariationResult:
    """The job's images (refined ones, then any kept base images) with their seeds and infotexts."""
    from modules import shared

    count = len(processed.infotexts[: len(processed.images)])
    seeds = image_seeds(count, list(processed.all_seeds[: len(plan.seeds)]))
    images = [
        GeneratedImage(image, seed, text)
        for image, seed, text in zip(processed.images[:count], seeds, processed.infotexts[:count], strict=True)
    ]
    interrupted = bool(shared.state.interrupted) or len(images) < len(plan.seeds)
    return VariationResult(images, plan.values, interrupted, {k: round(v, 4) for k, v in timings.items()})


def job_timings(started: float, sampling_s: float, swaps_before: int) -> dict[str, float]:
    """total_s, sampling_s and the seconds of each swap action (swap_s, restore_s) since `swaps_before`."""
    timings = {"total_s": time.perf_counter() - started, "sampling_s": sampling_s}
    for record in SWAP_TIMES[swaps_before:]:
        timings[f"{record['action']}_s"] = timings.get(f"{record['action']}_s", 0.0) + record["seconds"]
    return timings
