"""Building the diffusers components of a single-file Stable unCLIP-H checkpoint from its (LDM-layout) tensors.

Each builder reads its configuration from the file's shapes, builds its module on the meta device, then takes only
its own tensors (recorded in `used`, so that the loader can prove every tensor was accounted for) and makes them the
module's parameters in the wanted dtype: one component's source tensors at a time are in memory beside the
pipeline.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from .single_file_layout import (
    IMAGE,
    NORMALIZER,
    TEXT,
    UNET,
    VAE,
    TensorFile,
    count_blocks,
    empty_weights,
    load_into,
)


def unet_ldm_params(state: dict[str, torch.Tensor], head_channels: int) -> dict[str, Any]:
    """ldm `UNetModel` parameters read from tensor shapes (what the original .yaml would say)."""
    unet = {name[len(UNET) :]: tensor for name, tensor in state.items() if name.startswith(UNET)}
    model_channels = unet["input_blocks.0.0.weight"].shape[0]
    level, levels, res_blocks, attention, depth = 0, [], 0, set(), 1
    block = 1
    while f"input_blocks.{block}.0.op.weight" in unet or f"input_blocks.{block}.0.in_layers.0.weight" in unet:
        if f"input_blocks.{block}.0.op.weight" in unet:
            level += 1
        else:
            if level == len(levels):
                levels.append(unet[f"input_blocks.{block}.0.out_layers.3.weight"].shape[0] // model_channels)
            res_blocks += level == 0
            if f"input_blocks.{block}.1.proj_in.weight" in unet:
                attention.add(2**level)
                prefix = f"input_blocks.{block}.1.transformer_blocks."
                depth = 1 + max(int(n[len(prefix) :].split(".")[0]) for n in unet if n.startswith(prefix))
        block += 1
    proj_in = next(t for n, t in unet.items() if n.endswith(".proj_in.weight"))
    params = {
        "in_channels": unet["input_blocks.0.0.weight"].shape[1],
        "out_channels": unet["out.2.weight"].shape[0],
        "model_channels": model_channels,
        "channel_mult": levels,
        "num_res_blocks": res_blocks,
        "attention_resolutions": sorted(attention),
        "num_head_channels": head_channels,
        "transformer_depth": depth,
        "context_dim": next(t for n, t in unet.items() if n.endswith("attn2.to_k.weight")).shape[1],
        "use_linear_in_transformer": proj_in.ndim == 2,
    }
    if "label_emb.0.0.weight" in unet:
        params |= {"num_classes": "sequential", "adm_in_channels": unet["label_emb.0.0.weight"].shape[1]}
    return params


def vae_ldm_ddconfig(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """ldm autoencoder `ddconfig` read from tensor shapes."""
    vae = {name[len(VAE) :]: tensor for name, tensor in state.items() if name.startswith(VAE)}
    ch = vae["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(n.split(".")[2]) for n in vae if n.startswith("encoder.down."))
    blocks = 1 + max(int(n.split(".")[4]) for n in vae if n.startswith("encoder.down.0.block."))
    return {
        "ch": ch,
        "ch_mult": [vae[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // ch for i in range(levels)],
        "num_res_blocks": blocks,
        "in_channels": vae["encoder.conv_in.weight"].shape[1],
        "out_ch": vae["decoder.conv_out.weight"].shape[0],
        "z_channels": vae["decoder.conv_in.weight"].shape[1],
    }


def _original_config(state: dict[str, torch.Tensor], head_channels: int, scale_factor: float) -> dict[str, Any]:
    """The slice of an ldm .yaml that diffusers' config converters read."""
    return {
        "model": {
            "params": {
                "scale_factor": scale_factor,
                "unet_config": {"params": unet_ldm_params(state, head_channels)},
                "first_stage_config": {"params": {"ddconfig": vae_ldm_ddconfig(state)}},
            }
        }
    }


