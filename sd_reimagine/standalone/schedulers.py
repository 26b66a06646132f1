"""Diffusers schedulers for WebUI sampler names (the table lives in the core: `sd_reimagine.samplers`)."""

from __future__ import annotations

from ..samplers import scheduler_spec


def make_scheduler(model_scheduler, sampler: str, schedule_type: str = "Automatic"):
    """A fresh scheduler for one job: the model's own for 'Default', else the mapped one on the model's config."""
    spec = scheduler_spec(sampler, schedule_type)
    if spec is None:
        return type(model_scheduler).from_config(model_scheduler.config)
    import diffusers

    scheduler_class = getattr(diffusers, spec.class_name)
    return scheduler_class.from_config(model_scheduler.config, **spec.config)
