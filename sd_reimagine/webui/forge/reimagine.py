"""Reimagine in Forge: which engine runs a job.

- An SDXL base checkpoint: Reimagine XL on Forge's own SDXL engine and samplers (`forge.reimagine_xl`).
- An unCLIP-H or -L checkpoint: Stable unCLIP on Forge's own SD 2 engine, loader, memory manager and samplers
  (`forge.unclip`), where this Forge has that engine and loads the file as unCLIP; otherwise the diffusers fallback
  (`forge.unclip_diffusers`: unCLIP-H only, loaded per job). The infotext's `Reimagine engine` and the log say
  which path ran. REIMAGINE_FORGE_UNCLIP=diffusers in Forge's environment always takes the fallback (to compare).
The tab and the API schema offer Forge's own samplers and schedule types; the fallback keeps its diffusers table
and refuses a sampler it lacks, naming `sampler`. Every refusal names a field (HTTP 422, never 500).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ...checkpoints import UNCLIP_L
from ...errors import ParamError
from ...images import InputImage
from ...reimagine_plan import VariationResult
from ...reimagine_xl import XL_ENGINE, engine_for_kind
from ...schema import ParamGroup
from .. import settings
from ..checkpoint_lookup import checkpoint_kind, resolve_for_role
from ..reimagine import host_group as webui_group
from .reimagine_xl import run_reimagine_xl
from .unclip import NotNativeUnclip, native_engine_available, run_native_unclip
from .unclip_diffusers import diffusers_group, run_diffusers_unclip

FALLBACK_ENV = "REIMAGINE_FORGE_UNCLIP"  # "diffusers": unCLIP always on the diffusers fallback


def native_unclip() -> bool:
    """Whether unCLIP jobs run on Forge's own engine (else on the diffusers fallback)."""
    return os.environ.get(FALLBACK_ENV, "").strip().lower() != "diffusers" and native_engine_available()


def host_group() -> ParamGroup:
    """The job's parameters: Forge's samplers and schedule types, or the diffusers table where only it runs."""
    return webui_group() if native_unclip() else diffusers_group()


def check_reimagine_checkpoint(model: str):
    """The CheckpointInfo of an unCLIP checkpoint or an SDXL base (errors name the `model` field) and its kind."""
    info = resolve_for_role(model, "model", "reimagine")
    return info, checkpoint_kind(info.filename)


def run_fallback(info, kind: str, references, values, *, save: bool, refiner, reason: str) -> VariationResult:
    """The diffusers fallback, for what it can run (unCLIP-H, no post-step)."""
    if kind == UNCLIP_L:
        wanted = f"an unCLIP-H checkpoint here: Forge's own engine cannot run this file ({reason}), and the diffusers"
        raise ParamError("model", info.title, wanted + " fallback builds only the OpenCLIP ViT-H image tower")
    if refiner and refiner.get("enabled"):
        wanted = f"off for this unCLIP job: it runs on the diffusers fallback ({reason}), outside Forge's processing"
        raise ParamError("refiner", "enabled", wanted)
    return run_diffusers_unclip(info, references, values, save=save, reason=reason)


def run_reimagine(
    references: Sequence[tuple[InputImage, float]],
    values: dict[str, Any],
    *,
    save: bool = True,
    is_api: bool = False,
    refiner: dict[str, Any] | None = None,
) -> VariationResult:
    """One Reimagine job on the engine that runs its checkpoint, optionally followed by the post-step; the user's
    checkpoint and additional modules are the ones Forge loads next."""
    group = host_group()
    values = group.validate(values)
    info, kind = check_reimagine_checkpoint(values["model"] or settings.default_model())
    if engine_for_kind(kind) == XL_ENGINE:
        return run_reimagine_xl(info, group, references, values, save=save, is_api=is_api, refiner=refiner)
    if not native_unclip():
        reason = "this Forge has no SD 2 engine" if not native_engine_available() else f"{FALLBACK_ENV}=diffusers"
        return run_fallback(info, kind, references, values, save=save, refiner=refiner, reason=reason)
    try:
        return run_native_unclip(info, group, references, values, save=save, is_api=is_api, refiner=refiner)
    except NotNativeUnclip as error:
        return run_fallback(info, kind, references, values, save=save, refiner=refiner, reason=str(error))
