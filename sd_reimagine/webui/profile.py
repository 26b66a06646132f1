"""What differs between the WebUI hosts, behind one small interface: the host profile.

k-diffusion's `external.py` style: the shared logic is written once here and in the shared modules, in terms of a
few small methods each host fills in (`a1111/profile.py`, `forge/profile.py`):
- checkpoint swap: `swapped_checkpoint` (the checkpoint loaded for a block, the user's model always put back) and
  `swap_note` (what a user should know about its cost);
- model facts: `alphas_cumprod` (the loaded base's training schedule) and `swap_loads` (whether a swap to the
  refiner loads a checkpoint);
- memory: `release_memory` (hand freed memory back to the host's memory manager and the system);
- sampler lists: `lists` (samplers, schedule types, the k-diffusion ones, checkpoints by kind);
- the job itself: `run_reimagine` (and `run_in_tab`, Forge: on its main thread).
`scripts/` picks the host's profile at start and hands it to the shared code, which never imports a profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import partial
from typing import Any

from ..refiner_plan import BaseFacts
from ..schema import ParamGroup
from . import refiner, settings
from .api_common import ApiHost
from .checkpoint_lookup import checkpoint_kind, loaded_checkpoint
from .host import HostLists, live_lists
from .refiner_batches import defer_batch
from .refiner_job import BaseBatch, RefinerJob, webui_facts
from .refiner_step import finish_refining, prepare_batch, refine_batch


class HostProfile:
    """One WebUI host's own parts; the shared hooks below run on them."""

    name = ""  # reported by GET /reimagine/v1/version as `host` when set

    # --- checkpoint swap ------------------------------------------------------------------------------------------

    def swapped_checkpoint(self, info, field: str) -> AbstractContextManager[Any]:
        """`shared.sd_model` is the checkpoint `info` for the block (yields the loaded model); the user's model and
        settings are back afterwards, also after an error or an interrupt. A failed load names `field`."""
        raise NotImplementedError

    def swap_note(self) -> str | None:
        """A note for the user about what swaps cost here (shown under the post-step controls), or None."""
        return None

    # --- model facts ----------------------------------------------------------------------------------------------

    def alphas_cumprod(self, model) -> Sequence[float]:
        """The loaded base model's training schedule (alpha_bar per timestep)."""
        raise NotImplementedError

    def swap_loads(self, base_model, info) -> bool:
        """Whether swapping from the base to the refiner `info` (and back) loads a checkpoint."""
        return True

    # --- memory ---------------------------------------------------------------------------------------------------

    def release_memory(self) -> None:
        """Hand memory freed by a job back (the host's cache, then the system)."""

    # --- sampler lists and jobs -----------------------------------------------------------------------------------

    def lists(self) -> HostLists:
        """The host's samplers, schedule types, k-diffusion samplers and checkpoints by kind."""
        return live_lists()

    def host_group(self) -> ParamGroup:
        """The Reimagine parameters with this host's sampler lists."""
        from .reimagine import host_group

        return host_group(self.lists())

    def run_reimagine(self, references, values: dict[str, Any], **options: Any):
        """One Reimagine job (options: save, is_api, refiner) -> VariationResult."""
        raise NotImplementedError

    def run_in_tab(self, references, values: dict[str, Any], **options: Any):
        """The tab's job runner (the API's is `run_reimagine` under the queue lock)."""
        return self.run_reimagine(references, values, **options)

    def api_host(self) -> ApiHost:
        """What the /reimagine/v1 routes take from this host."""
        from .api import refiner_request_values

        return ApiHost(
            self.host_group,
            self.run_reimagine,
            loaded_checkpoint,
            self.name,
            refiner_request_values,
            refiner.webui_group,
        )

    # --- the SDXL Refiner post-step: shared hooks on the parts above ----------------------------------------------

    def refiner_facts(self, p, values: Mapping[str, Any], info, base_model=None, pixels_reason: str = "") -> BaseFacts:
        """webui_facts with this host's k-diffusion samplers, the refiner file's kind and its swap cost."""
        is_sdxl = None if base_model is None else bool(getattr(base_model, "is_sdxl", False))
        continuing = self.lists().continuing_samplers
        kind = checkpoint_kind(info.filename)
        loads = self.swap_loads(base_model, info)
        residency = settings.refiner_residency()
        return webui_facts(p, values, kind, continuing, is_sdxl, pixels_reason, residency=residency, swap_loads=loads)

    def before_process(self, p, args: Sequence[Any]) -> RefinerJob | None:
        """Validate, resolve, plan, write the provisional infotext keys (`refiner.before_process`)."""
        return refiner.before_process(p, args, facts=self.refiner_facts)

    def before_sampling(self, p) -> None:
        """Handoff: cut the base's schedule at the switch sigma (only the last pass when hires fix runs)."""
        job = refiner.handoff_job(p)
        if job is not None:
            refiner.cut_schedule(p, job, self.alphas_cumprod(p.sd_model))

    def post_sample(self, p, ps) -> None:
        """Refine this batch, or keep it for one residency (the plan says which); errors fail the job."""

        def one_residency(p, job: RefinerJob) -> bool:
            return refiner.planned_residency(p, job, p.sd_model)

        def defer(p, job: RefinerJob, samples, stopped: bool):
            residency = partial(self.refiner_residency, p=p)
            return defer_batch(p, job, samples, stopped, residency=residency, prepare=self.prepare_batch)

        refiner.post_sample(p, ps, one_residency, defer, self.refine_now)

    def postprocess_batch_list(self, p, pp) -> None:
        refiner.postprocess_batch_list(p, pp)

    def postprocess(self, p, processed) -> None:
        refiner.postprocess(p, processed)

    def prepare_batch(self, p, job: RefinerJob, samples, keep_pixels: bool = False) -> BaseBatch:
        """The batch's base output while the base is loaded (`refiner_step.prepare_batch`)."""
        return prepare_batch(p, job, samples, keep_pixels=keep_pixels)

    def refiner_residency(self, job: RefinerJob, p=None) -> AbstractContextManager[Any]:
        """The refiner loaded for the block (yields the model); p: the job, whose base a host may release first."""
        return self.swapped_checkpoint(job.info, "refiner")

    def refine_now(self, p, job: RefinerJob, samples):
        """This batch's base output -> refined pixels in one residency of the refiner."""
        batch = self.prepare_batch(p, job, samples)
        with self.refiner_residency(job, p) as refiner_model:
            job.plan = replace(job.plan, refiner=job.info.short_title)  # with its hash now that it is loaded
            result = refine_batch(p, job, batch, refiner_model)
        finish_refining(p, job, [batch])
        return result
