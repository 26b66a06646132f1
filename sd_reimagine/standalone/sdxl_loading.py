"""Loading an SDXL base and refiner; the refiner shares the base's text encoder 2 and VAE when they are identical."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .low_vram import MemoryOptions, place_pipeline
from .models import default_device, load_pipeline, model_name

if TYPE_CHECKING:
    from .sdxl import SdxlRelay

SHAREABLE = ("text_encoder_2", "vae")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
FINGERPRINT_CHUNK = 1024 * 1024


def load_sdxl_relay(
    base: str | None,
    refiner: str | None,
    dtype: torch.dtype | None = None,
    device: str | None = None,
    memory: MemoryOptions | None = None,
    max_batch: int = 4,
) -> SdxlRelay:
    """Load a base and/or refiner; the refiner reuses the base's text_encoder_2 and VAE when they are identical.

    `memory`: the low-VRAM options (`low_vram`: diffusers' CPU offload on an accelerator, VAE tiling).
    """
    default_dev, default_dtype = default_device()
    device, dtype = device or default_dev, dtype or default_dtype
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    base_pipe = load_pipeline(StableDiffusionXLPipeline, base, dtype) if base else None
    refiner_pipe = None
    if refiner:
        shared = shareable_components(base, refiner) if base_pipe is not None else ()
        components = {name: getattr(base_pipe, name) for name in shared}
        refiner_pipe = load_pipeline(StableDiffusionXLImg2ImgPipeline, refiner, dtype, **components)
    for pipe in (base_pipe, refiner_pipe):
        if pipe is not None:
            place_pipeline(pipe, device, memory or MemoryOptions())
            pipe.set_progress_bar_config(disable=True)
    from .sdxl import SdxlRelay

    return SdxlRelay(
        base_pipe, refiner_pipe, model_name(base) if base else "", model_name(refiner) if refiner else "", max_batch
    )


def shareable_components(base: str, refiner: str) -> tuple[str, ...]:
    """Which of text_encoder_2 / vae the refiner can take from the base: both local diffusers folders (or cached
    Hugging Face snapshots) with the same config and weight files of identical size, first and last MiB."""
    base_dir, refiner_dir = _local_folder(base), _local_folder(refiner)
    if base_dir is None or refiner_dir is None:
        return ()
    shared = []
    for name in SHAREABLE:
        fingerprint = component_fingerprint(base_dir / name)
        if fingerprint is not None and fingerprint == component_fingerprint(refiner_dir / name):
            shared.append(name)
    return tuple(shared)


def component_fingerprint(folder: Path) -> tuple | None:
    """(config hash, then name, size, sha256 of first + last MiB per weight file) of one component folder.

    Hashing two MiB instead of gigabytes keeps this instant; equal sizes and ends of a safetensors file (its header
    names every tensor and offset) make different weights in between very unlikely. Variant files (`*.fp16.*`) are
    ignored unless a folder has nothing else, as from_pretrained without a variant ignores them.
    """
    config = folder / "config.json"
    if not config.is_file():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    plain = [p for p in files if p.name.count(".") == 1]
    files = plain or files
    if not files:
        return None
    return (hashlib.sha256(config.read_bytes()).hexdigest(), *(_file_fingerprint(p) for p in files))


def _file_fingerprint(path: Path) -> tuple[str, int, str]:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(FINGERPRINT_CHUNK))
        if size > FINGERPRINT_CHUNK:
            handle.seek(max(size - FINGERPRINT_CHUNK, FINGERPRINT_CHUNK))
            digest.update(handle.read())
    return path.name, size, digest.hexdigest()


def _local_folder(spec: str) -> Path | None:
    """The diffusers folder of a spec: a local folder, or the cached snapshot of a Hugging Face id (never fetched)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.suffix or path.exists() or spec.count("/") != 1:
        return None  # single-file checkpoints hold every component in one file: nothing to compare cheaply
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no hub client): load both models in full
        return None
