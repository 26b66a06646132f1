"""A tiny random-weight CLIP vision tower in the `clip_vision_g.safetensors` layout, for Reimagine XL tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..clip_vision import CONFIG_METADATA
from ..reimagine_xl import CLIP_VISION_G_FILE

TINY_CLIP_VISION = "tiny-clip-vision-g"


def tiny_vision_config(projection_dim: int = 32) -> dict:
    """CLIPVisionConfig arguments of the tiny tower; its projection matches the tiny SDXL pooled embedding."""
    return {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
        "projection_dim": projection_dim,
        "hidden_act": "gelu",
    }


def write_tiny_clip_vision(path: Path, projection_dim: int = 32, seed: int = 0) -> Path:
    """Write the tiny tower as a transformers-layout `.safetensors` with its config in the metadata."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = tiny_vision_config(projection_dim)
    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
    # Position ids are a buffer the real file need not hold; the loader rebuilds them.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={CONFIG_METADATA: json.dumps({"num_attention_heads": 2})})
    return path


def write_into_clip_vision_folder(models_dir: Path, projection_dim: int = 32) -> Path:
    """The tiny tower as `<models_dir>/clip_vision/clip_vision_g.safetensors`, where the WebUI host looks."""
    return write_tiny_clip_vision(Path(models_dir) / "clip_vision" / CLIP_VISION_G_FILE, projection_dim)
