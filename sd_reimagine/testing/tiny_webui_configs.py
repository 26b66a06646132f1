"""The LDM/SGM configs of the tiny WebUI test checkpoints (the `.yaml` written beside each checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_H = "reimagine-tiny-ViT-H-14"
TINY_BIGG = "reimagine-tiny-ViT-bigG-14"
CLIP_L_DIR = "tiny-clip-vit-large-patch14"
OPEN_CLIP_DIR = "open_clip_configs"
SUPPORT_EXTENSION = "reimagine-tiny-support"
STATS_FILE = "tiny-unclip-h-clip-stats.pt"

TEXT_WIDTH = 32  # CLIP-L and the OpenCLIP text towers
EMBED_DIM = 32  # OpenCLIP image/pooled text embedding (= unCLIP noise-level embedding size)
SDXL_SIZE_DIM = 8  # ConcatTimestepEmbedderND outdim (real: 256)
VOCAB_SIZE = 49408  # the WebUI tokenises with the full CLIP BPE vocabulary

CHECKPOINTS = ("tiny-sd15", "tiny-unclip-h", "tiny-sdxl-base", "tiny-sdxl-refiner")

# Options for the test data dir's config.json: "Approx NN" previews would download vaeapprox-sdxl.pt.
WEBUI_TEST_OPTIONS: dict[str, Any] = {"show_progress_type": "Approx cheap", "sd_checkpoints_limit": 2}

PRELOAD_TEMPLATE = '''"""Registers the tiny open_clip architectures of sd-webui-reimagine's test checkpoints."""

import open_clip

