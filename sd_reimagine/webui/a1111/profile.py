"""The A1111 profile: what the shared WebUI code needs from AUTOMATIC1111 1.10 (see `webui.profile.HostProfile`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..profile import HostProfile
from ..refiner_job import RefinerJob


class A1111Profile(HostProfile):
    """Swaps through `sd_models.reload_model_weights` (`a1111.swap`), facts from its ldm/sgm models and
    `sd_checkpoints_limit`, the refiner with its own VAE, jobs on its unCLIP and SDXL models (`a1111.reimagine`)."""

    name = ""  # /version reports no host on A1111 (as before the Forge profile existed)

    @contextmanager
    def swapped_checkpoint(self, info, field: str) -> Iterator[Any]:
        from modules import shared

        from .swap import swapped_model

        with swapped_model(info, field=field):
            yield shared.sd_model

    def swap_note(self) -> str | None:
        """Said once when `sd_checkpoints_limit` makes every swap a disk load."""
        from .swap import limit_warning

        return limit_warning()

    def alphas_cumprod(self, model) -> Sequence[float]:
        return [float(a) for a in model.alphas_cumprod]

    def swap_loads(self, base_model, info) -> bool:
        from .refiner import swap_loads

        return swap_loads(base_model, info)

    def release_memory(self) -> None:
        from modules import devices

        devices.torch_gc()

    def run_reimagine(self, references, values: dict[str, Any], **options: Any):
        from .reimagine import run_reimagine

        return run_reimagine(references, values, **options)

    def before_process(self, p, args: Sequence[Any]) -> RefinerJob | None:
        job = super().before_process(p, args)
        if job is not None:
            self.swap_note()
        return job

    def refiner_residency(self, job: RefinerJob, p=None):
        """The refiner with its own VAE (a globally selected VAE is never applied to it)."""
        from .refiner import swapped_model_guard

        return swapped_model_guard(job)
