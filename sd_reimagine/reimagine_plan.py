"""A Reimagine job, decided once: which references take part, the seed of every image, how images are batched,
where sampling starts, each image's conditioning and the `Reimagine ...` infotext. Both hosts call
`plan_reimagine`, build each image's conditioning with `conditioning_for_seed` (their own noise augmentation passed
in), and return a `VariationResult`.

Rules (the reference rules themselves are in `mixing.py`):
- image i of a job has seed `seed + i` and equals a job of one image with that seed;
- batches: at most `max_batch` images sampled together; a host that can only run equal batches (the WebUI's
  batch size x batch count) gets the largest divisor of n not above `max_batch`;
- structure strength s > 0 starts from the first reference's latents at denoise 1 - s, else from pure noise;
- each image's embedding noise is drawn from a generator seeded with the image's seed, reference by reference;
- the image encoder is recorded only for Reimagine XL (facts.engine "xl"); an unCLIP model brings its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .images import InputImage
from .infotext import group_fields
from .mixing import (
    Reference,
    active_references,
    draw_embedding_noise,
    image_seeds,
    lineage_of,
    mixed_conditioning,
    resolve_seed,
)
from .schema import REIMAGINE, ParamGroup

NOISE, FIRST_REFERENCE = "noise", "first reference"


@dataclass(frozen=True)
class ReimagineFacts:
    """What a host reports: the model's name as infotext records it and how it batches images."""

    model: str
    max_batch: int = 1
    uneven_batches: bool = True  # False: every batch has the same size (the WebUI's batch size x batch count)
    engine: str = "unclip"  # "xl": Reimagine XL on an SDXL base (reimagine_xl.py); its image encoder is recorded
    image_encoder: str = ""  # the XL image encoder's name as infotext records it


@dataclass(frozen=True)
class ReimaginePlan:
    """What one Reimagine job does."""

    values: dict[str, Any]  # checked, with the seed resolved and the model's recorded name
    references: tuple[Reference, ...]  # the ones that take part, weights normalised
    seeds: tuple[int, ...]
    batches: tuple[tuple[int, ...], ...]  # seeds sampled together
    start: str  # NOISE or FIRST_REFERENCE
    denoise: float  # 1.0 from noise; 1 - structure strength from the first reference

    @property
    def weights(self) -> list[float]:
        return [r.weight for r in self.references]

    def fields(self) -> dict[str, Any]:
        """The `Reimagine ...` infotext keys of every image of the job (lineage included)."""
        fields = group_fields(REIMAGINE, self.values).items()
        keys = {k: v for k, v in fields if k.startswith("Reimagine") and v not in (None, "")}
        return {**keys, **lineage_of(self.references).fields()}


@dataclass
class GeneratedImage:
    """One output image with the seed and infotext that reproduce it."""

    image: Any
    seed: int
    infotext: str


@dataclass
class VariationResult:
    """What a Reimagine job returns in every host: images in seed order, the values, timings, interrupted."""

    images: list[GeneratedImage]
    values: dict[str, Any]
    interrupted: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return [image.seed for image in self.images]

    @property
    def infotexts(self) -> list[str]:
        return [image.infotext for image in self.images]


def plan_reimagine(
    values: dict[str, Any],
    references: Sequence[tuple[InputImage, float]] | Sequence[Reference],
    facts: ReimagineFacts,
    group: ParamGroup = REIMAGINE,
) -> ReimaginePlan:
    """The plan of a job from its values, references and the host's facts; errors name the bad value."""
    values = group.validate(values)
    values["seed"] = resolve_seed(values["seed"])
    values["model"] = facts.model or values["model"]
    # The image encoder is an XL setting: an unCLIP model has its own, so nothing is recorded for it.
    values["image_encoder"] = (facts.image_encoder or values["image_encoder"]) if facts.engine == "xl" else ""
    given = [r if isinstance(r, Reference) else Reference(r[0], float(r[1])) for r in references]
    active = active_references(given)
    seeds = image_seeds(values["seed"], values["n"])
    structure = values["structure_strength"]
    return ReimaginePlan(
        values=values,
        references=tuple(active),
        seeds=tuple(seeds),
        batches=tuple(batched(seeds, facts.max_batch, facts.uneven_batches)),
        start=FIRST_REFERENCE if structure > 0 else NOISE,
        denoise=1.0 - structure if structure > 0 else 1.0,
    )


def batched(seeds: Sequence[int], max_batch: int, uneven: bool = True) -> list[tuple[int, ...]]:
    """Seeds in batches of at most max_batch (equal batches: the largest divisor of n not above max_batch)."""
    size = max(1, int(max_batch))
    if not uneven:
        size = max(d for d in range(1, min(len(seeds), size) + 1) if len(seeds) % d == 0)
    return [tuple(seeds[i : i + size]) for i in range(0, len(seeds), size)]


def conditioning_for_seed(
    embeds: torch.Tensor,
    plan: ReimaginePlan,
    generator: torch.Generator,
    augment: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The class/ADM conditioning (1, D + level dim) of one image: its references' embeddings (k, D), noised with
    draws from the image's own generator (reference order), mixed with the plan's weights and image/text mix."""
    noises = draw_embedding_noise((1, embeds.shape[1]), len(plan.references), generator, noise_dtype, embeds.device)
    return mixed_conditioning(embeds, plan.weights, noises, augment, plan.values["image_text_mix"])
