"""Reimagine XL in Forge: the core's pooled image conditioning on Forge's own SDXL engine, samplers and processing.

Forge's SDXL engine (`backend/diffusion_engine/sdxl.py`) returns the conditioning A1111's does (a dict of
`crossattn` and `vector` = [pooled bigG text embedding (1280), size/crop embeddings]) and keeps A1111's prompt parser
structures and `sample(conditioning, ...)` hook, so the shared `webui.reimagine_xl.XlConditioning` and processing
classes run here unchanged. What is Forge's own:
- the SDXL base is swapped in with Forge's loader (`forge.swap.swapped_checkpoint`), the user's checkpoint and
  additional modules put back in `finally`; the user's modules are kept when the base is the user's own checkpoint
  (no reload), none are applied to another checkpoint (they were chosen for the user's model);
- the loaded model is checked through Forge's bigG text engine (its text projection gives the pooled size);
- the vision tower comes from Forge's `models/clip_vision`, float16 on an accelerator, float32 on the CPU, and is
  loaded before any swap, so a missing one is refused with the user's model untouched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import closing
from typing import Any

from ...clip_vision import VisionTower
from ...errors import ParamError
from ...images import InputImage
from ...reimagine_plan import ReimagineFacts, VariationResult, plan_reimagine
from ...reimagine_xl import XL_ENGINE, check_embedding_size
from ...schema import ParamGroup
from .. import reimagine_xl as shared_xl
from .. import settings
from ..reimagine import job_result, job_timings, make_processing
from ..reimagine_post_step import attach_post_step
from ..swap_records import SWAP_TIMES
from .swap import swapped_checkpoint


def tower_device_and_dtype():
    """Forge's torch device; float16 on an accelerator, float32 on the CPU."""
    import torch
    from backend import memory_management

    device = memory_management.get_torch_device()
    return device, (torch.float16 if device.type != "cpu" else torch.float32)


def vision_tower(spec: str) -> VisionTower:
    """The shared tower cache (Forge's models/clip_vision) on Forge's device and dtype."""
    return shared_xl.vision_tower(spec, *tower_device_and_dtype())


def pooled_size(sd_model) -> int | None:
    """The size of the pooled text embedding of Forge's SDXL model (its bigG text projection), or None."""
    engine = getattr(sd_model, "text_processing_engine_g", None)
    transformer = getattr(getattr(engine, "text_encoder", None), "transformer", None)
    projection = getattr(transformer, "text_projection", None)
    return getattr(projection, "out_features", None)


def check_loaded_sdxl(sd_model, title: str, tower: VisionTower) -> None:
    """The loaded model must be an SDXL model whose pooled text embedding the tower's embedding can replace."""
    size = pooled_size(sd_model)
    if not getattr(sd_model, "is_sdxl", False) or size is None:
        raise ParamError("model", title, "an SDXL base checkpoint (Forge did not load it as one)")
    check_embedding_size(tower.embedding_size, int(size))


def modules_for(info) -> list[str]:
    """The user's additional modules when the SDXL base is the user's own checkpoint, else none."""
    from modules import sd_models, shared

    user = sd_models.checkpoint_aliases.get(shared.opts.data.get("sd_model_checkpoint") or "")
    same = user is not None and os.path.abspath(user.filename) == os.path.abspath(info.filename)
    return list(shared.opts.data.get("forge_additional_modules", []) or []) if same else []


def run_reimagine_xl(
    info,
    group: ParamGroup,
    references: Sequence[tuple[InputImage, float]],
    values: dict[str, Any],
    *,
    save: bool,
    is_api: bool,
    refiner: dict[str, Any] | None = None,
) -> VariationResult:
    """One Reimagine XL job (values validated) on the SDXL base `info`: Forge's processing with the image embedding
    in each image's pooled conditioning; the user's checkpoint and modules are put back afterwards."""
    from modules import processing

    started = time.perf_counter()
    tower = vision_tower(values["image_encoder"])  # before any swap: a missing encoder leaves the user's model alone
    facts = ReimagineFacts(
        info.title, settings.batch_limit(), uneven_batches=False, engine=XL_ENGINE, image_encoder=tower.name
    )
    plan = plan_reimagine(values, references, facts, group)
    swaps_before = len(SWAP_TIMES)
    with swapped_checkpoint(info, field="model", modules=modules_for(info)) as model:
        check_loaded_sdxl(model, info.title, tower)
        p = make_processing(plan, save, is_api, shared_xl.processing_classes())
        p.reimagine_xl = shared_xl.XlConditioning(plan, tower)
        attach_post_step(p, refiner)  # the txt2img post-step script, on Forge's swap (forge.refiner)
        sampling = time.perf_counter()
        with closing(p):
            processed = processing.process_images(p)
        sampling = time.perf_counter() - sampling
    return job_result(processed, plan, job_timings(started, sampling, swaps_before))