open_clip.add_model_config({config_dir!r})
'''


def _open_clip_config(vision_width: int, vision_layers: int, text_layers: int) -> dict[str, Any]:
    """One open_clip model config: a ViT image tower and a text tower, both tiny."""
    return {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {
            "image_size": 224,
            "layers": vision_layers,
            "width": vision_width,
            "head_width": 32,
            "patch_size": 32,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": VOCAB_SIZE,
            "width": TEXT_WIDTH,
            "heads": 2,
            "layers": text_layers,
        },
    }


OPEN_CLIP_CONFIGS: dict[str, dict[str, Any]] = {
    TINY_H: _open_clip_config(vision_width=64, vision_layers=2, text_layers=3),
    TINY_BIGG: _open_clip_config(vision_width=32, vision_layers=1, text_layers=3),
}


def _ddconfig() -> dict[str, Any]:
    """A tiny KL autoencoder that still downsamples by 8 (GroupNorm needs multiples of 32 channels)."""
    return {
        "attn_type": "vanilla",
        "double_z": True,
        "z_channels": 4,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 32,
        "ch_mult": [1, 1, 1, 1],
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "dropout": 0.0,
    }


def _first_stage(target: str) -> dict[str, Any]:
    """The first-stage (VAE) config block."""
    params = {"embed_dim": 4, "monitor": "val/rec_loss", "ddconfig": _ddconfig()}
    params["lossconfig"] = {"target": "torch.nn.Identity"}
    return {"target": target, "params": params}


def _ldm_unet(context_dim: int, adm_in_channels: int | None = None) -> dict[str, Any]:
    """A tiny ldm UNet (SD 1.x without adm, SD 2.x unCLIP with it)."""
    params: dict[str, Any] = {
        "use_checkpoint": False,
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 32,
        "attention_resolutions": [1, 2],
        "num_res_blocks": 1,
        "channel_mult": [1, 2],
        "num_head_channels": 16,
        "use_spatial_transformer": True,
        "transformer_depth": 1,
        "context_dim": context_dim,
        "legacy": False,
    }
    if adm_in_channels is not None:
        params |= {"num_classes": "sequential", "adm_in_channels": adm_in_channels}
        params["use_linear_in_transformer"] = True
    return {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": params}


def _ldm_params() -> dict[str, Any]:
    """The LatentDiffusion parameters shared by v1-inference.yaml and the SD 2.1 unCLIP configs."""
    return {
        "linear_start": 0.00085,
        "linear_end": 0.0120,
        "num_timesteps_cond": 1,
        "log_every_t": 200,
        "timesteps": 1000,
        "first_stage_key": "jpg",
        "cond_stage_key": "txt",
        "image_size": 64,
        "channels": 4,
        "cond_stage_trainable": False,
        "monitor": "val/loss_simple_ema",
        "scale_factor": 0.18215,
        "use_ema": False,
    }


def sd15_config(clip_dir: Path) -> dict[str, Any]:
    """An SD 1.x config (v1-inference.yaml) with a tiny UNet, VAE and HF CLIP text model."""
    params = _ldm_params() | {"conditioning_key": "crossattn"}
    params["unet_config"] = _ldm_unet(context_dim=TEXT_WIDTH)
    params["first_stage_config"] = _first_stage("ldm.models.autoencoder.AutoencoderKL")
    params["cond_stage_config"] = {
        "target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder",
        "params": {"version": str(clip_dir)},
    }
    return {"model": {"target": "ldm.models.diffusion.ddpm.LatentDiffusion", "params": params}}


def unclip_h_config(stats_path: Path) -> dict[str, Any]:
    """An SD 2.1 unCLIP-H config (v2-1-stable-unclip-h-inference.yaml) with tiny OpenCLIP towers."""
    encoders = "ldm.modules.encoders.modules"
    params = _ldm_params() | {
        "embedding_dropout": 0.25,
        "parameterization": "v",
        "conditioning_key": "crossattn-adm",
    }
    params["embedder_config"] = {
        "target": f"{encoders}.FrozenOpenCLIPImageEmbedder",
        "params": {"arch": TINY_H, "version": None},
    }
    params["noise_aug_config"] = {
        "target": f"{encoders}.CLIPEmbeddingNoiseAugmentation",
        "params": {
            "timestep_dim": EMBED_DIM,
            "clip_stats_path": str(stats_path),
            "noise_schedule_config": {"timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"},
        },
    }
    params["unet_config"] = _ldm_unet(context_dim=TEXT_WIDTH, adm_in_channels=2 * EMBED_DIM)
    params["first_stage_config"] = _first_stage("ldm.models.autoencoder.AutoencoderKL")
    params["cond_stage_config"] = {
        "target": f"{encoders}.FrozenOpenCLIPEmbedder",
        "params": {"arch": TINY_H, "version": None, "freeze": True, "layer": "penultimate"},
    }
    target = "ldm.models.diffusion.ddpm.ImageEmbeddingConditionedLatentDiffusion"
    return {"model": {"target": target, "params": params}}


def _sgm_embedder(target: str, input_key: str, **params: Any) -> dict[str, Any]:
    """One GeneralConditioner embedder entry."""
    module = "sgm.modules.encoders.modules"
    entry = {"is_trainable": False, "input_key": input_key, "target": f"{module}.{target}"}
    return entry | {"params": params}


def _sgm_embedders(clip_dir: Path, refiner: bool) -> list[dict[str, Any]]:
    """The SDXL base (CLIP-L + bigG + sizes) or refiner (bigG + sizes + aesthetic score) embedders."""
    size = {"outdim": SDXL_SIZE_DIM}
    bigg = {"arch": TINY_BIGG, "version": None, "freeze": True, "layer": "penultimate"}
    bigg |= {"always_return_pooled": True, "legacy": False}
    embedders = [_sgm_embedder("FrozenOpenCLIPEmbedder2", "txt", **bigg)]
    embedders += [
        _sgm_embedder("ConcatTimestepEmbedderND", key, **size)
        for key in ("original_size_as_tuple", "crop_coords_top_left")
    ]
    if refiner:
        return [*embedders, _sgm_embedder("ConcatTimestepEmbedderND", "aesthetic_score", **size)]
    clip_l = _sgm_embedder("FrozenCLIPEmbedder", "txt", version=str(clip_dir), layer="hidden", layer_idx=11)
    target_size = _sgm_embedder("ConcatTimestepEmbedderND", "target_size_as_tuple", **size)
    return [clip_l, *embedders, target_size]


def _sgm_unet(context_dim: int, adm_in_channels: int, scale: int = 1) -> dict[str, Any]:
    """A tiny SGM UNet; the middle block keeps a transformer (else the WebUI takes it for SSD-1B).

    scale > 1: an SDXL-shaped UNet with `32 * scale` channels at three levels, for checkpoints large enough that a
    load is a real disk load (scale 10: about 1.5 billion parameters, a 3.0 GB float16 file).
    """
    if scale > 1:
        return _big_sgm_unet(context_dim, adm_in_channels, scale)
    params = {
        "adm_in_channels": adm_in_channels,
        "num_classes": "sequential",
        "use_checkpoint": False,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 32,
        "attention_resolutions": [1, 2],
        "num_res_blocks": 1,
        "channel_mult": [1, 2],
        "num_head_channels": 16,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": True,
        "transformer_depth": [1, 1],
        "context_dim": context_dim,
        "spatial_transformer_attn_type": "softmax",
        "legacy": False,
    }
    return {"target": "sgm.modules.diffusionmodules.openaimodel.UNetModel", "params": params}


def _big_sgm_unet(context_dim: int, adm_in_channels: int, scale: int) -> dict[str, Any]:
    config = _sgm_unet(context_dim, adm_in_channels)
    config["params"].update(
        model_channels=32 * scale,
        attention_resolutions=[2, 4],
        num_res_blocks=2,
        channel_mult=[1, 2, 4],
        num_head_channels=64,
        transformer_depth=[0, 2, 6],
    )
    return config


def sdxl_config(clip_dir: Path, refiner: bool = False, scale: int = 1) -> dict[str, Any]:
    """An SDXL base or refiner config (sd_xl_base.yaml / sd_xl_refiner.yaml) with tiny parts."""
    denoiser = "sgm.modules.diffusionmodules"
    size_dims = 2 * SDXL_SIZE_DIM * (2 if refiner else 3) + (SDXL_SIZE_DIM if refiner else 0)
    context_dim = TEXT_WIDTH if refiner else 2 * TEXT_WIDTH
    params = {"scale_factor": 0.13025, "disable_first_stage_autocast": True}
    params["denoiser_config"] = {
        "target": f"{denoiser}.denoiser.DiscreteDenoiser",
        "params": {
            "num_idx": 1000,
            "weighting_config": {"target": f"{denoiser}.denoiser_weighting.EpsWeighting"},
            "scaling_config": {"target": f"{denoiser}.denoiser_scaling.EpsScaling"},
            "discretization_config": {"target": f"{denoiser}.discretizer.LegacyDDPMDiscretization"},
        },
    }
    params["network_config"] = _sgm_unet(context_dim, adm_in_channels=EMBED_DIM + size_dims, scale=scale)
    params["conditioner_config"] = {
        "target": "sgm.modules.GeneralConditioner",
        "params": {"emb_models": _sgm_embedders(clip_dir, refiner)},
    }
    params["first_stage_config"] = _first_stage("sgm.models.autoencoder.AutoencoderKLInferenceWrapper")
    return {"model": {"target": "sgm.models.diffusion.DiffusionEngine", "params": params}}
