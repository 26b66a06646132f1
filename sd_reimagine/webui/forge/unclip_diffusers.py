"""The diffusers fallback for unCLIP on Forge: where Forge cannot run unCLIP on its own engine (a fork without the
SD 2 engine, such as Forge Neo/Classic, or a file Forge's loader does not recognise as unCLIP).

A job loads the checkpoint with `standalone.single_file.load_unclip_single_file` (diffusers and transformers ship
with Forge) and runs `standalone.unclip.UnclipVariations` on the core plan: the same seeds, conditioning, infotext
and lineage as everywhere else, with the diffusers sampler table. Around it:
- Forge's memory manager unloads its models before the load, and the memory is freed after the job;
- Forge's `shared.state` carries progress (one job per batch, one step per denoising step), interrupt (the job
  stops, images finished so far are returned) and skip (the current batch is dropped, the next one runs);
- the checkpoint is read with the original `torch.load` / `safetensors` loaders, not Forge's wrappers (which rename
  a file they fail on to `<name>.corrupted`); the tokenizer is the SD 2.1 one Forge ships (a user's single file has
  none beside it); a file that does not load is refused naming `model`.
The model is loaded for every job (the price of this path; Forge's own engine keeps it between jobs).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ...errors import ParamError, ReimagineError
from ...images import InputImage
from ...reimagine_plan import GeneratedImage, ReimagineFacts, VariationResult, plan_reimagine
from ...schema import REIMAGINE, ParamGroup
from .. import settings
from ..reimagine import MODEL_TOOLTIP
from .unclip_tower import original_loaders

SD21_TOKENIZER = ("huggingface", "stabilityai", "stable-diffusion-2-1", "tokenizer")
PATH_KEY, DIFFUSERS_PATH = "Reimagine engine", "diffusers"


def diffusers_group() -> ParamGroup:
    """REIMAGINE with the diffusers table's samplers and the model defaulting to the setting."""
    model = replace(REIMAGINE["model"], default="", label="unCLIP checkpoint", tooltip=MODEL_TOOLTIP)
    return REIMAGINE.replace(model)


def forge_backend_folder() -> str | None:
    """Forge's `backend` folder (a namespace package: `backend.__file__` is None, its `__path__` is not)."""
    try:
        import backend
    except ImportError:
        return None
    return next(iter(getattr(backend, "__path__", [])), None)


def tokenizer_folder(checkpoint: str) -> str | None:
    """A tokenizer beside the checkpoint (`<name>_tokenizer/`, `tokenizer/`), else the SD 2.1 one Forge ships."""
    stem = os.path.splitext(checkpoint)[0]
    candidates = [stem + "_tokenizer", os.path.join(os.path.dirname(checkpoint), "tokenizer")]
    backend = forge_backend_folder()
    if backend is not None:
        candidates.append(os.path.join(backend, *SD21_TOKENIZER))
    return next((c for c in candidates if os.path.isfile(os.path.join(c, "vocab.json"))), None)


def device_and_dtype():
    """Forge's torch device; float16 on an accelerator, float32 on the CPU."""
    import torch
    from backend import memory_management

    device = memory_management.get_torch_device()
    return device, (torch.float16 if device.type != "cpu" else torch.float32)


def load_pipeline(info, dtype):
    """The checkpoint as a diffusers pipeline; any failure is a refusal naming `model`."""
    from ...standalone.single_file import load_unclip_single_file

    try:
        with original_loaders():
            return load_unclip_single_file(info.filename, tokenizer_folder(info.filename), dtype=dtype)
    except ReimagineError as error:
        raise ParamError(
            "model", info.title, f"an unCLIP checkpoint the diffusers fallback can load ({error})"
        ) from error
    except Exception as error:  # a file we cannot use is the user's input, never a server error
        reason = f"{type(error).__name__}: {str(error).strip()[:200]}"
        raise ParamError(
            "model", info.title, f"an unCLIP checkpoint the diffusers fallback can load ({reason})"
        ) from error


@contextmanager
def unclip_runner(info, max_batch: int) -> Iterator[Any]:
    """An UnclipVariations on the checkpoint for the block; Forge's models unloaded before, memory freed after."""
    from backend import memory_management

    from ...standalone.unclip import UnclipVariations

    memory_management.unload_all_models()
    memory_management.soft_empty_cache(force=True)
    device, dtype = device_and_dtype()
    runner = None
    try:
        pipe = load_pipeline(info, dtype)
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


def with_path(image: GeneratedImage) -> GeneratedImage:
    """The image with `Reimagine engine: diffusers` in its infotext (which path ran it)."""
    return replace(image, infotext=f"{image.infotext}, {PATH_KEY}: {DIFFUSERS_PATH}")


def run_diffusers_unclip(
    info, references: Sequence[tuple[InputImage, float]], values: dict[str, Any], *, save: bool, reason: str
) -> VariationResult:
    """One unCLIP job on the diffusers path, batch by batch (`reason`: why Forge's engine did not run it)."""
    from modules import shared

    started = time.perf_counter()
    print(f"Reimagine: unCLIP on the diffusers fallback ({reason})")
    values = diffusers_group().validate(values)  # its sampler table, not Forge's
    plan = plan_reimagine(values, references, ReimagineFacts(info.title, settings.batch_limit()), diffusers_group())
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
                images.extend(with_path(image) for image in result.images)
            shared.state.nextjob()
        sampling = time.perf_counter() - loaded
    if save:
        save_images(images, plan.values["prompt"])
    timings = {"total_s": time.perf_counter() - started, "load_s": loaded - started, "sampling_s": sampling}
    return VariationResult(images, plan.values, interrupted, {k: round(v, 4) for k, v in timings.items()})
