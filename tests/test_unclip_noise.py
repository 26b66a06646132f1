"""The core's unCLIP noise augmentation equals diffusers' `noise_image_embeddings` (normaliser, DDPM squaredcos
schedule, sinusoidal level embedding): what Forge's native unCLIP puts in the UNet's `y` is Stable unCLIP's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sd_reimagine.errors import ParamError
from sd_reimagine.unclip_noise import level_embedding, unclip_augment


def diffusers_noised(embeds, level, noise, mean, std):
    from diffusers import DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    normalizer = StableUnCLIPImageNormalizer(embedding_dim=embeds.shape[1])
    with torch.no_grad():
        normalizer.mean.copy_(mean.reshape(1, -1))
        normalizer.std.copy_(std.reshape(1, -1))
    parts = SimpleNamespace(
        image_normalizer=normalizer, image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    )
    return StableUnCLIPImg2ImgPipeline.noise_image_embeddings(parts, embeds, level, noise=noise)


@pytest.mark.parametrize("level", [0, 100, 500, 999])
@pytest.mark.parametrize("with_stats", [False, True])
def test_augment_equals_diffusers(level, with_stats):
    generator = torch.Generator().manual_seed(level)
    embeds, noise = torch.randn(3, 768, generator=generator), torch.randn(3, 768, generator=generator)
    mean = torch.randn(768, generator=generator) * 0.1 if with_stats else torch.zeros(768)
    std = torch.rand(768, generator=generator) + 0.5 if with_stats else torch.ones(768)
    ours = unclip_augment(level, mean if with_stats else None, std if with_stats else None)(embeds, noise)
    theirs = diffusers_noised(embeds, level, noise, mean, std)
    assert ours.shape == (3, 1536)
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


def test_level_changes_the_row_and_zero_level_keeps_the_embedding():
    embeds, noise = torch.randn(1, 1024), torch.randn(1, 1024)
    clean = unclip_augment(0)(embeds, noise)
    torch.testing.assert_close(clean[:, :1024], embeds, atol=0.05, rtol=0)  # sqrt(1 - a_0) = 0.0064
    assert not torch.allclose(unclip_augment(500)(embeds, noise), clean)
    assert torch.equal(level_embedding(0, 1024), torch.cat([torch.ones(1, 512), torch.zeros(1, 512)], 1))


def test_level_out_of_range_names_noise_level():
    with pytest.raises(ParamError, match="noise_level=1000 is not allowed"):
        unclip_augment(1000)
