"""The unCLIP image tower on Forge: built by Forge's own `backend/patcher/clipvision.py`, encoded once, handed back.

Forge's loader drops an unCLIP checkpoint's image embedder (`embedder.model.visual.*`), so the tower is built here:
- from the checkpoint's own weights (OpenCLIP ViT-H/14 in unCLIP-H, OpenAI CLIP ViT-L/14 in unCLIP-L), read tensor
  by tensor (safetensors) or memory-mapped (.ckpt), never a second full read of the file;
- else from an image encoder file the host already has (`models/clip_vision`, Forge's
  `models/ControlNetPreprocessor`, e.g. its IP-Adapter `CLIP-ViT-H-14.safetensors`).
Forge's `ClipVisionModel` registers it with Forge's memory manager like a text encoder (GPU or CPU by the VRAM
state, float16 where Forge says so). All references of a job are encoded at once; then the tower leaves Forge's
loaded models and the reference is dropped (it is ~1.3 GB for H). Embeddings are kept per checkpoint and image.

Pixels are prepared as the ldm embedder of the original model does (and so the A1111 adapter): the whole image
squashed to 224x224 (bicubic, antialiased), no centre crop, then CLIP's mean and standard deviation.
unCLIP-L's noise augmentation needs karlo's CLIP statistics (`models/karlo/ViT-L-14_stats.th`, shipped by Forge).
"""

from __future__ import annotations

import gc
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ...checkpoints import UNCLIP_H, UNCLIP_L
from ...errors import ParamError
from ...images import InputImage
from ...reimagine_xl import CLIP_MEAN, CLIP_STD

VISUAL_PREFIX = "embedder.model.visual."
TOWER_SIZE = 224
EMBED_WIDTH = {UNCLIP_H: 1024, UNCLIP_L: 768}
TOWER_NAMES = {UNCLIP_H: "OpenCLIP ViT-H/14", UNCLIP_L: "OpenAI CLIP ViT-L/14"}
HOST_TOWER_FILES = {  # image encoder files a host may already have, per unCLIP kind (first found is used)
    UNCLIP_H: ("CLIP-ViT-H-14.safetensors", "clip_vision_h.safetensors", "open_clip_vit_h_14.safetensors"),
    UNCLIP_L: ("clip_vision_l.safetensors", "clip-vit-large-patch14.safetensors", "CLIP-ViT-L-14.safetensors"),
}
KARLO_STATS = "ViT-L-14_stats.th"
MAX_CACHED = 32
_embeddings: OrderedDict[tuple, torch.Tensor] = OrderedDict()  # (checkpoint, mtime, size, image) -> (1, D)


@contextmanager
def original_loaders() -> Iterator[None]:
    """torch.load and safetensors.torch.load_file without Forge's wrappers (they rename a file they fail on)."""
    import safetensors.torch

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


def squashed_pixels(image) -> torch.Tensor:
    """(1, 3, 224, 224) tower input: the whole RGB image squashed (bicubic, antialiased), CLIP-normalised."""
    import numpy as np

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None]
    pixels = torch.nn.functional.interpolate(
        pixels, size=(TOWER_SIZE, TOWER_SIZE), mode="bicubic", align_corners=True, antialias=True
    )
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def checkpoint_visual_state(path: str) -> dict[str, torch.Tensor]:
    """The checkpoint's `embedder.model.visual.*` tensors (empty when it has none)."""
    if path.lower().endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, "pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys() if k.startswith(VISUAL_PREFIX)}
    with original_loaders():
        try:
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError:  # a legacy (non-zip) .ckpt cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    return {k: v for k, v in state.items() if k.startswith(VISUAL_PREFIX)}


def host_image_encoder(kind: str) -> str | None:
    """An image encoder file of the host for this unCLIP kind, or None."""
    for folder in image_encoder_folders():
        for name in HOST_TOWER_FILES[kind]:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def image_encoder_folders() -> list[str]:
    """Where a host keeps image encoders: models/clip_vision and Forge's models/ControlNetPreprocessor."""
    from modules import paths

    return [os.path.join(paths.models_path, "clip_vision"), os.path.join(paths.models_path, "ControlNetPreprocessor")]


