"""Real-size Stable unCLIP 2.1 checkpoints with random weights (the architectures of `sd21-unclip-h.ckpt` and
`sd21-unclip-l.ckpt`), in the original single-file layout, float16, alone (no tokenizer folder, no .yaml): what a
user has in models/Stable-diffusion, and what load times and memory are measured on (never committed, ~4 GB each).

Both share SD 2.1's UNet (its `label_emb` takes the image embedding plus the noise-level embedding: 2048 values for
H, 1536 for L), the OpenCLIP ViT-H/14 text tower and the VAE. The image embedder differs:
- H: ldm's FrozenOpenCLIPImageEmbedder, OpenCLIP ViT-H/14 (GELU, 1024-value embeddings) with the text tower
  deleted except a few leftovers (`ln_final`, `token_embedding`, ...);
- L: ldm's ClipImageEmbedder, the whole OpenAI CLIP ViT-L/14 (quick-GELU, 768-value embeddings; its 12-layer text
  tower included).
The noise augmentor has no weights, only its 8 schedule buffers (squaredcos_cap_v2, 1000 steps).
Each component is laid out on the meta device (names and shapes only), renamed as ldm/OpenCLIP name it, then filled
with small random values one tensor at a time and streamed into the file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from ..checkpoints import UNCLIP_H, UNCLIP_L
from .ldm_layout import clip_layers_to_open_clip, text_to_open_clip, unet_to_ldm, vae_to_ldm, vision_to_open_clip
from .safetensors_stream import write_streamed_safetensors

TEXT_WIDTH = 1024  # OpenCLIP ViT-H/14 text tower (SD 2.x)
EMBED_DIM = {UNCLIP_H: 1024, UNCLIP_L: 768}  # image embedding of the unCLIP model's tower
VISION = {  # CLIPVisionConfig of each tower
    UNCLIP_H: dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, hidden_act="gelu"),
    UNCLIP_L: dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, hidden_act="quick_gelu"),
}
EMBEDDER_TEXT_WIDTH = {UNCLIP_H: TEXT_WIDTH, UNCLIP_L: 768}  # the embedder's own text tower (ln_final's width)
AUGMENTOR_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
)


def meta_components(kind: str = UNCLIP_H):
    """UNet, VAE, text and image towers of Stable unCLIP 2.1-H or -L (the released models' configs)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    with init_empty_weights(include_buffers=True):
        unet = UNet2DConditionModel(
            sample_size=96,
            block_out_channels=(320, 640, 1280, 1280),
            attention_head_dim=(5, 10, 20, 20),
            cross_attention_dim=1024,
            class_embed_type="projection",
            projection_class_embeddings_input_dim=2 * EMBED_DIM[kind],
            use_linear_projection=True,
            upcast_attention=True,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=2,
        )
        text = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=TEXT_WIDTH,
                intermediate_size=4096,
                num_hidden_layers=23,  # the 24th, which SD 2.x skips, is added by text_to_open_clip
                num_attention_heads=16,
                max_position_embeddings=77,
                projection_dim=512,
                hidden_act="gelu",
            )
        )
        config = CLIPVisionConfig(
            num_attention_heads=16, image_size=224, patch_size=14, projection_dim=EMBED_DIM[kind], **VISION[kind]
        )
        vision = CLIPVisionModelWithProjection(config)
    return unet, vae, text, vision


def openai_clip_l_text() -> dict[str, torch.Tensor]:
    """`embedder.model.*` text tower of OpenAI CLIP ViT-L/14 (meta tensors): unCLIP-L keeps the whole CLIP model."""
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights(include_buffers=True):
        text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12))
    state = {k.removeprefix("text_model."): v for k, v in text.state_dict().items()}
    prefix = "embedder.model."
    out = clip_layers_to_open_clip(state, "encoder.layers.", prefix)
    meta = dict(device="meta")
    out |= {
        prefix + "token_embedding.weight": torch.empty(49408, 768, **meta),
        prefix + "positional_embedding": torch.empty(77, 768, **meta),
        prefix + "ln_final.bias": torch.empty(768, **meta),
        prefix + "text_projection": torch.empty(768, 768, **meta),
        prefix + "logit_scale": torch.empty((), **meta),
    }
    return out


def augmentor_schedule() -> dict[str, torch.Tensor]:
    """The noise augmentor's 8 persistent buffers, as ldm registers them (squaredcos_cap_v2, 1000 steps)."""
    from ..reimagine_xl import alphas_cumprod

    cumprod = alphas_cumprod()
    previous = torch.cat([torch.ones(1, dtype=cumprod.dtype), cumprod[:-1]])
    values = {
        "betas": 1 - cumprod / previous,
        "alphas_cumprod": cumprod,
        "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": cumprod.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1 / cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / cumprod - 1).sqrt(),
    }
    return {f"noise_augmentor.{name}": values[name].float() for name in AUGMENTOR_BUFFERS}


def ldm_shapes(kind: str = UNCLIP_H) -> dict[str, torch.Size]:
    """Every tensor name of the original unCLIP layout (H or L) with its shape."""
    unet, vae, text, vision = meta_components(kind)
    state = unet_to_ldm(unet) | vae_to_ldm(vae) | text_to_open_clip(text)
    state |= vision_to_open_clip(vision, EMBEDDER_TEXT_WIDTH[kind])
    if kind == UNCLIP_L:
        state |= openai_clip_l_text()
    state |= {name: torch.empty(1000, device="meta") for name in augmentor_schedule()}
    return {name: tensor.shape for name, tensor in state.items()}


def random_tensor(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Small random float16 values; norms at 1 so that a pipeline runs finite."""
    if re.search(r"(norm|ln_)[^.]*\.weight$|\.ln_\d\.weight$", name):
        return torch.ones(shape, dtype=torch.float16)
    values = torch.randn(shape, generator=generator, dtype=torch.float32) * 0.02
    return values.to(torch.float16)


def write_real_size_unclip(path: Path, kind: str = UNCLIP_H, seed: int = 0) -> Path:
    """Write the checkpoint (float16 .safetensors, streamed: one tensor in memory) alone; returns the path."""
    generator = torch.Generator().manual_seed(seed)
    schedule = augmentor_schedule()
    specs = {name: (shape, torch.float16) for name, shape in ldm_shapes(kind).items()}

    def make(name: str, spec) -> torch.Tensor:
        return schedule[name].half() if name in schedule else random_tensor(name, spec[0], generator)

    return write_streamed_safetensors(path, specs, make, {"reimagine": f"random weights, architecture of {kind}"})


def write_real_size_unclip_h(path: Path, seed: int = 0) -> Path:
    return write_real_size_unclip(path, UNCLIP_H, seed)


def write_real_size_unclip_l(path: Path, seed: int = 0) -> Path:
    return write_real_size_unclip(path, UNCLIP_L, seed)


def main(argv: list[str] | None = None) -> int:
    """python -m sd_reimagine.testing.real_size_unclip OUT.safetensors [--kind unclip-l]"""
    parser = argparse.ArgumentParser(prog="python -m sd_reimagine.testing.real_size_unclip", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--kind", choices=[UNCLIP_H, UNCLIP_L], default=UNCLIP_H)
    args = parser.parse_args(argv)
    print(write_real_size_unclip(args.out, args.kind))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
