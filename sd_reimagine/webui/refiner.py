"""SDXL Refiner post-step for txt2img/img2img in both WebUI hosts: the hooks' shared body, executing the core's plan.

What a job does is decided in `sd_reimagine.refiner_plan` (steps per model, hand-over or pixel bridge, kept images,
infotext); each host's module (`a1111/refiner.py`, `forge/refiner.py`) reports its facts and swaps models, and calls
these for the rest:
- before_process: parse + validate the arguments, resolve the refiner checkpoint (exact name, a kind that can
  refine, a file the loader accepts), plan, switch the built-in refiner off when the plan says so, write the
  provisional `Post-refiner ...` keys. A refused value stops the job before any sampling (`refiner_job.fail_job`).
- process_before_every_sampling (handoff only): the base sampler's sigma schedule is cut where the plan's split
  puts the switch sigma `sigma_at_timestep(alphas_cumprod, switch_timestep)` (`cut_schedule`).
- post_sample: the host's post-step re-plans with the base's latent space, swaps to the refiner (the user's model
  comes back also after an error or an interrupt), samples the plan's sigmas with the WebUI sampler and decodes
  with the refiner's VAE (`refiner_step`), or keeps the batch for one residency (`refiner_batches`).
- postprocess: kept base images (the plan's `Post-refiner output: base` fields) are appended and saved as `-base`.
Files: `refiner_job.py` (state, facts, refusals), `refiner_step.py` (the refiner pass), `refiner_ui.py` (UI,
paste-back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ReimagineError
from ..refiner_plan import (
    BRIDGE_KEY,
    NOTE_KEY,
    RefinerPlan,
    pasted_refiner_values,
    plan_refiner,
)
from ..schedule import sigma_at_timestep
from ..schema import REFINER, ParamGroup
from .checkpoint_lookup import resolve_for_role
from .host import HostLists, live_lists
from .refiner_batches import keep_unshown, show_batches
from .refiner_job import JOB_ATTR, FailedSamples, Handoff, RefinerJob, fail_job, job_error
from .refiner_step import base_image

log = logging.getLogger("sd_reimagine")

OVERRIDES_ATTR = "reimagine_refiner_overrides"
AESTHETIC_OPTIONS = ("sdxl_refiner_high_aesthetic_score", "sdxl_refiner_low_aesthetic_score")


# --- parameters --------------------------------------------------------------------------------------------------


def webui_group(lists: HostLists | None = None) -> ParamGroup:
    """REFINER with the WebUI's sampler and schedule-type names and the first detected SDXL refiner as default."""
    lists = lists or live_lists()
    samplers = ("", *lists.samplers)
    schedules = ("", *lists.schedule_types)
    group = REFINER.replace(REFINER["refiner_sampler"].with_choices(samplers, ""))
    group = group.replace(group["refiner_schedule_type"].with_choices(schedules, ""))
    return group.replace(group["refiner"].with_default(default_refiner(lists)))


def default_refiner(lists: HostLists) -> str:
    """Title of the first checkpoint detected as SDXL refiner, or '' when there is none."""
    titles = lists.checkpoints_by_kind.get("sdxl-refiner", [])
    return sorted(titles, key=str.casefold)[0] if titles else ""


def script_values(
    args: Sequence[Any],
    overrides: Mapping[str, Any] | None = None,
    strict: bool = False,
    lists: HostLists | None = None,
) -> dict[str, Any]:
    """Script arguments (positional in schema order, or one dict with the schema names) -> checked values.

    strict (API requests): the dict form must follow the JSON schema's types; the positional form also carries the
    UI's own component values, so it is converted as the UI's are.
    """
    group = webui_group(lists)
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


def pasted_values(fields: Mapping[str, str], lists: HostLists | None = None) -> dict[str, Any] | None:
    """Values for the controls from pasted infotext fields; None when the infotext has no post-step."""
    return pasted_refiner_values(webui_group(lists), fields)


# --- hooks -------------------------------------------------------------------------------------------------------


def before_process(p, args: Sequence[Any], facts: Callable[..., Any]) -> RefinerJob | None:
    """Validate, resolve the refiner, plan the job with what is known now and write the infotext keys; the job, or
    None when the post-step is off or refused.

    facts(p, values, info, base_model=None, pixels_reason=""): the host's fact builder (its `refiner_facts`)."""
    setattr(p, JOB_ATTR, None)
    try:
        values = script_values(args, getattr(p, OVERRIDES_ATTR, None), strict=bool(getattr(p, "is_api", False)))
        if not values["enabled"]:
            return None
        info = resolve_for_role(values["refiner"], "refiner", "refiner")
        plan = plan_refiner(values, facts(p, values, info), info.short_title)
    except ReimagineError as error:
        fail_job(p, error)
        return None
    job = RefinerJob(values, info, plan, facts=facts)
    setattr(p, JOB_ATTR, job)
    # provisional until the base has run: its latent space (hence any pixel bridge) is known only then
    p.extra_generation_params.update({k: v for k, v in plan.fields().items() if k != BRIDGE_KEY})
    if plan.builtin_off:
        switch_builtin_refiner_off(p, plan)
    return job