def build_tower(path: str, kind: str, title: str):
    """Forge's ClipVisionModel from the checkpoint's tower, else the host's file; refusals name `model`."""
    from backend.patcher import clipvision

    state = checkpoint_visual_state(path)
    if state:
        tower = clipvision.load_clipvision_from_sd(state, prefix=VISUAL_PREFIX, convert_keys=True)
        source = "the checkpoint's embedder.model.visual.* weights"
    else:
        host_file = host_image_encoder(kind)
        if host_file is None:
            raise ParamError("model", title, missing_tower_message(kind))
        with original_loaders():
            tower = clipvision.load(host_file)
        source = host_file
    width = getattr(getattr(tower, "model", None), "config", None)
    width = getattr(width, "projection_dim", None)
    if tower is None or width != EMBED_WIDTH[kind]:
        wanted = f"an {kind} checkpoint whose image tower Forge can build ({TOWER_NAMES[kind]}, from {source})"
        raise ParamError("model", title, wanted)
    print(f"Reimagine: {TOWER_NAMES[kind]} image tower from {source}")
    return tower


def missing_tower_message(kind: str) -> str:
    names = ", ".join(HOST_TOWER_FILES[kind])
    folders = " or ".join(image_encoder_folders())
    return (
        f"an {kind} checkpoint that holds its image tower (embedder.model.visual.*), or the {TOWER_NAMES[kind]} "
        f"image encoder in {folders} as one of: {names}"
    )


def release_tower(tower) -> None:
    """Take the tower out of Forge's loaded models (moved to its offload device), then let its memory go."""
    from backend import memory_management

    loaded = memory_management.current_loaded_models
    for index in range(len(loaded) - 1, -1, -1):
        if loaded[index].model is tower.patcher:
            loaded.pop(index).model_unload()
    memory_management.soft_empty_cache()


def encode(tower, images: Sequence[InputImage]) -> list[torch.Tensor]:
    """Projected image embeddings (1, D) of the images, float32 on the CPU, through Forge's memory manager."""
    from backend import memory_management

    memory_management.load_model_gpu(tower.patcher)
    rows = []
    with torch.inference_mode():
        for image in images:
            pixels = squashed_pixels(image.image).to(tower.load_device, dtype=tower.dtype)
            rows.append(tower.model(pixel_values=pixels).image_embeds.float().cpu().clone())
    return rows


def cache_key(path: str, image: InputImage) -> tuple:
    stat = os.stat(path)
    return (os.path.abspath(path), stat.st_mtime_ns, stat.st_size, image.digest)


def reference_embeddings(path: str, kind: str, title: str, images: Sequence[InputImage]) -> torch.Tensor:
    """(k, D) embeddings of the images; the tower is built only for images not seen with this checkpoint."""
    keys = [cache_key(path, image) for image in images]
    missing = [(key, image) for key, image in zip(keys, images, strict=True) if key not in _embeddings]
    if missing:
        tower = build_tower(path, kind, title)
        try:
            rows = encode(tower, [image for _, image in missing])
        finally:
            release_tower(tower)
            del tower
            gc.collect()
        for (key, _), row in zip(missing, rows, strict=True):
            _embeddings[key] = row
    for key in keys:
        _embeddings.move_to_end(key)
    while len(_embeddings) > MAX_CACHED:
        _embeddings.popitem(last=False)
    return torch.cat([_embeddings[key] for key in keys])


def karlo_stats_path() -> str | None:
    """karlo's ViT-L/14 statistics: under the data dir's models/karlo, else the one Forge ships in its root."""
    from modules import paths, paths_internal

    for root in (paths.models_path, os.path.join(paths_internal.script_path, "models")):
        path = os.path.join(root, "karlo", KARLO_STATS)
        if os.path.isfile(path):
            return path
    return None


def clip_stats(kind: str, title: str) -> tuple[Any, Any]:
    """(mean, std) of the model's noise augmentation: none for unCLIP-H, karlo's for unCLIP-L."""
    if kind != UNCLIP_L:
        return None, None
    path = karlo_stats_path()
    if path is None:
        wanted = f"an unCLIP-L checkpoint with karlo's CLIP statistics beside the WebUI (models/karlo/{KARLO_STATS})"
        raise ParamError("model", title, wanted)
    with original_loaders():
        mean, std = torch.load(path, map_location="cpu", weights_only=True)
    return mean.float().reshape(-1), std.float().reshape(-1)
