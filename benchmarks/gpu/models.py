"""Pipelines for the GPU benchmark, built on the device from configs in code (nothing downloaded): Stable unCLIP
2.1-H, SDXL base 1.0 + refiner 1.0 and the OpenCLIP bigG vision tower at their real architectures with random
weights in float16/bfloat16, or the project's tiny models (`--tiny`, CPU).

Each module is laid out on the meta device, then every parameter is allocated directly on the device in the
benchmark dtype and filled there (normal(0, 0.02); norm scales 1, biases 0), so a real-size build takes seconds
on a GPU and never holds a float32 copy.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm)
WEIGHT_STD = 0.02


@dataclass
class Models:
    """What the jobs run on: the unCLIP pipeline, the SDXL base and refiner (sharing text encoder 2 and VAE), and
    the bigG vision tower of Reimagine XL."""

    unclip: Any
    base: Any
    refiner: Any
    tower: Any  # sd_reimagine.clip_vision.VisionTower

    def pipelines(self) -> tuple:
        return self.unclip, self.base, self.refiner


def materialize(module: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """Allocate a meta-device module's parameters on `device` in `dtype` and fill them with seeded random values;
    buffers (CLIP position ids) are rebuilt, as a checkpoint would hold them."""
    generator = torch.Generator(device=device).manual_seed(seed)
    for part in module.modules():
        for name, parameter in list(part._parameters.items()):
            if parameter is None:
                continue
            data = torch.empty(parameter.shape, device=device, dtype=dtype)
            if name == "bias":
                data.zero_()
            elif isinstance(part, NORMS):
                data.fill_(1.0)
            else:
                data.normal_(0.0, WEIGHT_STD, generator=generator)
            part._parameters[name] = torch.nn.Parameter(data, requires_grad=False)
        for name, buffer in list(part._buffers.items()):
            if buffer is not None:
                part._buffers[name] = _real_buffer(name, buffer, device)
    return module.eval()


def _real_buffer(name: str, buffer: torch.Tensor, device: torch.device) -> torch.Tensor:
    if buffer.device.type != "meta":
        return buffer.to(device)
    if name == "position_ids":
        return torch.arange(buffer.shape[-1], device=device).expand(buffer.shape).contiguous()
    raise ValueError(f"no rule to rebuild buffer {name} {tuple(buffer.shape)}")


def _on_meta(build):
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=True):
        return build()


def _text_config(hidden: int, layers: int, heads: int, projection: int, act: str):
    """A CLIP text tower config with the tiny tokenizer's special ids (a real vocabulary size, ids below 514)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        projection_dim=projection,
        hidden_act=act,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
    )


def sdxl_unet(refiner: bool):
    """The SDXL base 1.0 or refiner 1.0 UNet (diffusers' configs of the released models)."""
    from diffusers import UNet2DConditionModel

    if refiner:
        return UNet2DConditionModel(
            sample_size=128,
            block_out_channels=(384, 768, 1536, 1536),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=4,
            attention_head_dim=(6, 12, 24, 24),
            cross_attention_dim=1280,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2560,
            use_linear_projection=True,
        )
    return UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
        use_linear_projection=True,
    )


def sdxl_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=1024,
        scaling_factor=0.13025,
        force_upcast=True,
    )


def bigg_vision_tower():
    """OpenCLIP ViT-bigG/14's image tower with its 1280-wide projection (what Reimagine XL loads)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=1664,
        intermediate_size=8192,
        num_hidden_layers=48,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=1280,
        hidden_act="gelu",
    )
    return CLIPVisionModelWithProjection(config)


def real_models(device: torch.device, dtype: torch.dtype) -> Models:
    """The real architectures with random weights, built on `device`."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from sd_reimagine.clip_vision import VisionTower
    from sd_reimagine.testing.real_size_unclip import meta_components
    from sd_reimagine.testing.tiny_diffusers import sdxl_pair_of

    make = lambda build, seed: materialize(_on_meta(build), device, dtype, seed)  # noqa: E731
    text = make(lambda: CLIPTextModel(_text_config(768, 12, 12, 768, "quick_gelu")), 10)
    text_2 = make(lambda: CLIPTextModelWithProjection(_text_config(1280, 32, 20, 1280, "gelu")), 11)
    unets = make(lambda: sdxl_unet(False), 13), make(lambda: sdxl_unet(True), 14)
    base, refiner = sdxl_pair_of(make(sdxl_vae, 12), text, text_2, *unets)
    base.register_modules(tokenizer=tokenizer(), tokenizer_2=tokenizer())
    refiner.register_modules(tokenizer_2=tokenizer())
    unet, unclip_vae, unclip_text, vision = meta_components()
    parts = [materialize(m, device, dtype, 20 + i) for i, m in enumerate((unet, unclip_vae, unclip_text, vision))]
    unclip = unclip_pipeline(*parts, embed_dim=1024, image_size=224)
    tower = VisionTower(make(bigg_vision_tower, 30), "random-bigG")
    return finish(Models(unclip, base, refiner, tower))


def unclip_pipeline(unet, vae, text_encoder, image_encoder, embed_dim: int, image_size: int):
    """A StableUnCLIPImg2ImgPipeline around the given modules, with SD 2.1's v-prediction DDIM schedule."""
    from diffusers import DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPImageProcessor

    from sd_reimagine.testing.tiny_diffusers import _v_prediction_scheduler

    normalizer = StableUnCLIPImageNormalizer(embedding_dim=embed_dim).to(unet.device, unet.dtype)
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=image_size, size=image_size),
        image_encoder=image_encoder,
        image_normalizer=normalizer,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer(),
        text_encoder=text_encoder,
        unet=unet,
        scheduler=_v_prediction_scheduler(),
        vae=vae,
    )


def tiny_models(device: torch.device, dtype: torch.dtype) -> Models:
    """The project's tiny models (tests' architectures), for `--tiny` on the CPU."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from sd_reimagine.clip_vision import VisionTower
    from sd_reimagine.testing.tiny_clip_vision import tiny_vision_config
    from sd_reimagine.testing.tiny_diffusers import build_sdxl_pair, build_unclip

    unclip = build_unclip(1)
    unclip.register_modules(tokenizer=tokenizer())
    base, refiner = build_sdxl_pair(1)
    base.register_modules(tokenizer=tokenizer(), tokenizer_2=tokenizer())
    refiner.register_modules(tokenizer_2=tokenizer())
    torch.manual_seed(0)
    tower = CLIPVisionModelWithProjection(CLIPVisionConfig(**tiny_vision_config(32))).eval().requires_grad_(False)
    models = Models(unclip, base, refiner, VisionTower(tower, "tiny-bigG"))
    cast = {} if dtype == torch.float32 else {"dtype": dtype}  # built in float32
    for pipe in models.pipelines():
        pipe.to(device=device, **cast)
    models.tower.model.to(device=device, **cast)
    return finish(models)


def finish(models: Models) -> Models:
    for pipe in models.pipelines():
        pipe.set_progress_bar_config(disable=True)
    return models


_TOKENIZER: Any = None


def tokenizer():
    """The tiny CLIP tokenizer (77 tokens, ids below 514: valid for the real vocabularies too)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from sd_reimagine.testing.tiny_diffusers import make_tokenizer

        _TOKENIZER = make_tokenizer(Path(tempfile.mkdtemp(prefix="bench-gpu-tok-")))
    return _TOKENIZER