def build_unet(source: TensorFile, used: set[str], head_channels: int, dtype: torch.dtype | None = None):
    """The UNet (label_emb -> class_embedding, "projection"), converted by diffusers."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu

    original = _original_config(source.meta, head_channels, 0.18215)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # image_size is deprecated but the only way to skip Hub-based model sniffing
        config = sfu.create_unet_diffusers_config_from_ldm(original, source.meta, image_size=768)
    # SD 2.x 768-v models need fp32 attention scores in fp16 (diffusers sets this for every v2 model too).
    config["upcast_attention"] = True
    with empty_weights():
        unet = UNet2DConditionModel(**config)
    tensors = source.take(UNET, used, strip=False)
    converted = sfu.convert_ldm_unet_checkpoint(tensors, unet.config)
    del tensors
    load_into(unet, converted, "UNet", dtype)
    return unet


def build_vae(source: TensorFile, used: set[str], yaml_config: dict[str, Any], dtype: torch.dtype | None = None):
    """The KL autoencoder, converted by diffusers."""
    from diffusers import AutoencoderKL
    from diffusers.loaders import single_file_utils as sfu

    scale_factor = float(yaml_config.get("scale_factor", 0.18215))
    original = _original_config(source.meta, 64, scale_factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = sfu.create_vae_diffusers_config_from_ldm(original, source.meta, image_size=768)
    with empty_weights():
        vae = AutoencoderKL(**config)
    tensors = source.take(VAE, used, strip=False)
    converted = sfu.convert_ldm_vae_checkpoint(tensors, vae.config)
    del tensors
    load_into(vae, converted, "VAE", dtype)
    return vae


def build_text_encoder(source: TensorFile, used: set[str], heads: int, dtype: torch.dtype | None = None):
    """The OpenCLIP text tower without its last layer: SD 2.x conditions on the penultimate layer (+ ln_final)."""
    from diffusers.loaders import single_file_utils as sfu
    from transformers import CLIPTextConfig, CLIPTextModel

    tower = source.take(TEXT, used)
    layers = count_blocks(tower, "transformer.resblocks.")
    last = f"transformer.resblocks.{layers - 1}."
    width = tower["ln_final.weight"].shape[0]
    vocab = tower["token_embedding.weight"].shape[0]
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=tower["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        projection_dim=tower["text_projection"].shape[1] if "text_projection" in tower else width,
        num_hidden_layers=layers - 1,
        num_attention_heads=heads,
        max_position_embeddings=tower["positional_embedding"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=vocab - 2,  # CLIP's BPE: <|startoftext|>, <|endoftext|> are the last two ids
        eos_token_id=vocab - 1,
        pad_token_id=0,
    )
    with empty_weights():
        model = CLIPTextModel(config)
    kept = {TEXT + n: t for n, t in tower.items() if not n.startswith(last)}
    del tower
    converted = sfu.convert_open_clip_checkpoint(model, kept)
    del kept
    # transformers >= 5.6 flattened CLIPTextModel: its keys lost the `text_model.` prefix.
    if not hasattr(model, "text_model"):
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    converted.pop("text_projection.weight", None)
    load_into(model, converted, "text encoder", dtype)
    return model


def build_image_encoder(source: TensorFile, used: set[str], heads: int, dtype: torch.dtype | None = None):
    """The OpenCLIP ViT image tower as a transformers CLIPVisionModelWithProjection (diffusers has no converter)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    tower = source.take(IMAGE, used)
    width, _, patch, _ = tower["conv1.weight"].shape
    grid = int(round((tower["positional_embedding"].shape[0] - 1) ** 0.5))
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=tower["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        projection_dim=tower["proj"].shape[1],
        num_hidden_layers=count_blocks(tower, "transformer.resblocks."),
        num_attention_heads=heads,
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="gelu",  # OpenCLIP's nn.GELU (exact), not OpenAI's quick_gelu
        layer_norm_eps=1e-5,
    )
    with empty_weights():
        model = CLIPVisionModelWithProjection(config)
    converted = convert_open_clip_vision(tower)
    del tower
    load_into(model, converted, "image encoder", dtype)
    return model


def convert_open_clip_vision(tower: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenCLIP `visual.*` tensors (prefix stripped) -> CLIPVisionModelWithProjection names."""
    out = {
        "vision_model.embeddings.patch_embedding.weight": tower["conv1.weight"],
        "vision_model.embeddings.class_embedding": tower["class_embedding"],
        "vision_model.embeddings.position_embedding.weight": tower["positional_embedding"],
        "vision_model.pre_layrnorm.weight": tower["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": tower["ln_pre.bias"],
        "vision_model.post_layernorm.weight": tower["ln_post.weight"],
        "vision_model.post_layernorm.bias": tower["ln_post.bias"],
        # OpenCLIP multiplies `x @ proj`; nn.Linear stores the transpose.
        "visual_projection.weight": tower["proj"].T.contiguous(),
    }
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    names["attn.out_proj"] = "self_attn.out_proj"
    for i in range(count_blocks(tower, "transformer.resblocks.")):
        old, new = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for part in ("weight", "bias"):
            for a, b in names.items():
                out[f"{new}{b}.{part}"] = tower[f"{old}{a}.{part}"]
            # nn.MultiheadAttention packs q, k, v in one projection.
            for name, chunk in zip("qkv", tower[f"{old}attn.in_proj_{part}"].chunk(3), strict=True):
                out[f"{new}self_attn.{name}_proj.{part}"] = chunk.contiguous()
    return out


def build_normalizer(source: TensorFile, used: set[str], yaml_config: dict[str, Any]):
    """unCLIP's image-embedding statistics: from the file, else the config's clip_stats_path, else identity."""
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer

    dim = source.meta[IMAGE + "proj"].shape[1]
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=dim)
    stats = source.take(NORMALIZER + "data_", used)
    if not stats:
        # ldm registers data_mean/data_std as non-persistent buffers: WebUI files don't carry them, the .yaml
        # names the statistics file (the released sd21-unclip configs name none: zero mean, unit std).
        stats = _clip_stats(yaml_config)
    if stats:
        normalizer.mean.data = stats["mean"].reshape(1, dim).float()
        normalizer.std.data = stats["std"].reshape(1, dim).float()
    return normalizer


def _clip_stats(yaml_config: dict[str, Any]) -> dict[str, torch.Tensor]:
    stats_path = ((yaml_config.get("noise_aug_config") or {}).get("params") or {}).get("clip_stats_path")
    if not stats_path or not Path(stats_path).is_file():
        return {}
    mean, std = torch.load(stats_path, map_location="cpu", weights_only=True)
    return {"mean": mean, "std": std}
