"""Stable unCLIP 2.x single-file checkpoints (the original LDM layout the WebUI loads) as a diffusers pipeline, offline.

diffusers' `from_single_file` cannot build a StableUnCLIPImg2ImgPipeline and would fetch configs from the Hub; here
every config is derived from tensor shapes (so tiny test checkpoints load too), diffusers' own converters do the UNet,
VAE and text tower, and only the OpenCLIP image tower and the noise-augmentation statistics are mapped here.
Head counts are not visible in shapes: they come from `Heads`, else the `.yaml` beside the checkpoint (WebUI
convention) and `open_clip_configs/<arch>.json` beside it, else the values of the real SD 2.x / ViT-H-14 models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import checkpoints
from ..errors import ModelNotAvailableError
from .single_file_components import (
    build_image_encoder,
    build_normalizer,
    build_text_encoder,
    build_unet,
    build_vae,
)
from .single_file_layout import IMAGE, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, TEXT, UNET, UNUSED, TensorFile


@dataclass(frozen=True)
class Heads:
    """Attention head settings that tensor shapes cannot reveal; None: `.yaml` beside the file, else SD 2.x values."""

    unet_head_channels: int | None = None
    text: int | None = None
    vision: int | None = None


def load_unclip_single_file(
    path: str | Path,
    tokenizer: str | Path | None = None,
    heads: Heads | None = None,
    dtype: torch.dtype = torch.float32,
):
    """A StableUnCLIPImg2ImgPipeline from an LDM-layout `.safetensors`/`.ckpt` unCLIP checkpoint, without the Hub."""
    from diffusers import StableUnCLIPImg2ImgPipeline

    path = Path(path).expanduser()
    source = TensorFile(path)
    meta = source.meta
    _require_unclip(path, meta)
    yaml_config = _read_yaml(path.with_suffix(".yaml"))
    heads = _resolve_heads(heads or _open_clip_heads(path, yaml_config), yaml_config, meta)
    used: set[str] = set()
    tokenizer = load_tokenizer(path, tokenizer, context_length=meta[TEXT + "positional_embedding"].shape[0])
    # One component at a time: its tensors are read, converted to `dtype` and made its parameters.
    image_encoder = build_image_encoder(source, used, heads.vision, dtype)
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=_feature_extractor(image_encoder),
        image_encoder=image_encoder,
        image_normalizer=build_normalizer(source, used, yaml_config).to(dtype),
        image_noising_scheduler=_image_noising_scheduler(),
        tokenizer=tokenizer,
        text_encoder=build_text_encoder(source, used, heads.text, dtype),
        unet=build_unet(source, used, heads.unet_head_channels, dtype),
        scheduler=_scheduler(yaml_config),
        vae=build_vae(source, used, yaml_config, dtype),
    )
    _check_all_used(path, meta, used)
    return pipe


def _require_unclip(path: Path, state: dict[str, torch.Tensor]) -> None:
    shapes = {name: list(tensor.shape) for name, tensor in state.items()}
    kind = checkpoints.classify(shapes)
    if kind not in (checkpoints.UNCLIP_H, checkpoints.UNCLIP_L, checkpoints.UNCLIP):
        raise ModelNotAvailableError(
            f"checkpoint {str(path)!r} looks like a {kind!r} model, not Stable unCLIP: pass an unCLIP checkpoint "
            "(e.g. sd21-unclip-h.ckpt)"
        )
    if not any(name.startswith(IMAGE) for name in state):
        # unCLIP-L uses OpenAI CLIP's image tower under other names; only the OpenCLIP (unCLIP-H) layout is mapped.
        raise ModelNotAvailableError(
            f"checkpoint {str(path)!r}: only OpenCLIP-image-tower unCLIP (unCLIP-H) is supported"
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    """The `model.params` of a WebUI-style config beside the checkpoint; {} when there is none."""
    if not path.is_file():
        return {}
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    return (config.get("model") or {}).get("params") or {}


def _open_clip_heads(path: Path, yaml_config: dict[str, Any]) -> Heads:
    """Text/vision heads from `open_clip_configs/<arch>.json` beside the checkpoint (custom open_clip archs)."""
    arch = ((yaml_config.get("cond_stage_config") or {}).get("params") or {}).get("arch")
    config_file = path.with_name("open_clip_configs") / f"{arch}.json"
    if not arch or not config_file.is_file():
        return Heads()
    import json

    config = json.loads(config_file.read_text())
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    vision_heads = vision["width"] // vision["head_width"] if "width" in vision and "head_width" in vision else None
    return Heads(text=text.get("heads"), vision=vision_heads)


def _resolve_heads(heads: Heads, yaml_config: dict[str, Any], state: dict[str, torch.Tensor]) -> Heads:
    unet_params = (yaml_config.get("unet_config") or {}).get("params") or {}
    unet_head_channels = heads.unet_head_channels or unet_params.get("num_head_channels")
    if not unet_head_channels and unet_params.get("num_heads"):
        unet_head_channels = state[UNET + "input_blocks.0.0.weight"].shape[0] // unet_params["num_heads"]
    text_width = state[TEXT + "ln_final.weight"].shape[0]
    vision_width = state[IMAGE + "ln_pre.weight"].shape[0]
    return Heads(
        unet_head_channels=unet_head_channels or 64,  # SD 2.x
        text=heads.text or max(1, text_width // 64),  # OpenCLIP text towers use 64-wide heads
        vision=heads.vision or _vision_heads(vision_width),
    )


def _vision_heads(width: int) -> int:
    # OpenCLIP ViT-H-14 has 80-wide heads (1280 / 16); ViT-L/B and most others 64.
    if width % 80 == 0 and width >= 1280:
        return width // 80
    return max(1, width // 64)


def _check_all_used(path: Path, state: dict[str, torch.Tensor], used: set[str]) -> None:
    # A leftover tensor means an architecture variant this converter does not understand: fail instead of
    # silently producing a pipeline that differs from the WebUI's.
    left = sorted(name for name in state if name not in used and not UNUSED.match(name))
    if left:
        raise ModelNotAvailableError(
            f"checkpoint {str(path)!r}: {len(left)} tensors this unCLIP converter does not know, e.g. {left[:3]}"
        )


def load_tokenizer(checkpoint: Path, folder: str | Path | None = None, context_length: int = 77):
    """The CLIP BPE tokenizer: `folder`, else `<name>_tokenizer/` or `tokenizer/` beside the checkpoint."""
    from transformers import CLIPTokenizer

    candidates = [Path(folder).expanduser()] if folder else []
    candidates += [checkpoint.with_name(checkpoint.stem + "_tokenizer"), checkpoint.with_name("tokenizer")]
    for candidate in candidates:
        if (candidate / "vocab.json").is_file():
            tokenizer = CLIPTokenizer.from_pretrained(str(candidate))
            # A bare vocab.json + merges.txt folder has no model_max_length: use the text tower's context.
            tokenizer.model_max_length = min(tokenizer.model_max_length, context_length)
            # open_clip pads with id 0 ("!" in CLIP's vocabulary), as the WebUI does; the UNet sees the padding.
            if tokenizer.get_vocab().get("!") == 0:
                tokenizer.pad_token = "!"
            return tokenizer
    where = f"{candidates[0]} has no vocab.json; " if folder else ""
    raise ModelNotAvailableError(
        f"checkpoint {str(checkpoint)!r}: {where}no CLIP tokenizer found (it cannot be downloaded here): copy the "
        f"`tokenizer` folder of stabilityai/stable-diffusion-2-1-unclip to {candidates[-2]}"
    )


def _scheduler(yaml_config: dict[str, Any]):
    from diffusers import DDIMScheduler

    # The released SD 2.1 unCLIP models are v-prediction (ldm `parameterization: v`).
    prediction = "epsilon" if yaml_config.get("parameterization") == "eps" else "v_prediction"
    return DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=float(yaml_config.get("linear_start", 0.00085)),
        beta_end=float(yaml_config.get("linear_end", 0.012)),
        prediction_type=prediction,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )


def _image_noising_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="squaredcos_cap_v2", num_train_timesteps=1000)


def _feature_extractor(image_encoder):
    from transformers import CLIPImageProcessor

    size = image_encoder.config.image_size
    return CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    )
