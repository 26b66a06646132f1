"""Saving results as the WebUI does: numbered PNGs with the infotext in the `parameters` chunk."""

from __future__ import annotations

import re
from pathlib import Path

from ..images import png_bytes
from ..lineage_tree import own_hash_chunks

_NUMBERED = re.compile(r"^(\d{5})-")
# The one output-folder rule of the CLI and the app: --out is a root, each kind of job saves into its subfolder.
VARIATIONS_FOLDER = "reimagine"  # single jobs and folder batches alike; the Lineage view reads it
SDXL_FOLDER = "sdxl"
REFINED_FOLDER = "refined"


def job_folder(out_dir: Path, kind: str) -> Path:
    """Where a job of `kind` (one of the *_FOLDER names) saves under the output root."""
    return Path(out_dir) / kind


def next_index(folder: Path) -> int:
    """The next free 5-digit image number in a folder."""
    numbers = [int(m.group(1)) for p in folder.glob("*.png") if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=-1) + 1


def save_png(image, infotext: str, folder: Path, seed: int, suffix: str = "", index: int | None = None) -> Path:
    """Write one image as `NNNNN-SEED[-suffix].png` with its infotext; returns the path.

    index: the number to use (a kept base image takes its refined image's number: `00003-7.png`, `00003-7-base.png`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    number = next_index(folder) if index is None else index
    name = f"{number:05d}-{seed}{'-' + suffix if suffix else ''}.png"
    path = folder / name
    path.write_bytes(png_bytes(image, infotext, own_hash_chunks(image, infotext)))  # Reimagine outputs: own hash
    return path
