"""Tiny random-weight checkpoints that AUTOMATIC1111 WebUI 1.10.1 loads and samples with on CPU (tests only).

Run with the WebUI's Python, with the WebUI's ``repositories/stable-diffusion-stability-ai`` and
``repositories/generative-models`` on ``sys.path``:  ``python -m sd_reimagine.testing.tiny_webui OUT_DIR``.
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

from ..reimagine_xl import CLIP_VISION_G_FILE
from .tiny_clip_vision import write_tiny_clip_vision
from .tiny_webui_configs import (
    CLIP_L_DIR,
    EMBED_DIM,
    OPEN_CLIP_CONFIGS,
    OPEN_CLIP_DIR,
    PRELOAD_TEMPLATE,
    STATS_FILE,
    SUPPORT_EXTENSION,
    TEXT_WIDTH,
    VOCAB_SIZE,
    WEBUI_TEST_OPTIONS,
    sd15_config,
    sdxl_config,
    unclip_h_config,
)


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


def write_checkpoint(path: Path, config: dict[str, Any], seed: int, half: bool = False) -> Path:
    """Instantiate a config with random weights and write it as .safetensors (float16 when `half`) with its .yaml
    beside."""
    import torch
    import yaml
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = _instantiate(config)
    redraw_zero_weights(model)
    randomize_layer_norms(model)
    state_dict = model.state_dict()
    del model
    for key in list(state_dict):
        value = state_dict[key].detach()
        state_dict[key] = (value.half() if half and value.is_floating_point() else value.clone()).contiguous()
    save_file(state_dict, str(path))
    path.with_suffix(".yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


CLIP_VISION_G = "clip_vision"  # folder holding clip_vision_g.safetensors, linked as the data dir's models/clip_vision


def write_webui_tiny_models(out_dir: Path, scale: int = 1) -> dict[str, Path]:
    """Write the four tiny checkpoints and what they need; returns name -> path.

    scale > 1 also writes `big-sdxl-base` and `big-sdxl-refiner`: SDXL-shaped UNets with 32 x scale channels,
    float16 (files of 2 GB and more at scale 10), for load and swap timings (benchmarks; never committed).
    """
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
    if scale > 1:
        for seed, name in enumerate(("big-sdxl-base", "big-sdxl-refiner"), 10):
            config = sdxl_config(clip_dir, refiner=name.endswith("refiner"), scale=scale)
            paths[name] = write_checkpoint(out_dir / f"{name}.safetensors", config, seed, half=True)
    paths[SUPPORT_EXTENSION] = write_support_extension(out_dir / SUPPORT_EXTENSION, config_dir)
    # Reimagine XL's image encoder, sized to the tiny SDXL base's pooled embedding (the WebUI's models/clip_vision).
    paths[CLIP_VISION_G] = write_tiny_clip_vision(out_dir / CLIP_VISION_G / CLIP_VISION_G_FILE, EMBED_DIM)
    options_path = out_dir / "webui-test-options.json"
    options_path.write_text(json.dumps(WEBUI_TEST_OPTIONS, indent=1) + "\n", encoding="utf-8")
    paths["webui-test-options"] = options_path
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m sd_reimagine.testing.tiny_webui OUT_DIR."""
    parser = argparse.ArgumentParser(
        prog="python -m sd_reimagine.testing.tiny_webui", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out_dir", type=Path, help="folder to write the checkpoints into")
    args = parser.parse_args(argv)
    for name, path in write_webui_tiny_models(args.out_dir).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
