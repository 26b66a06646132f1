"""What the WebUI family reads from the running WebUI (A1111 or Forge), in one small interface.

The shared code's own decisions that need no model (its parameter groups, the default refiner, paste-back values, the
facts of a job) take a `HostLists`; `live_lists()` reads it from the WebUI, and CI passes a stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostLists:
    """The WebUI's sampler and schedule-type names, its k-diffusion samplers, and its checkpoints by kind."""

    samplers: tuple[str, ...]
    schedule_types: tuple[str, ...]
    continuing_samplers: tuple[str, ...]  # samplers that can stop and continue a schedule (k-diffusion)
    checkpoints_by_kind: Mapping[str, list[str]] = field(default_factory=dict)


def live_lists() -> HostLists:
    """The lists of the running WebUI."""
    from modules import sd_samplers, sd_samplers_kdiffusion, sd_schedulers

    from .checkpoint_lookup import list_checkpoints_by_kind

    return HostLists(
        samplers=tuple(sd_samplers.visible_sampler_names()),
        schedule_types=tuple(s.label for s in sd_schedulers.schedulers),
        continuing_samplers=tuple(sd_samplers_kdiffusion.k_diffusion_samplers_map),
        checkpoints_by_kind=list_checkpoints_by_kind(),
    )
