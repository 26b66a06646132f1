"""SDXL Refiner post-step hooks in A1111: the shared hooks (`webui.refiner`) with A1111's facts and swap.

What is A1111's own:
- facts: a swap loads a checkpoint when the user's model, the base and the refiner do not all fit in
  `sd_checkpoints_limit` (and the limit note is logged once when every swap is a disk load);
- the switch sigma comes from the base model's `alphas_cumprod`;
- the swap (`a1111.swap.swapped_model`: the user's model and VAE come back also after an error or an interrupt),
  with the refiner's own VAE loaded into it (`keep_own_vae`: a globally selected VAE is never applied to it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ...refiner_plan import BaseFacts
from .. import refiner as shared_hooks
from .. import settings
from ..checkpoint_lookup import checkpoint_kind, loaded_checkpoint
from ..host import live_lists
from ..refiner_batches import defer_batch
from ..refiner_job import RefinerJob, webui_facts
from ..refiner_step import finish_refining, prepare_batch, refine_batch
from . import swap

script_values = shared_hooks.script_values
pasted_values = shared_hooks.pasted_values
postprocess = shared_hooks.postprocess  # kept base images, and batches an interrupt left waiting
postprocess_batch_list = shared_hooks.postprocess_batch_list  # one residency: waiting batches shown with the last


def refiner_facts(p, values: Mapping[str, Any], info, base_model=None, pixels_reason: str = "") -> BaseFacts:
    """webui_facts with the running WebUI's sampler list, the refiner file's kind and A1111's swap cost."""
    is_sdxl = None if base_model is None else bool(getattr(base_model, "is_sdxl", False))
    continuing = live_lists().continuing_samplers
    kind = checkpoint_kind(info.filename)
    loads = swap_loads(base_model, info)
    residency = settings.refiner_residency()
    return webui_facts(p, values, kind, continuing, is_sdxl, pixels_reason, residency=residency, swap_loads=loads)


def swap_loads(base_model, info) -> bool:
    """A1111's fact: the user's model, the base and the refiner do not all fit in `sd_checkpoints_limit`."""
    from modules import shared

    base_info = getattr(base_model, "sd_checkpoint_info", None) if base_model is not None else loaded_checkpoint()
    titles = [str(shared.opts.sd_model_checkpoint or ""), getattr(base_info, "title", ""), info.title]
    return swap.swap_would_load(swap.checkpoints_limit(), titles)


def before_process(p, args: Sequence[Any]) -> None:
    """The shared before_process with A1111's facts; says once when every swap is a disk load."""
    if shared_hooks.before_process(p, args, facts=refiner_facts) is not None:
        swap.limit_warning()


def before_sampling(p) -> None:
    """Handoff: cut the base's schedule at the switch sigma (only the last pass when hires fix runs)."""
    from modules import shared

    job = shared_hooks.handoff_job(p)
    if job is not None:
        shared_hooks.cut_schedule(p, job, [float(a) for a in shared.sd_model.alphas_cumprod])


def post_sample(p, ps) -> None:
    """Refine this batch, or keep it for one residency (the plan says which); errors fail the job."""
    from modules import shared

    def one_residency(p, job: RefinerJob) -> bool:
        return shared_hooks.planned_residency(p, job, shared.sd_model)

    def defer(p, job: RefinerJob, samples, stopped: bool):
        return defer_batch(p, job, samples, stopped, residency=swapped_model_guard)

    shared_hooks.post_sample(p, ps, one_residency, defer, run_post_step)


def run_post_step(p, job: RefinerJob, samples):
    """Base output (latents, or pixels after hires fix) -> refined pixels (`DecodedSamples`), as the plan says."""
    batch = prepare_batch(p, job, samples)
    with swapped_model_guard(job) as refiner_model:
        job.plan = replace(job.plan, refiner=job.info.short_title)  # with its hash now that it is loaded
        result = refine_batch(p, job, batch, refiner_model)
    finish_refining(p, job, [batch])
    return result


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
