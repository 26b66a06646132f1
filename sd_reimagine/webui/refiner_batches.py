"""One refiner residency per job (both WebUI hosts): every batch's base output waits, then the refiner refines all.

The WebUI runs a job batch by batch (base, post_sample, decode, save); a post-step that swaps models in each batch
pays a refiner load and a base reload per batch (2N loads at `sd_checkpoints_limit` 1). When the plan says
`one_residency`, each batch's base output is kept while the base is loaded (`defer_batch`), the WebUI is given the
base image to show nothing yet (`postprocess_batch_list` empties the batch), and the last batch refines all of them
in one refiner load. Its `postprocess_batch_list` then hands the WebUI every refined image with the whole job's
prompts and seeds, so images, infotexts, saved files, names, grids and the returned result are the ones the
batch-by-batch order makes. A skip or an interrupt keeps the base image of every batch that is not refined.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import replace

from ..refiner_plan import NOTE_KEY
from .refiner_job import BaseBatch, RefinerJob
from .refiner_step import finish_refining, prepare_batch, refine_batch

log = logging.getLogger("sd_reimagine")
UNREFINED_NOTE = "refiner not run on some images: the job was interrupted or skipped (their base image is kept)"


def defer_batch(p, job: RefinerJob, samples, skipped: bool, residency, prepare=prepare_batch):
    """Keep this batch's base output; the last batch refines every batch in one refiner load.

    residency(job) -> context manager yielding the loaded refiner (the host's swap) and prepare(p, job, samples,
    keep_pixels=True) -> BaseBatch (Forge wraps the shared one)."""
    from modules import processing

    batch = prepare(p, job, samples, keep_pixels=True)
    batch.refine = not skipped
    job.deferred.append(batch)
    if p.iteration < p.n_iter - 1:
        return processing.DecodedSamples(list(batch.pixels))  # shown as nothing: postprocess_batch_list empties it
    results = refine_deferred(p, job, residency)
    return processing.DecodedSamples(results[-len(batch.seeds) :])


def refine_deferred(p, job: RefinerJob, residency) -> list:
    """Refine the kept batches in one residency; returns every image of the job (refined, or its base image)."""
    from modules import shared

    batches, job.deferred = job.deferred, []
    results, refined = [], []
    if any(batch.refine for batch in batches) and not stopped():
        with residency(job) as refiner_model:
            job.plan = replace(job.plan, refiner=job.info.short_title)
            for number, batch in enumerate(batches, 1):
                images = None
                if batch.refine and not stopped():
                    shared.state.textinfo = f"Refining batch {number} of {len(batches)}"
                    with batch_fields(p, batch):
                        images = refine_batch(p, job, batch, refiner_model)
                    images = None if stopped() else images  # a partly refined image is not kept
                if images is not None:
                    refined.append(batch)
                results.extend(images if images is not None else list(batch.pixels))
        finish_refining(p, job, refined)
    else:
        results = [pixel for batch in batches for pixel in batch.pixels]
    if len(refined) < len(batches):
        p.extra_generation_params[NOTE_KEY] = UNREFINED_NOTE
    job.flushed = results
    return results


def stopped() -> bool:
    from modules import shared

    return bool(shared.state.interrupted or shared.state.skipped)


@contextmanager
def batch_fields(p, batch: BaseBatch):
    """The job's per-batch fields (prompts, seeds, iteration) as they were when this batch's base ran."""
    names = ("prompts", "negative_prompts", "seeds", "subseeds", "iteration")
    saved = {name: getattr(p, name) for name in names}
    values = (batch.prompts, batch.negative_prompts, batch.seeds, batch.subseeds, batch.iteration)
    for name, value in zip(names, values, strict=True):
        setattr(p, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(p, name, value)


def show_batches(p, job: RefinerJob, pp) -> None:
    """postprocess_batch_list: nothing while batches wait; with the last batch, every image of the job, and the
    job's prompts and seeds for them (the WebUI names, captions and saves images by their position)."""
    import torch

    if job.deferred:
        pp.images = []
        return
    if not job.flushed:
        return
    images = [torch.clamp((torch.as_tensor(x).float() + 1.0) / 2.0, 0.0, 1.0) for x in job.flushed]
    job.flushed = []
    count = len(images)
    p.prompts, p.negative_prompts = p.all_prompts[:count], p.all_negative_prompts[:count]
    p.seeds, p.subseeds = p.all_seeds[:count], p.all_subseeds[:count]
    pp.images = images


def keep_unshown(p, job: RefinerJob, processed) -> None:
    """postprocess: batches still waiting when the job stopped early are kept as their base images, saved."""
    from modules import images, processing, shared
    from PIL import Image

    if not job.deferred:
        return
    batches, job.deferred = job.deferred, []
    p.extra_generation_params[NOTE_KEY] = UNREFINED_NOTE
    save = shared.opts.samples_save and not p.do_not_save_samples
    for batch in batches:
        for offset, pixels in enumerate(batch.pixels):
            index = batch.iteration * p.batch_size + offset
            array = torch_to_uint8(pixels)
            image = Image.fromarray(array)
            text = processing.create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=index)
            if shared.opts.enable_pnginfo:
                image.info["parameters"] = text
            if save:
                seed, prompt = p.all_seeds[index], p.all_prompts[index]
                images.save_image(
                    image, p.outpath_samples, "", seed, prompt, shared.opts.samples_format, info=text, p=p
                )
            processed.images.append(image)
            processed.infotexts.append(text)
    log.warning("Reimagine post-refiner: %s", UNREFINED_NOTE)


def torch_to_uint8(pixels):
    import numpy as np
    import torch

    array = torch.clamp((torch.as_tensor(pixels).float() + 1.0) / 2.0, 0.0, 1.0)
    return (255.0 * np.moveaxis(array.cpu().numpy(), 0, 2)).astype(np.uint8)
