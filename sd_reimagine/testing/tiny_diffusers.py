"""Tiny random-weight diffusers models, built here (never downloaded): for tests, benchmarks and offline trials.

Architectures follow diffusers' own fast tests; `scale` widens them for benchmarks where model calls should dominate.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_UNCLIP = "tiny-unclip"
TINY_SDXL_BASE = "tiny-sdxl-base"
TINY_SDXL_REFINER = "tiny-sdxl-refiner"


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte-to-character table (the alphabet of its byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def make_tokenizer(folder: Path):
    """A CLIP tokenizer with a 514-token byte-level vocabulary (no merges); the end token has the highest id."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_config(width: int, layers: int = 5, projection: int | None = None):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        vocab_size=514,
        hidden_size=width,
        projection_dim=projection or width,
        intermediate_size=37 * width // 32,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=layers,
        hidden_act="gelu",
    )


def _vae(scale: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    channels = 16 * scale
    return AutoencoderKL(
        block_out_channels=(channels, 2 * channels, 2 * channels, 2 * channels),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=64,
    )


def build_unclip(scale: int = 1):
    """A StableUnCLIPImg2ImgPipeline with tiny random weights (embedding dim 32, v-prediction like SD 2.1)."""
    from diffusers import DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from transformers import CLIPImageProcessor, CLIPTextModel

    embed_dim = 32
    image_encoder = _unclip_image_encoder(embed_dim)
    normalizer = _unclip_normalizer(embed_dim)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_text_config(embed_dim))
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=image_encoder,
        image_normalizer=normalizer,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=None,
        text_encoder=text_encoder,
        unet=_unclip_unet(embed_dim, scale),
        scheduler=_v_prediction_scheduler(),
        vae=_vae(scale),
    )


def _unclip_image_encoder(embed_dim: int):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=embed_dim,
        projection_dim=embed_dim,
        num_hidden_layers=5,
        num_attention_heads=4,
        image_size=32,
        intermediate_size=37,
        patch_size=1,
    )
    return CLIPVisionModelWithProjection(config)


def _unclip_normalizer(embed_dim: int):
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    torch.manual_seed(0)
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=embed_dim)
    # Random statistics so that normalisation is not the identity, as in the real model.
    normalizer.mean.data = torch.randn(1, embed_dim) * 0.1
    normalizer.std.data = torch.rand(1, embed_dim) + 0.5
    return normalizer


def _unclip_unet(embed_dim: int, scale: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32 * scale, 64 * scale),
        attention_head_dim=(2, 4),
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * embed_dim,
        cross_attention_dim=embed_dim,
        layers_per_block=1,
        upcast_attention=True,
        use_linear_projection=True,
        norm_num_groups=8,
    )


def _v_prediction_scheduler():
    """DDIM with SD 2.1's v-prediction settings."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )


def _sdxl_unet(cross_attention_dim: int, class_dim: int, scale: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32 * scale, 64 * scale),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=class_dim,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=8,
    )


def _sdxl_scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )


def build_sdxl_pair(scale: int = 1):
    """A tiny SDXL base and refiner that share text encoder 2 and the VAE, as the real pair does."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_text_config(32))
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(32, projection=32))
    vae = _vae(scale)
    # base: 6 time ids x 8 + pooled 32 = 80; refiner: 5 time ids (aesthetic score) x 8 + 32 = 72
    return sdxl_pair_of(vae, text_encoder, text_encoder_2, _sdxl_unet(64, 80, scale), _sdxl_unet(32, 72, scale))


def sdxl_pair_of(vae, text_encoder, text_encoder_2, base_unet, refiner_unet):
    """An SDXL base and refiner pipeline sharing text encoder 2 and the VAE, as the released pair does (no
    tokenizers: the caller registers them)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    base = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=None,
        tokenizer_2=None,
        unet=base_unet,
        scheduler=_sdxl_scheduler(),
    )
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=text_encoder_2,
        tokenizer=None,
        tokenizer_2=None,
        unet=refiner_unet,
        scheduler=_sdxl_scheduler(),
        requires_aesthetics_score=True,
    )
    return base, refiner


def _attach_tokenizers(pipe, folder: Path) -> None:
    tokenizer = make_tokenizer(folder / "_tokenizer")
    for name in ("tokenizer", "tokenizer_2"):
        if name in pipe.components and getattr(pipe, f"text_encoder{name[9:]}", None) is not None:
            pipe.register_modules(**{name: tokenizer})


def write_tiny_models(out_dir: Path, scale: int = 1) -> dict[str, Path]:
    """Write the tiny unCLIP, SDXL base and SDXL refiner as diffusers folders and the tiny bigG-layout vision tower
    (a `.safetensors` file); returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base, refiner = build_sdxl_pair(scale)
    pipes = {TINY_UNCLIP: build_unclip(scale), TINY_SDXL_BASE: base, TINY_SDXL_REFINER: refiner}
    written = {}
    for name, pipe in pipes.items():
        folder = out_dir / name
        _attach_tokenizers(pipe, out_dir)
        pipe.save_pretrained(folder, safe_serialization=True)
        written[name] = folder
    from .tiny_clip_vision import TINY_CLIP_VISION, write_tiny_clip_vision

    written[TINY_CLIP_VISION] = write_tiny_clip_vision(out_dir / f"{TINY_CLIP_VISION}.safetensors")
    return written
