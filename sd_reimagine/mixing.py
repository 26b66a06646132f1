"""Several references with weights, seeds per image, and the image/text mix: the rules, in one place.

Rule for references: weights must be >= 0 with at least one > 0; references of weight 0 are dropped before anything
else (they draw no noise, so they change nothing); the rest are normalised to sum to 1. Each reference's CLIP image
embedding is noise-augmented on its own at the job's noise level, with noise drawn from that image's seeded generator
(never the global RNG), then the noised embeddings are summed with the normalised weights. One reference of weight 1
is therefore exactly the plain Stable unCLIP conditioning.

Image/text mix m scales the image part of that conditioning by (1 - m): 0 is plain Stable unCLIP, 1 zeroes it, which
is the model's own "no image" conditioning (the one classifier-free guidance uses), so the prompt alone steers.
The noise-level embedding part stays as it is.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import ParamError, ReimagineError
from .images import InputImage
from .infotext import Lineage, generation_of
from .schema import MAX_SEED, Param

MAX_WEIGHT = 10.0
MAX_REFERENCES = 4  # the tab's slots; the same limit in the API, the CLI and the app
REFERENCE_WEIGHT = Param("weight", float, 1.0, "Weight", "Share of this reference in the mix.", 0.0, MAX_WEIGHT, 0.05)


@dataclass(frozen=True)
class Reference:
    """One reference image and its weight."""

    image: InputImage
    weight: float = 1.0


def check_weights(weights: Sequence[float]) -> None:
    """Refuse negative, huge or all-zero weights with a message naming the bad one."""
    if not weights:
        raise ReimagineError("at least one reference image is needed")
    if len(weights) > MAX_REFERENCES:
        raise ParamError("images", f"{len(weights)} references", f"1 to {MAX_REFERENCES} reference images")
    for index, weight in enumerate(weights):
        if not (0.0 <= float(weight) <= MAX_WEIGHT):
            raise ParamError(f"weight of reference {index + 1}", weight, REFERENCE_WEIGHT.allowed())
    if not any(float(w) > 0 for w in weights):
        raise ParamError("weights", list(weights), "at least one weight above 0")


def active_references(references: Sequence[Reference]) -> list[Reference]:
    """The references that take part, with weights normalised to sum to 1 (weight-0 ones dropped)."""
    check_weights([r.weight for r in references])
    total = sum(r.weight for r in references)
    return [Reference(r.image, r.weight / total) for r in references if r.weight > 0]


def resolve_seed(seed: int) -> int:
    """-1 becomes a random seed, as in the WebUI."""
    return random.randrange(MAX_SEED) if seed == -1 else seed


def image_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the n images of one job: seed, seed + 1, ... (wrapping like the WebUI's 32-bit seeds)."""
    return [(seed + i) % (MAX_SEED + 1) for i in range(n)]


def mixed_conditioning(
    embeds: torch.Tensor,
    weights: Sequence[float],
    noises: torch.Tensor,
    augment: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    image_text_mix: float = 0.0,
) -> torch.Tensor:
    """The class/ADM conditioning (1, D + level dim) of one image from k reference embeddings (k, D).

    `augment(embeds, noise)` is the model's own noise augmentation: it returns the noised embeddings with the
    noise-level embedding concatenated.
    """
    noised = augment(embeds, noises)
    if len(weights) == 1 and weights[0] == 1.0:
        mixed = noised[:1]  # bit-exact plain Stable unCLIP
    else:
        w = torch.tensor(list(weights), dtype=noised.dtype, device=noised.device).unsqueeze(1)
        mixed = (noised * w).sum(dim=0, keepdim=True)
    if image_text_mix:
        mixed = mixed.clone()
        mixed[:, : embeds.shape[1]] *= 1.0 - image_text_mix
    return mixed


def draw_embedding_noise(shape: tuple[int, ...], count: int, generator: torch.Generator, dtype, device) -> torch.Tensor:
    """Noise for `count` reference embeddings, drawn one by one from the image's generator (reference order)."""
    draws = [torch.randn(shape, generator=generator, dtype=dtype, device=generator.device) for _ in range(count)]
    return torch.cat(draws).to(device)


def lineage_of(references: Sequence[Reference]) -> Lineage:
    """Lineage fields: every reference (hash, normalised weight); parents are references that were Reimagine images."""
    generations = [generation_of(r.image.infotext) for r in references]
    parents = tuple(r.image.short_hash for r, g in zip(references, generations, strict=True) if g is not None)
    generation = 1 + max((g for g in generations if g is not None), default=0)
    return Lineage(tuple((r.image.short_hash, round(r.weight, 4)) for r in references), parents, generation)
