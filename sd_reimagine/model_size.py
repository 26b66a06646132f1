"""The default image size of a model: the size it was made for, told from its files without loading its weights.

One rule for every interface (the app's width and height, the CLI when `--width`/`--height` are not given):
- a diffusers folder (or a Hub id already in the local cache): `unet/config.json` `sample_size` times the VAE's
  downsampling, `2 ** (len(vae/config.json block_out_channels) - 1)`;
- a Hub id of a known model, not downloaded yet: its published size (768 for SD 2.1 unCLIP, 1024 for SDXL);
- a single-file checkpoint: the size of its kind, read from its header (`sd_reimagine.checkpoints`);
- anything else: the schema's default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .checkpoints import SDXL_BASE, SDXL_REFINER, UNCLIP_H, UNCLIP_L, inspect_checkpoint
from .errors import ParamError
from .schema import SDXL_BASE as SDXL_BASE_ID
from .schema import SDXL_REFINER as SDXL_REFINER_ID
from .schema import UNCLIP_H as UNCLIP_H_ID
from .schema import UNCLIP_L as UNCLIP_L_ID
from .schema import ParamGroup

Size = tuple[int, int]  # (width, height) in pixels

KIND_SIZES: dict[str, Size] = {
    UNCLIP_H: (768, 768),
    UNCLIP_L: (768, 768),
    SDXL_BASE: (1024, 1024),
    SDXL_REFINER: (1024, 1024),
}
HUB_SIZES: dict[str, Size] = {
    UNCLIP_H_ID: KIND_SIZES[UNCLIP_H],
    UNCLIP_L_ID: KIND_SIZES[UNCLIP_L],
    SDXL_BASE_ID: KIND_SIZES[SDXL_BASE],
    SDXL_REFINER_ID: KIND_SIZES[SDXL_REFINER],
}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


def model_size(spec: str) -> Size | None:
    """The (width, height) `spec` (Hub id, diffusers folder or checkpoint file) was made for; None: not known."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return folder_size(lambda name: path / name)
    if path.is_file():
        return KIND_SIZES.get(inspect_checkpoint(path).kind) if path.suffix in SINGLE_FILE_SUFFIXES else None
    return HUB_SIZES.get(spec) or folder_size(lambda name: _cached_hub_file(spec, name))


def folder_size(file: Callable[[str], Path | None]) -> Size | None:
    """Size from a diffusers layout's `unet/config.json` and `vae/config.json`; `file(name)` is a Path or None."""
    unet, vae = _read_json(file("unet/config.json")), _read_json(file("vae/config.json"))
    sample, channels = unet.get("sample_size"), vae.get("block_out_channels")
    if not isinstance(channels, list) or not channels:
        return None
    scale = 2 ** (len(channels) - 1)
    if isinstance(sample, int) and not isinstance(sample, bool):
        return sample * scale, sample * scale
    if isinstance(sample, list) and len(sample) == 2 and all(isinstance(side, int) for side in sample):
        return sample[1] * scale, sample[0] * scale  # diffusers writes (height, width)
    return None


def sized_for_model(group: ParamGroup, spec: str | None) -> ParamGroup:
    """`group` with its `width` and `height` defaulting to the model's own size (the schema's when not known)."""
    size = model_size(spec) if spec else None
    if size is None:
        return group
    for name, side in zip(("width", "height"), size, strict=True):
        try:
            group = group.replace(group[name].with_default(group[name].coerce(side)))
        except ParamError:  # a size the schema does not allow (below 64, say): its default stays
            pass
    return group


def _read_json(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _cached_hub_file(repo_id: str, name: str) -> Path | None:
    """A file of a Hub repo when the local cache has it (no network); None otherwise."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        cached = try_to_load_from_cache(repo_id, name)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached) if isinstance(cached, str) else None
