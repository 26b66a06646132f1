"""Latents and pixels of the SDXL VAEs: encode, decode, and the pixel bridge between two latent spaces."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .low_vram import execution_device


def bridge_latents(latents: torch.Tensor, source_vae, target_vae) -> torch.Tensor:
    """Latents of one model in another's latent space: decode with the source VAE, encode with the target's."""
    return encode_pixels(target_vae, decode_latents(source_vae, latents).clamp(-1, 1))


def encode_pixels(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Scaled latents of pixels in [-1, 1] (the posterior mean: deterministic, as the WebUI encodes)."""
    with torch.no_grad(), _float32_if_needed(vae) as dtype:
        posterior = vae.encode(pixels.to(device=execution_device(vae), dtype=dtype)).latent_dist
        latents = posterior.mode()
    mean, std = _latents_stats(vae, latents)
    if mean is not None:
        return ((latents - mean) * vae.config.scaling_factor / std).to(vae.dtype)
    return (latents * vae.config.scaling_factor).to(vae.dtype)


def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Pixels in about [-1, 1] of scaled latents, as the SDXL pipelines decode them."""
    mean, std = _latents_stats(vae, latents)
    unscaled = (
        latents * std / vae.config.scaling_factor + mean if mean is not None else latents / vae.config.scaling_factor
    )
    with torch.no_grad(), _float32_if_needed(vae) as dtype:
        return vae.decode(unscaled.to(device=execution_device(vae), dtype=dtype), return_dict=False)[0]


def decode_images(pipe, vae, latents: torch.Tensor, output_type: str = "pil") -> list:
    """Images of latents, decoded and post-processed as the pipeline itself would (watermark included)."""
    if output_type == "latent":
        return list(latents)
    pixels = decode_latents(vae, latents)
    if getattr(pipe, "watermark", None) is not None:
        pixels = pipe.watermark.apply_watermark(pixels)
    return list(pipe.image_processor.postprocess(pixels, output_type=output_type))


def _latents_stats(vae, latents: torch.Tensor):
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is None or std is None:
        return None, None
    as_tensor = lambda v: torch.tensor(v).view(1, -1, 1, 1).to(latents.device, latents.dtype)  # noqa: E731
    return as_tensor(mean), as_tensor(std)


@contextmanager
def _float32_if_needed(vae) -> Iterator[torch.dtype]:
    """The SDXL VAE overflows in float16 (`force_upcast`): run it in float32 for this call only."""
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        yield torch.float32 if upcast else vae.dtype
    finally:
        if upcast:
            vae.to(dtype=torch.float16)