def switch_builtin_refiner_off(p, plan: RefinerPlan) -> None:
    """Execute the plan's rule: the built-in refiner does not run in this job (the note says so)."""
    p.refiner_checkpoint = None
    p.refiner_switch_at = None
    print(f"Reimagine post-refiner: {plan.note}")


def handoff_job(p) -> RefinerJob | None:
    """The job whose base schedule this sampling pass cuts (handoff mode; only the last pass when hires fix runs)."""
    job: RefinerJob | None = getattr(p, JOB_ATTR, None)
    if job is None or job.mode != "handoff":
        return None
    if getattr(p, "enable_hr", False) and not getattr(p, "is_hr_pass", False):
        return None
    return job


def cut_schedule(p, job: RefinerJob, alphas_cumprod: Sequence[float]) -> None:
    """Handoff: cut the base sampler's schedule at the switch sigma of the base's training schedule."""
    sigma_switch = sigma_at_timestep(list(alphas_cumprod), job.plan.switch_timestep)
    job.handoff = Handoff()
    stop_base_at(p.sampler, job, sigma_switch)


def stop_base_at(sampler, job: RefinerJob, sigma_switch: float) -> None:
    """Patch one sampler instance: schedule cut where the plan's split says; output latents kept."""
    from modules import sd_samplers_common

    get_sigmas, sample, sample_img2img = sampler.get_sigmas, sampler.sample, sampler.sample_img2img
    handoff = job.handoff
    handoff.sampler = sampler

    def cut_sigmas(p, steps):
        sigmas = get_sigmas(p, steps)
        handoff.sigmas = sigmas
        try:
            job.split = job.plan.split(sigmas.tolist()[:-1], sigma_switch, start=handoff.start)
        except ReimagineError as error:
            raise job_error(error) from None
        handoff.index = handoff.start + job.split.base_steps
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


def post_sample(
    p,
    ps,
    one_residency: Callable[[Any, RefinerJob], bool],
    defer: Callable[..., Any],
    refine: Callable[[Any, RefinerJob, Any], Any],
) -> None:
    """Run the refiner on this batch, or keep it for the job's one refiner residency (the plan says which); on
    error the job fails with it (the user's model is restored first).

    The host's parts: one_residency(p, job) (the plan's decision at the first batch), defer(p, job, samples,
    stopped) (`refiner_batches.defer_batch` with its swap) and refine(p, job, samples) (its post-step)."""
    from modules import shared

    job: RefinerJob | None = getattr(p, JOB_ATTR, None)
    if job is None:
        return
    stopped = bool(shared.state.interrupted or shared.state.skipped)
    try:
        if p.iteration == 0:
            job.one_residency = one_residency(p, job)
        if job.one_residency:
            ps.samples = defer(p, job, ps.samples, stopped)
        elif stopped:
            p.extra_generation_params[NOTE_KEY] = "skipped: the job was interrupted"  # reports what happened
        else:
            ps.samples = refine(p, job, ps.samples)
    except ReimagineError as error:  # the WebUI's hook wrapper would only log it: fail the job instead
        log.warning("Reimagine post-refiner stopped the job: %s", error)
        ps.samples = FailedSamples(job_error(error))
    except Exception as error:
        log.exception("Reimagine post-refiner failed")
        ps.samples = FailedSamples(error)


def planned_residency(p, job: RefinerJob, base_model) -> bool:
    """The plan's residency decision for this job, with the host's facts once the first base batch has run."""
    return plan_refiner(job.values, job.facts(p, job.values, job.info, base_model), job.plan.refiner).one_residency


def postprocess_batch_list(p, pp) -> None:
    """One residency: the WebUI shows nothing of waiting batches, then every image of the job with the last."""
    job: RefinerJob | None = getattr(p, JOB_ATTR, None)
    if job is not None and job.one_residency:
        show_batches(p, job, pp)


def postprocess(p, processed) -> None:
    """keep_base: append the base images (own infotext, saved with suffix -base) after the refined ones."""
    job: RefinerJob | None = getattr(p, JOB_ATTR, None)
    if job is None:
        return
    keep_unshown(p, job, processed)
    for pixels, index in job.base_images:
        image, text = base_image(p, pixels, index)
        processed.images.append(image)
        processed.infotexts.append(text)
    job.base_images.clear()
