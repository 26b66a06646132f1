"""Per-job state of the SDXL Refiner post-step in both WebUI hosts, the facts they report (`webui_facts`), and how a
refused job stops (HTTP 422 in the API)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import ReimagineError
from ..refiner_plan import PIXELS, RESIDENCY_AUTO, BaseFacts, HandoffSplit, RefinerPlan
from ..schema import refiner_or_base

log = logging.getLogger("sd_reimagine")

JOB_ATTR = "reimagine_refiner_job"
HIRES_OUTPUT = "hires fix output"


@dataclass
class Handoff:
    """The base's last sampling pass: its full sigma schedule, the steps it ran, its sampler and output latents."""

    sigmas: Any = None
    index: int = 0
    sampler: Any = None
    latents: Any = None
    start: int = 0


@dataclass
class BaseBatch:
    """One batch's base output, kept while the base model is loaded: what the refiner pass needs, and the base
    image (in [-1, 1]) that stands in for it when the refiner does not run."""

    iteration: int
    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int]
    latents: Any  # in the base's latent space (None: the base output was pixels)
    pixels: Any  # base image(s) in [-1, 1], or None when not needed
    handoff: Handoff = field(default_factory=Handoff)
    refine: bool = True  # False: skipped or interrupted, the base image is the result


@dataclass
class RefinerJob:
    """One job's checked values, refiner checkpoint, the core's plan and what the post-step produced."""

    values: dict[str, Any]
    info: Any
    plan: RefinerPlan
    handoff: Handoff = field(default_factory=Handoff)
    split: HandoffSplit | None = None
    base_images: list[tuple[Any, int]] = field(default_factory=list)  # (pixels in [-1, 1], image index)
    rng: Any = None  # seeded noise of the refiner pass (refine mode, pixel-bridge handoff)
    deferred: list[BaseBatch] = field(default_factory=list)  # one residency: batches waiting for the refiner
    flushed: list[Any] = field(default_factory=list)  # one residency: every batch's result, shown with the last
    one_residency: bool = False  # decided by the plan at the first batch
    # the host's facts(p, values, info, base_model, pixels_reason) -> BaseFacts, to re-plan once the base has run
    facts: Callable[..., BaseFacts] | None = None

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


class FailedSamples(list):
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


def webui_facts(
    p,
    values: Mapping[str, Any],
    refiner_kind: str,
    continuing_samplers: Collection[str],
    base_is_sdxl: bool | None = None,
    pixels_reason: str = "",
    residency: str = RESIDENCY_AUTO,
    swap_loads: bool = True,
) -> BaseFacts:
    """What the WebUI knows of a job, from the processing object `p` and the host's lists (pure: runs in CI).

    continuing_samplers: the samplers that can stop and continue a schedule (the WebUI's k-diffusion samplers);
    base_is_sdxl: None until the base has run (its model is known only then);
    residency: the Reimagine residency setting (refiner_plan.RESIDENCY_CHOICES);
    swap_loads: a swap to the refiner would load a checkpoint (the WebUI cannot keep base and refiner both loaded).
    """
    samplers = {p.sampler_name, refiner_or_base(values, "refiner_sampler", p.sampler_name)}
    if getattr(p, "enable_hr", False):
        samplers.add(getattr(p, "hr_sampler_name", None) or p.sampler_name)
    stuck = sorted(name for name in samplers if name not in continuing_samplers)
    space = "unknown" if base_is_sdxl is None else ("sdxl" if base_is_sdxl else "sd")
    builtin = getattr(p, "refiner_checkpoint", None)
    return BaseFacts(
        prompt=p.prompt if isinstance(p.prompt, str) else "",
        negative_prompt=p.negative_prompt if isinstance(p.negative_prompt, str) else "",
        sampler=p.sampler_name,
        schedule_type=getattr(p, "scheduler", None) or "Automatic",
        latent_space=PIXELS if pixels_reason else space,
        refiner_kind=refiner_kind,
        stuck_sampler=stuck[0] if stuck else "",
        bridge_reason=pixels_reason,
        builtin_refiner="" if builtin in (None, "", "None", "none") else str(builtin),
        batch_count=int(getattr(p, "n_iter", 1) or 1),
        swaps_models=True,
        cannot_defer=why_not_one_residency(p),
        swap_loads=swap_loads,
        residency=residency,
    )


def why_not_one_residency(p) -> str:
    """Why this job must load the refiner for every batch ("" when it can refine all batches at the end).

    Inpainting overlays and colour corrections are applied per image by position in the batch, so those jobs keep
    the WebUI's batch-by-batch order.
    """
    if getattr(p, "image_mask", None) is not None or getattr(p, "overlay_images", None):
        return "inpainting overlays are applied batch by batch"
    if getattr(p, "color_corrections", None):
        return "colour corrections are applied batch by batch"
    return ""
