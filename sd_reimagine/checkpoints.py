"""What a checkpoint file is (unCLIP-H/L, SDXL base/refiner, other SD), read from its header without loading it.

safetensors: the JSON header (names and shapes). Pickled .ckpt: the names are read from the pickle's opcodes with
`pickletools` (nothing is executed, no object is built), so an untrusted file is never unpickled here.
"""

from __future__ import annotations

import json
import pickletools
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ParamError

UNCLIP_H = "unclip-h"
UNCLIP_L = "unclip-l"
UNCLIP = "unclip"  # an unCLIP model whose image tower is neither (tiny test models)
SDXL_BASE = "sdxl-base"
SDXL_REFINER = "sdxl-refiner"
SD = "sd"
UNKNOWN = "unknown"

UNCLIP_KINDS = (UNCLIP_H, UNCLIP_L, UNCLIP)
REFINER_KINDS = (SDXL_REFINER, SDXL_BASE)  # what the SDXL refiner post-step can run (same latent space as SDXL)
ROLES = {  # role -> (kinds that can play it, how to say so)
    "unclip": (UNCLIP_KINDS, "a Stable unCLIP 2.1 checkpoint (H or L)"),
    "reimagine": (
        (*UNCLIP_KINDS, SDXL_BASE),
        "a Stable unCLIP 2.1 checkpoint (H or L), or an SDXL base (Reimagine XL)",
    ),
    "refiner": (REFINER_KINDS, "an SDXL refiner or SDXL base checkpoint"),
}
KIND_NAMES = {
    UNCLIP_H: "Stable unCLIP 2.1-H",
    UNCLIP_L: "Stable unCLIP 2.1-L",
    UNCLIP: "Stable unCLIP",
    SDXL_BASE: "SDXL base",
    SDXL_REFINER: "SDXL refiner",
    SD: "SD 1.x/2.x",
    UNKNOWN: "not a recognised Stable Diffusion checkpoint",
}

UNCLIP_KEY = "embedder.model.ln_final.weight"
SDXL_BASE_KEY = "conditioner.embedders.1.model.ln_final.weight"
SDXL_REFINER_KEY = "conditioner.embedders.0.model.ln_final.weight"
_RESBLOCK = re.compile(r"^embedder\.model\.visual\.transformer\.resblocks\.(\d+)\.")
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    kind: str

    @property
    def is_unclip(self) -> bool:
        return self.kind in (UNCLIP_H, UNCLIP_L, UNCLIP)


def read_safetensors_header(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, from the safetensors JSON header."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > MAX_HEADER:
            raise ValueError(f"{path.name}: safetensors header of {length} bytes is implausible")
        header = json.loads(handle.read(length))
    return {name: meta.get("shape", []) for name, meta in header.items() if name != "__metadata__"}


def safetensors_problem(path: str | Path) -> str | None:
    """Why a .safetensors file cannot load (bad header, truncated data), or None; reads only the header."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > min(MAX_HEADER, size - 8):
                return f"its header claims {length} bytes in a file of {size}"
            header = json.loads(handle.read(length))
        ends = [meta["data_offsets"][1] for name, meta in header.items() if name != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        return f"its header cannot be read ({type(exc).__name__})"
    needed = 8 + length + max(ends, default=0)
    return f"it is truncated ({size} bytes, its header needs {needed})" if needed > size else None


def describe_kind(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)


def check_role(field: str, value: object, kind: str, role: str) -> None:
    """Refuse a checkpoint whose kind cannot play `role` ('unclip', 'refiner'), naming the kinds that can."""
    kinds, wanted = ROLES[role]
    if kind not in kinds:
        raise ParamError(field, value, f"{wanted}; this one is {describe_kind(kind)}")


def read_ckpt_names(path: Path) -> dict[str, list[int]]:
    """Strings of a torch zip checkpoint's pickle, read opcode by opcode (never unpickled); shapes unknown."""
    names: dict[str, list[int]] = {}
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not pickles:
            return names
        data = archive.read(pickles[0])
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str) and "." in arg:
            names[arg] = []
    return names


def classify(tensors: dict[str, list[int]]) -> str:
    """The model family from tensor names (and shapes when known)."""
    if SDXL_BASE_KEY in tensors:
        return SDXL_BASE
    if SDXL_REFINER_KEY in tensors:
        return SDXL_REFINER
    if UNCLIP_KEY in tensors:
        width = (tensors[UNCLIP_KEY] or [0])[0]
        if width == 1024:
            return UNCLIP_H
        if width == 768:
            return UNCLIP_L
        layers = {int(m.group(1)) for name in tensors if (m := _RESBLOCK.match(name))}
        return {32: UNCLIP_H, 24: UNCLIP_L}.get(len(layers), UNCLIP)
    if any(name.startswith("model.diffusion_model.") for name in tensors):
        return SD
    return UNKNOWN


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Classify a .safetensors or .ckpt file; unreadable files are UNKNOWN."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            tensors = read_safetensors_header(path)
        elif path.suffix in (".ckpt", ".pt", ".pth"):
            tensors = read_ckpt_names(path)
        else:
            return CheckpointInfo(path, UNKNOWN)
    except (OSError, ValueError, zipfile.BadZipFile, struct.error):
        return CheckpointInfo(path, UNKNOWN)
    return CheckpointInfo(path, classify(tensors))
