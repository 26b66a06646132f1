"""Tiny random-weight checkpoints that AUTOMATIC1111 WebUI 1.10.1 loads and samples with on CPU (tests only).

Run with the WebUI's Python, with the WebUI's ``repositories/stable-diffusion-stability-ai`` and
``repositories/generative-models`` on ``sys.path``:  ``python -m sd_reimagine.webui_tiny OUT_DIR``.
Every checkpoint gets a same-named ``.yaml`` beside it (the WebUI reads it instead of guessing the config).
The tiny open_clip architectures exist only in open_clip's registry: link ``OUT_DIR/reimagine-tiny-support``
into the WebUI's ``extensions`` folder so that its ``preload.py`` registers them in the WebUI process.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import sys
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


def _sgm_unet(context_dim: int, adm_in_channels: int) -> dict[str, Any]:
    """A tiny SGM UNet; the middle block keeps a transformer (else the WebUI takes it for SSD-1B)."""
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


def sdxl_config(clip_dir: Path, refiner: bool = False) -> dict[str, Any]:
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
    params["network_config"] = _sgm_unet(context_dim, adm_in_channels=EMBED_DIM + size_dims)
    params["conditioner_config"] = {
        "target": "sgm.modules.GeneralConditioner",
        "params": {"emb_models": _sgm_embedders(clip_dir, refiner)},
    }
    params["first_stage_config"] = _first_stage("sgm.models.autoencoder.AutoencoderKLInferenceWrapper")
    return {"model": {"target": "sgm.models.diffusion.DiffusionEngine", "params": params}}


def _clip_bpe() -> tuple[dict[str, int], list[str]]:
    """The CLIP BPE vocabulary and merges, derived from the file open_clip ships."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    tokens = list(bytes_to_unicode().values())
    tokens += [token + "</w>" for token in tokens]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def write_clip_tokenizer(folder: Path) -> None:
    """Write the files CLIPTokenizer.from_pretrained reads (the openai/clip-vit-large-patch14 tokenizer)."""
    vocab, merges = _clip_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=1), encoding="utf-8")
    config = special | {"model_max_length": 77, "do_lower_case": True, "errors": "replace"}
    config["tokenizer_class"] = "CLIPTokenizer"
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")


def write_clip_text_model(folder: Path, seed: int = 0) -> Path:
    """Write a tiny 12-layer CLIP text model (SDXL reads hidden layer 11) plus its tokenizer."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=TEXT_WIDTH,
        intermediate_size=2 * TEXT_WIDTH,
        projection_dim=TEXT_WIDTH,
        num_hidden_layers=12,
        num_attention_heads=4,
        max_position_embeddings=77,
    )
    torch.manual_seed(seed)
    CLIPTextModel(config).save_pretrained(folder)
    write_clip_tokenizer(folder)
    return folder


def write_open_clip_configs(folder: Path) -> Path:
    """Write one open_clip model-config JSON per tiny architecture (the file stem is its name)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, config in OPEN_CLIP_CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def register_open_clip_configs(folder: Path) -> None:
    """Make the tiny architectures known to open_clip in this process (once)."""
    import open_clip

    if not set(OPEN_CLIP_CONFIGS) <= set(open_clip.list_models()):
        open_clip.add_model_config(folder)


def write_support_extension(folder: Path, config_dir: Path) -> Path:
    """Write the test-only WebUI extension whose preload.py registers the tiny open_clip architectures."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preload.py").write_text(PRELOAD_TEMPLATE.format(config_dir=str(config_dir)), encoding="utf-8")
    return folder


def write_clip_stats(path: Path, seed: int = 0) -> Path:
    """Write (mean, std) of the image embedding for CLIPEmbeddingNoiseAugmentation, in the legacy .pt format."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    mean = 0.1 * torch.randn(EMBED_DIM, generator=generator)
    std = 1.0 + 0.1 * torch.rand(EMBED_DIM, generator=generator)
    # The WebUI's safe unpickler rejects the zip format of current torch (its ".format_version" entry).
    torch.save((mean, std), path, _use_new_zipfile_serialization=False)
    return path


def _instantiate(config: dict[str, Any]) -> Any:
    """Build the model with ldm's or sgm's instantiate_from_config, whichever owns its target."""
    from omegaconf import OmegaConf

    model_config = OmegaConf.create(config).model
    with contextlib.redirect_stdout(io.StringIO()):  # ldm/sgm print at import and while building
        if model_config.target.startswith("sgm."):
            from sgm.util import instantiate_from_config
        else:
            from ldm.util import instantiate_from_config
        return instantiate_from_config(model_config)


def redraw_zero_weights(model: Any) -> int:
    """Redraw zero-initialised weight matrices (zero_module), else outputs ignore their inputs; returns how many."""
    import torch

    redrawn = 0
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2 and not parameter.any():
                torch.nn.init.kaiming_uniform_(parameter, a=math.sqrt(5))
                redrawn += 1
    return redrawn


def randomize_layer_norms(model: Any) -> None:
    """Move LayerNorm scales and shifts off 1 and 0: the WebUI's emphasis divides by the mean of the text features."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm) and module.elementwise_affine:
                module.weight.normal_(1.0, 0.1)
                module.bias.normal_(0.1, 0.1)


def write_checkpoint(path: Path, config: dict[str, Any], seed: int) -> Path:
    """Instantiate a config with random weights and write it as .safetensors with its .yaml beside."""
    import torch
    import yaml
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = _instantiate(config)
    redraw_zero_weights(model)
    randomize_layer_norms(model)
    state_dict = {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    save_file(state_dict, str(path))
    path.with_suffix(".yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def write_webui_tiny_models(out_dir: Path) -> dict[str, Path]:
    """Write the four tiny checkpoints and what they need; returns name -> path."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    config_dir = write_open_clip_configs(out_dir / OPEN_CLIP_DIR)
    register_open_clip_configs(config_dir)
    clip_dir = write_clip_text_model(out_dir / CLIP_L_DIR)
    configs = {
        "tiny-sd15": sd15_config(clip_dir),
        "tiny-unclip-h": unclip_h_config(write_clip_stats(out_dir / STATS_FILE)),
        "tiny-sdxl-base": sdxl_config(clip_dir),
        "tiny-sdxl-refiner": sdxl_config(clip_dir, refiner=True),
    }
    paths = {
        name: write_checkpoint(out_dir / f"{name}.safetensors", config, seed)
        for seed, (name, config) in enumerate(configs.items())
    }
    paths[SUPPORT_EXTENSION] = write_support_extension(out_dir / SUPPORT_EXTENSION, config_dir)
    options_path = out_dir / "webui-test-options.json"
    options_path.write_text(json.dumps(WEBUI_TEST_OPTIONS, indent=1) + "\n", encoding="utf-8")
    paths["webui-test-options"] = options_path
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m sd_reimagine.webui_tiny OUT_DIR."""
    parser = argparse.ArgumentParser(prog="python -m sd_reimagine.webui_tiny", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the checkpoints into")
    args = parser.parse_args(argv)
    for name, path in write_webui_tiny_models(args.out_dir).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
