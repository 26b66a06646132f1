"""Stable unCLIP's noise augmentation of CLIP image embeddings, as plain maths (no model object needed).

ldm's `CLIPEmbeddingNoiseAugmentation` (the `noise_augmentor` of an unCLIP checkpoint) has no learned weights: the
squaredcos_cap_v2 schedule (1000 steps), optional CLIP statistics (unCLIP-L: karlo's `ViT-L-14_stats.th`; unCLIP-H:
none, so mean 0 and std 1) and a sinusoidal embedding of the level. For an embedding e at level t with noise n:

    adm = [ unscale( sqrt(a_t) * scale(e) + sqrt(1 - a_t) * n ),  level_embedding(t, D) ]

scale(e) = (e - mean) / std, unscale(x) = x * std + mean. This is what the UNet's `label_emb` takes (`y`). A host
whose model object has no augmentor (Forge drops it on load) passes `unclip_augment` to `conditioning_for_seed`;
diffusers' `StableUnCLIPImg2ImgPipeline.noise_image_embeddings` computes the same (tests/test_unclip_noise.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .reimagine_xl import level_alpha

MAX_PERIOD = 10000


def level_embedding(level: int, dim: int) -> torch.Tensor:
    """The sinusoidal embedding (1, dim) of a noise level, cosines first (ldm `timestep_embedding`)."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32) / half)
    args = float(level) * freqs
    embedding = torch.cat([torch.cos(args), torch.sin(args)])
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros(1)])
    return embedding[None]


def unclip_augment(
    noise_level: int, mean: torch.Tensor | None = None, std: torch.Tensor | None = None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """augment(embeds (k, D), noise (k, D)) -> (k, 2D) for `conditioning_for_seed`: noised embeddings and the
    level embedding, with the CLIP statistics `mean`/`std` (D values each) when the model has them."""
    alpha = level_alpha(noise_level)

    def augment(embeds: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        m = torch.zeros(()) if mean is None else mean.reshape(1, -1)
        s = torch.ones(()) if std is None else std.reshape(1, -1)
        m, s = m.to(embeds), s.to(embeds)
        noised = math.sqrt(alpha) * (embeds - m) / s + math.sqrt(1.0 - alpha) * noise.to(embeds)
        level = level_embedding(int(noise_level), embeds.shape[1]).to(embeds).expand(embeds.shape[0], -1)
        return torch.cat([noised * s + m, level], dim=1)

    return augment
