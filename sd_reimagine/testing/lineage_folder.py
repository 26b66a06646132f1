"""Synthetic Reimagine output folders for the lineage tests and benchmark: small PNGs with realistic infotext.

Each file is saved as the standalone host saves outputs (`png_bytes` with the `reimagine-hash` chunk), its lineage
fields written by the same `Lineage` the jobs use; pixels are seeded noise, so every file has its own hash.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..images import image_digest, png_bytes
from ..infotext import NOISE_LEVEL, Lineage, write_infotext
from ..lineage_tree import HASH_CHUNK, own_hash_chunks

PROMPT = (
    "a lighthouse on a cliff at dusk, volumetric light, detailed oil painting, warm colours, seagulls, "
    "dramatic clouds, highly detailed, artstation"
)
NEGATIVE = "blurry, low quality, watermark, text, deformed"
MAX_GENERATION = 6  # a few generations deep, as people iterate


@dataclass(frozen=True)
class Written:
    """One written file: its path, own hash and generation."""

    path: Path
    digest: str
    generation: int


def noise_picture(seed: int, size: int = 32) -> Image.Image:
    pixels = (np.random.RandomState(seed).rand(size, size, 3) * 255).astype("uint8")
    return Image.fromarray(pixels, "RGB")


def reimagine_infotext(lineage: Lineage, seed: int, noise_level: int, prompt: str = PROMPT) -> str:
    """Infotext as a Reimagine job writes it (the WebUI's field order), with `lineage`'s fields."""
    fields = {
        "Steps": 20,
        "Sampler": "Euler a",
        "CFG scale": 7,
        "Seed": seed,
        "Size": "768x768",
        "Model": "sd21-unclip-h",
        NOISE_LEVEL: noise_level,
        "Reimagine image/text mix": 0,
        "Reimagine structure strength": 0,
        **lineage.fields(),
    }
    return write_infotext(prompt, NEGATIVE, fields)


def write_node(
    path: Path,
    picture: Image.Image,
    references: list[tuple[str, float, int | None]],
    seed: int,
    noise_level: int = 200,
    with_hash: bool = True,
) -> Written:
    """Write one output; `references` are (short hash, weight, generation or None for an uploaded original)."""
    parents = tuple(short for short, _weight, generation in references if generation is not None)
    generation = 1 + max((g for _s, _w, g in references if g is not None), default=0)
    lineage = Lineage(tuple((short, weight) for short, weight, _g in references), parents, generation)
    infotext = reimagine_infotext(lineage, seed, noise_level)
    chunks = own_hash_chunks(picture, infotext) if with_hash else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(picture, infotext, chunks))
    return Written(path, chunks.get(HASH_CHUNK) or image_digest(picture), generation)


def write_synthetic_folder(folder: Path, count: int, roots: int = 100, seed: int = 0, size: int = 32) -> list[Written]:
    """`count` outputs descending from `roots` uploaded originals, a few generations deep, some with two parents."""
    rng = random.Random(seed)
    originals = [image_digest(noise_picture(10_000_000 + i, 8))[:10] for i in range(roots)]
    written: list[Written] = []
    for index in range(count):
        picks = 2 if rng.random() < 0.2 else 1
        references = []
        for _ in range(picks):
            parent = written[rng.randrange(max(0, len(written) - 300), len(written))] if written else None
            if parent and parent.generation < MAX_GENERATION and rng.random() < 0.65:  # variations of variations
                references.append((parent.digest[:10], 0.5 if picks == 2 else 1.0, parent.generation))
            else:
                references.append((rng.choice(originals), 0.5 if picks == 2 else 1.0, None))
        name = f"{index:05d}-{index + 1000}.png"
        picture = noise_picture(index, size)
        written.append(write_node(folder / name, picture, references, index + 1000, rng.choice((0, 100, 300, 600))))
    return written
