"""A real-size Stable unCLIP 2.1-H checkpoint with random weights (the architecture of `sd21-unclip-h.ckpt`), in
the original single-file layout, float16: what load times and memory are measured on (never committed, ~4 GB).

Each component is laid out on the meta device (names and shapes only), renamed as ldm/OpenCLIP name it, then filled
with small random values one tensor at a time, so building it needs about the file's size in memory.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from .ldm_layout import text_to_open_clip, unet_to_ldm, vae_to_ldm, vision_to_open_clip

TEXT_WIDTH = 1024  # OpenCLIP ViT-H/14 text tower (SD 2.x)
EMBED_DIM = 1024  # ViT-H/14 image embedding


def meta_components():
    """UNet, VAE, text and image towers of Stable unCLIP 2.1-H (diffusers' configs of the released model)."""
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
            projection_class_embeddings_input_dim=2 * EMBED_DIM,
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
        vision = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=1280,
                intermediate_size=5120,
                num_hidden_layers=32,
                num_attention_heads=16,
                image_size=224,
                patch_size=14,
                projection_dim=EMBED_DIM,
                hidden_act="gelu",
            )
        )
    return unet, vae, text, vision


def ldm_shapes() -> dict[str, torch.Size]:
    """Every tensor name of the original unCLIP-H layout with its shape."""
    unet, vae, text, vision = meta_components()
    state = unet_to_ldm(unet) | vae_to_ldm(vae) | text_to_open_clip(text) | vision_to_open_clip(vision, TEXT_WIDTH)
    state["noise_augmentor.data_mean"] = torch.empty(1, EMBED_DIM, device="meta")
    state["noise_augmentor.data_std"] = torch.empty(1, EMBED_DIM, device="meta")
    return {name: tensor.shape for name, tensor in state.items()}


def random_tensor(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Small random float16 values; norms at 1 and statistics at (0, 1) so that a pipeline runs finite."""
    if name.endswith("data_std") or re.search(r"(norm|ln_)[^.]*\.weight$|\.ln_\d\.weight$", name):
        return torch.ones(shape, dtype=torch.float16)
    values = torch.randn(shape, generator=generator, dtype=torch.float32) * 0.02
    return values.to(torch.float16)


def write_real_size_unclip_h(path: Path, seed: int = 0) -> Path:
    """Write the checkpoint (float16 .safetensors) and a tokenizer folder beside it; returns the path."""
    from safetensors.torch import save_file

    from .tiny_diffusers import make_tokenizer

    generator = torch.Generator().manual_seed(seed)
    tensors = {name: random_tensor(name, shape, generator) for name, shape in ldm_shapes().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    make_tokenizer(path.with_name(path.stem + "_tokenizer"))
    return path


def main(argv: list[str] | None = None) -> int:
    """python -m sd_reimagine.testing.real_size_unclip OUT.safetensors"""
    parser = argparse.ArgumentParser(prog="python -m sd_reimagine.testing.real_size_unclip", description=__doc__)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    print(write_real_size_unclip_h(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
