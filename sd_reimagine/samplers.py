"""WebUI sampler and schedule-type names, and the one table that maps them to diffusers schedulers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ParamError
from .schema import DEFAULT_SAMPLER, SCHEDULE_TYPES


@dataclass(frozen=True)
class SchedulerSpec:
    """A diffusers scheduler class name and the config overrides that make it behave like the WebUI sampler."""

    class_name: str
    config: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[str, ...] = ("Automatic",)


_SIGMA_SCHEDULES = ("Automatic", "Karras", "Exponential")

# WebUI name -> diffusers scheduler. Karras/Exponential become use_karras_sigmas / use_exponential_sigmas.
SAMPLERS: dict[str, SchedulerSpec] = {
    "Euler a": SchedulerSpec("EulerAncestralDiscreteScheduler"),
    "Euler": SchedulerSpec("EulerDiscreteScheduler", schedules=_SIGMA_SCHEDULES),
    "DPM++ 2M": SchedulerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}, _SIGMA_SCHEDULES
    ),
    "DPM++ 2M SDE": SchedulerSpec(
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}, _SIGMA_SCHEDULES
    ),
    "DDIM": SchedulerSpec("DDIMScheduler"),
    "UniPC": SchedulerSpec("UniPCMultistepScheduler", schedules=("Automatic", "Karras")),
    "Heun": SchedulerSpec("HeunDiscreteScheduler", schedules=("Automatic", "Karras")),
    "LMS": SchedulerSpec("LMSDiscreteScheduler", schedules=("Automatic", "Karras")),
    "DPM2": SchedulerSpec("KDPM2DiscreteScheduler", schedules=("Automatic", "Karras")),
    "DPM2 a": SchedulerSpec("KDPM2AncestralDiscreteScheduler", schedules=("Automatic", "Karras")),
}

SCHEDULE_FLAGS = {"Karras": {"use_karras_sigmas": True}, "Exponential": {"use_exponential_sigmas": True}}


def scheduler_spec(sampler: str, schedule_type: str = "Automatic") -> SchedulerSpec | None:
    """The scheduler for a WebUI sampler name; None for 'Default' (the model's own scheduler)."""
    if schedule_type not in SCHEDULE_TYPES:
        raise ParamError("schedule_type", schedule_type, "one of " + ", ".join(SCHEDULE_TYPES))
    if sampler in ("", DEFAULT_SAMPLER):
        if schedule_type != "Automatic":
            raise ParamError("schedule_type", schedule_type, "'Automatic' with the model's default scheduler")
        return None
    spec = SAMPLERS.get(sampler)
    if spec is None:
        raise ParamError("sampler", sampler, "one of " + ", ".join([DEFAULT_SAMPLER, *SAMPLERS]))
    if schedule_type not in spec.schedules:
        raise ParamError("schedule_type", schedule_type, f"one of {', '.join(spec.schedules)} with {sampler}")
    return SchedulerSpec(spec.class_name, {**spec.config, **SCHEDULE_FLAGS.get(schedule_type, {})}, spec.schedules)
