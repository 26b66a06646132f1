"""The SDXL Refiner post-step's Forge parts (used by `forge.profile.ForgeProfile`), executing the same core plan.

Forge keeps A1111's processing loop, k-diffusion sampler wrappers, prompt parser and RNG, so the refiner pass itself
is the shared one (`webui.refiner_step`: hand-over or pixel bridge, conditioning at the job's aesthetic scores,
sampling the plan's sigmas, decoding with the refiner's VAE, kept base images). What differs here:
- the swap (`forge.swap.swapped_checkpoint`): the refiner loads with no additional modules (a VAE or text encoder
  the user picked for the base is never applied to it) and without the base's LoRAs (a fresh model, its
  `forge_objects_original`); the user's checkpoint and modules are put back in `finally` (success, error, interrupt,
  skip) and Forge reloads the user's model where it needs it next (the next batch or job), as its own refiner does;
- the switch sigma comes from the Forge predictor's sigma table;
- one refiner residency per job as on A1111 (`webui.refiner_batches`, the same plan and setting): Forge keeps one
  model resident, so every swap loads and the plan chooses one residency: with batch count N > 1 the base stays
  loaded for every batch, then one Forge swap refines them all (`forge_residency`);
- Forge's built-in refiner, when also on, is switched off for the job by the plan (`Post-refiner note`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

from ...refiner_plan import plan_refiner
from .. import refiner as shared_hooks
from ..refiner_job import RefinerJob
from ..refiner_step import prepare_batch, record_plan, refine_batch
from .swap import swapped_checkpoint

CUT_ATTR = "reimagine_refiner_cut"


def alphas_cumprod(model) -> list[float]:
    """The base's training schedule from Forge's predictor (alpha_bar = 1 / (1 + sigma^2))."""
    sigmas = model.forge_objects.unet.model.predictor.sigmas
    return [float(a) for a in (1.0 / (1.0 + sigmas.double() ** 2))]


def before_sampling(p) -> None:
    """Handoff: cut the base's schedule at the switch sigma (the last pass only; once per sampler)."""
    job = shared_hooks.handoff_job(p)
    if job is None or getattr(p.sampler, CUT_ATTR, None) is job:  # Forge calls this hook twice in the hires pass
        return
    setattr(p.sampler, CUT_ATTR, job)
    shared_hooks.cut_schedule(p, job, alphas_cumprod(p.sd_model))


def forge_plan(p, job: RefinerJob):
    """The job's plan with Forge's facts as the first base batch has run (residency, note)."""
    return plan_refiner(job.values, job.facts(p, job.values, job.info, p.sd_model), job.plan.refiner)


def prepare_forge_batch(p, job: RefinerJob, samples, keep_pixels: bool = False):
    """`prepare_batch` while the base is loaded, with Forge's sampling set up for the handoff's x0 estimate."""
    from backend.sampling.sampling_function import sampling_cleanup, sampling_prepare

    base_unet = p.sd_model.forge_objects.unet
    if job.mode == "handoff" and job.handoff.latents is not None:
        sampling_prepare(base_unet, x=job.handoff.latents)  # the base's x0 estimate at the switch takes one call
    try:
        batch = prepare_batch(p, job, samples, keep_pixels=keep_pixels)
    finally:
        if job.mode == "handoff" and job.handoff.latents is not None:
            sampling_cleanup(base_unet)
    planned = forge_plan(p, job)
    job.plan = replace(job.plan, one_residency=job.one_residency, note=planned.note)
    if keep_pixels:
        batch.handoff.sampler = None  # a waiting batch must not keep the base (through its sampler) in memory
    return batch


@contextmanager
def forge_residency(job: RefinerJob, p=None):
    """The refiner loaded by Forge's swap, with no base LoRA; the user's checkpoint is Forge's next load.

    p: the job, whose references to the base are dropped first so that Forge frees it (one model resident)."""
    if p is not None:
        release_base(p, job)
    with swapped_checkpoint(job.info, field="refiner") as refiner_model:
        refiner_model.forge_objects = refiner_model.forge_objects_original.shallow_copy()  # no base LoRA
        job.plan = replace(job.plan, refiner=job.info.short_title)
        yield refiner_model


def run_post_step(p, job: RefinerJob, samples):
    """Base output -> refined pixels: base facts and images while the base is loaded, then the refiner pass."""
    batch = prepare_forge_batch(p, job, samples)
    with forge_residency(job, p) as refiner_model:
        result = refine_batch(p, job, batch, refiner_model)
    record_plan(p, job)
    if job.plan.keep_base and batch.pixels is not None:
        first = batch.iteration * p.batch_size
        job.base_images.extend((batch.pixels[i].cpu(), first + i) for i in range(len(batch.pixels)))
    return result


def release_base(p, job: RefinerJob) -> None:
    """Drop the job's references to the base model (through its sampler) so that Forge frees it before it loads the
    refiner: one model resident, as Forge plans its memory (the sampler is not used after sampling)."""
    job.handoff.sampler = None
    p.sampler = None
