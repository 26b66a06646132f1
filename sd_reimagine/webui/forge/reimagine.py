"""Reimagine in Forge: Stable unCLIP on the project's diffusers path, inside Forge's process.

Forge has no unCLIP (its engines load SD21UnclipH/L as plain SD 2 and drop the image tower), so a job loads the
unCLIP checkpoint from the WebUI model folder with `standalone.single_file.load_unclip_single_file` (diffusers and
transformers ship with Forge) and runs `standalone.unclip.UnclipVariations` on the core plan: the same seeds,
conditioning, infotext and lineage as everywhere else. Around it:
- Forge's memory manager unloads its models before the load, and the memory is freed after the job;
- Forge's `shared.state` carries progress (one job per batch, one step per denoising step), interrupt (the job
  stops, images finished so far are returned) and skip (the current batch is dropped, the next one runs);
- the checkpoint is read with the original `torch.load` / `safetensors` loaders, not Forge's wrappers (which rename
  a file they fail on to `<name>.corrupted`), after a header check; the user's checkpoint is never touched.
unCLIP-L is refused here: its image tower is OpenAI CLIP (quick-GELU), which the single-file loader does not build.
An SDXL base checkpoint is a Reimagine XL job, run on Forge's own SDXL engine and samplers (`forge.reimagine_xl`).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ...checkpoints import UNCLIP_L
from ...errors import ParamError
from ...images import InputImage
from ...reimagine_plan import GeneratedImage, ReimagineFacts, VariationResult, plan_reimagine
from ...reimagine_xl import XL_ENGINE, engine_for_kind
from ...schema import REIMAGINE, ParamGroup
from .. import settings
from ..checkpoint_lookup import checkpoint_kind, resolve_for_role
from ..reimagine import MODEL_TOOLTIP
from .reimagine_xl import run_reimagine_xl

SD21_TOKENIZER = ("huggingface", "stabilityai", "stable-diffusion-2-1", "tokenizer")


def host_group() -> ParamGroup:
    """REIMAGINE (its samplers are the diffusers table's WebUI names) with the model defaulting to the setting."""
    model = replace(REIMAGINE["model"], default="", label="unCLIP checkpoint", tooltip=MODEL_TOOLTIP)
    return REIMAGINE.replace(model)


def check_reimagine_checkpoint(model: str):
    """The CheckpointInfo of an unCLIP-H checkpoint this path can load, or of an SDXL base (Reimagine XL), and its
    engine (errors name the `model` field)."""
    info = resolve_for_role(model, "model", "reimagine")
    kind = checkpoint_kind(info.filename)
    if kind == UNCLIP_L:
        raise ParamError(
            "model",
            info.title,
            "an unCLIP-H checkpoint (on Forge, Reimagine runs unCLIP on diffusers, whose single-file loader builds "
            "the OpenCLIP ViT-H image tower; unCLIP-L's OpenAI CLIP tower is not supported there yet)",
        )
    return info, engine_for_kind(kind)


def tokenizer_folder(checkpoint: str) -> str | None:
    """A tokenizer beside the checkpoint (`<name>_tokenizer/`, `tokenizer/`), else the SD 2.1 one Forge ships."""
    stem = os.path.splitext(checkpoint)[0]
    for folder in (stem + "_tokenizer", os.path.join(os.path.dirname(checkpoint), "tokenizer")):
        if os.path.isfile(os.path.join(folder, "vocab.json")):
            return folder
    import backend

    shipped = os.path.join(os.path.dirname(backend.__file__), *SD21_TOKENIZER)
    return shipped if os.path.isfile(os.path.join(shipped, "vocab.json")) else None


@contextmanager
def original_loaders() -> Iterator[None]:
    """torch.load and safetensors.torch.load_file without Forge's wrappers (they rename a file they fail on)."""
    import safetensors.torch
    import torch

    saved = []
    for module, name in ((torch, "load"), (safetensors.torch, "load_file")):
        origin = getattr(module, name + "_origin", None)
        if origin is not None:
            saved.append((module, name, getattr(module, name)))
            setattr(module, name, origin)
    try:
        yield
    finally:
        for module, name, wrapped in saved:
            setattr(module, name, wrapped)


def device_and_dtype():
    """Forge's torch device; float16 on an accelerator, float32 on the CPU."""
    import torch
    from backend import memory_management

    device = memory_management.get_torch_device()
    return device, (torch.float16 if device.type != "cpu" else torch.float32)


@contextmanager
def unclip_runner(info, max_batch: int) -> Iterator[Any]:
    """An UnclipVariations on the checkpoint for the block; Forge's models unloaded before, memory freed after."""
    from backend import memory_management

    from ...standalone.single_file import load_unclip_single_file
    from ...standalone.unclip import UnclipVariations

    memory_management.unload_all_models()
    memory_management.soft_empty_cache(force=True)
    device, dtype = device_and_dtype()
    runner = None
    try:
        with original_loaders():
            pipe = load_unclip_single_file(info.filename, tokenizer_folder(info.filename), dtype=dtype)
        runner = UnclipVariations(pipe.to(device), info.title, max_batch=max_batch, use_cache=False)
        del pipe
        yield runner
    finally:
        if runner is not None:
            runner.pipe = None  # the caller's name for the runner no longer holds the model
        gc.collect()
        memory_management.soft_empty_cache(force=True)
        release_freed_memory()


def release_freed_memory() -> None:
    """Hand freed host memory back to the system (glibc keeps it otherwise: the model's RAM would stay taken)."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass


def state_callbacks():
    """(progress, should_stop) reading and writing Forge's shared.state."""
    from modules import shared

    def progress(step: int, total: int) -> None:
        shared.state.sampling_steps = total
        shared.state.sampling_step = step

    def should_stop() -> bool:
        state = shared.state
        return bool(state.interrupted or state.skipped or getattr(state, "stopping_generation", False))

    return progress, should_stop


def save_images(images: Sequence[GeneratedImage], prompt: str) -> None:
    from modules import images as webui_images
    from modules import shared

    for generated in images:
        webui_images.save_image(
            generated.image,
            settings.outdir(),
            "",
            generated.seed,
            prompt,
            shared.opts.samples_format,
            info=generated.infotext,
        )


def run_reimagine(
    references: Sequence[tuple[InputImage, float]],
    values: dict[str, Any],
    *,
    save: bool = True,
    is_api: bool = False,
    refiner: dict[str, Any] | None = None,
) -> VariationResult:
    """One Reimagine job: the core plan run batch by batch on the diffusers unCLIP path, or, for an SDXL base,
    Reimagine XL on Forge's own SDXL engine (`forge.reimagine_xl`), optionally followed by the post-step."""
    from modules import shared

    started = time.perf_counter()
    values = host_group().validate(values)
    info, engine = check_reimagine_checkpoint(values["model"] or settings.default_model())
    if engine == XL_ENGINE:
        return run_reimagine_xl(info, host_group(), references, values, save=save, is_api=is_api, refiner=refiner)
    if refiner and refiner.get("enabled"):
        # Forge's unCLIP jobs run on diffusers, outside Forge's processing where the post-step script runs.
        wanted = "off for unCLIP jobs on Forge (the post-step runs after Reimagine XL jobs: choose an SDXL base)"
        raise ParamError("refiner", "enabled", wanted)
    plan = plan_reimagine(values, references, ReimagineFacts(info.title, settings.batch_limit()), host_group())
    progress, should_stop = state_callbacks()
    shared.state.job_count = len(plan.batches)
    images: list[GeneratedImage] = []
    interrupted = False
    with unclip_runner(info, settings.batch_limit()) as runner:
        loaded = time.perf_counter()
        for number, batch in enumerate(plan.batches, 1):
            if shared.state.interrupted or getattr(shared.state, "stopping_generation", False):
                interrupted = True
                break
            shared.state.textinfo = f"Reimagine batch {number} of {len(plan.batches)}"
            batch_values = {**plan.values, "seed": batch[0], "n": len(batch)}
            result = runner(plan.references, batch_values, progress=progress, should_stop=should_stop)
            if shared.state.skipped and not shared.state.interrupted:
                shared.state.skipped = False  # skip: this batch is dropped, the next one runs
                interrupted = True
            elif result.interrupted:
                interrupted = True
                break
            else:
                images.extend(result.images)
            shared.state.nextjob()
        sampling = time.perf_counter() - loaded
    if save:
        save_images(images, plan.values["prompt"])
    timings = {"total_s": time.perf_counter() - started, "load_s": loaded - started, "sampling_s": sampling}
    return VariationResult(images, plan.values, interrupted, {k: round(v, 4) for k, v in timings.items()})
