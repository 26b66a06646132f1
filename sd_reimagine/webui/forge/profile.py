"""The Forge profile: what the shared WebUI code needs from Forge (see `webui.profile.HostProfile`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..profile import HostProfile
from ..refiner_job import BaseBatch, RefinerJob


class ForgeProfile(HostProfile):
    """Swaps through `main_entry.checkpoint_change` + `forge_model_reload` (`forge.swap`), one model resident (every
    swap loads), facts from Forge's predictor, memory through Forge's memory manager, jobs on Forge's engines
    (`forge.reimagine`), run on Forge's main thread from the tab."""

    name = "forge"

    def swapped_checkpoint(self, info, field: str):
        from .swap import swapped_checkpoint

        return swapped_checkpoint(info, field=field)

    def alphas_cumprod(self, model) -> Sequence[float]:
        from .refiner import alphas_cumprod

        return alphas_cumprod(model)

    def release_memory(self) -> None:
        """Forge's cache emptied, then freed host memory handed back to the system (glibc keeps it otherwise)."""
        from backend import memory_management

        from .unclip_diffusers import release_freed_memory

        memory_management.soft_empty_cache(force=True)
        release_freed_memory()

    def host_group(self):
        """Forge's samplers and schedule types, or the diffusers table where only the fallback runs unCLIP."""
        from .reimagine import host_group

        return host_group()

    def run_reimagine(self, references, values: dict[str, Any], **options: Any):
        from .reimagine import run_reimagine

        return run_reimagine(references, values, **options)

    def run_in_tab(self, references, values: dict[str, Any], **options: Any):
        """The job on Forge's main worker thread, like its own txt2img and img2img."""
        from .tab import run_on_main_thread

        return run_on_main_thread(references, values, **options)

    def before_sampling(self, p) -> None:
        from .refiner import before_sampling

        before_sampling(p)

    def prepare_batch(self, p, job: RefinerJob, samples, keep_pixels: bool = False) -> BaseBatch:
        from .refiner import prepare_forge_batch

        return prepare_forge_batch(p, job, samples, keep_pixels=keep_pixels)

    def refiner_residency(self, job: RefinerJob, p=None):
        """The refiner with no base LoRA, the base released first (one model resident)."""
        from .refiner import forge_residency

        return forge_residency(job, p)

    def refine_now(self, p, job: RefinerJob, samples):
        from .refiner import run_post_step

        return run_post_step(p, job, samples)
