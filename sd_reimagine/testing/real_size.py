"""Real-architecture checkpoints with random weights for testing in Forge (and for benchmarks): SDXL base 1.0, SDXL
refiner 1.0 and Stable unCLIP 2.1-H and -L, in the original single-file layout, float16 `.safetensors`, never committed.

Forge builds text encoders and VAEs from fixed configs of the real models and recognises a UNet only by its real
shapes, so tiny models do not load there. The SDXL parts are laid out on the meta device from the configs that
Forge ships (`<forge>/backend/huggingface/stabilityai/stable-diffusion-xl-{base,refiner}-1.0/*/config.json`, read at
build time) and renamed to the original layout by the converters of Forge's own `huggingface_guess` (the inverse of
what its loader does); the unCLIP files come from `real_size_unclip`. Tensors are drawn one at a time and streamed
into the file, so building needs memory for one tensor, not for the model.

Sizes and times (2-core CPU): SDXL base 6.94 GB, SDXL refiner 6.08 GB, unCLIP-H 3.88 GB, unCLIP-L; see docs/.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from .safetensors_stream import write_streamed_safetensors

SDXL_BASE_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_REFINER_REPO = "stabilityai/stable-diffusion-xl-refiner-1.0"
FILES = {
    "sdxl-base": "real-sdxl-base.safetensors",
    "sdxl-refiner": "real-sdxl-refiner.safetensors",
    "unclip-h": "real-unclip-h.safetensors",
    "unclip-l": "real-unclip-l.safetensors",
}
Spec = tuple[torch.Size, torch.dtype]


def huggingface_guess(forge: Path):
    """Forge's pinned `huggingface_guess` package (its repositories/ folder), imported for its converters."""
    folder = forge / "repositories" / "huggingface_guess"
    if not (folder / "huggingface_guess" / "__init__.py").is_file():
        raise FileNotFoundError(f"{folder} has no huggingface_guess checkout (Forge clones it into repositories/)")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    import huggingface_guess.detection
    import huggingface_guess.diffusers_convert
    import huggingface_guess.model_list
    import huggingface_guess.utils

    return huggingface_guess


def _config(forge: Path, repo: str, part: str) -> dict:
    path = forge / "backend" / "huggingface" / repo / part / "config.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _meta_state(build: Callable[[], torch.nn.Module]) -> dict[str, torch.Tensor]:
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=True):
        return build().state_dict()


def unet_layout(forge: Path, repo: str, guess) -> dict[str, torch.Tensor]:
    """`model.diffusion_model.*` (meta tensors) of the repo's UNet, named as the original checkpoint names them."""
    from diffusers import UNet2DConditionModel

    state = _meta_state(lambda: UNet2DConditionModel.from_config(_config(forge, repo, "unet")))
    unet_config = guess.detection.unet_config_from_diffusers_unet(state)
    if unet_config is None:
        raise ValueError(f"huggingface_guess does not recognise the UNet of {repo}")
    to_ldm = guess.utils.unet_to_diffusers(unet_config)  # {diffusers name: original name}
    missing = sorted(set(state) - set(to_ldm))
    if missing:
        raise ValueError(f"{repo}: no original name for UNet tensors {missing[:3]}")
    return {"model.diffusion_model." + to_ldm[name]: tensor for name, tensor in state.items()}


def vae_layout(forge: Path, repo: str, guess) -> dict[str, torch.Tensor]:
    """`first_stage_model.*` (meta tensors) of the repo's VAE."""
    from diffusers import AutoencoderKL

    state = _meta_state(lambda: AutoencoderKL.from_config(_config(forge, repo, "vae")))
    return {"first_stage_model." + k: v for k, v in guess.diffusers_convert.convert_vae_state_dict(state).items()}


def text_layout(forge: Path, repo: str, guess) -> dict[str, torch.Tensor]:
    """The text encoders (meta tensors) as the original SDXL checkpoint names them (`conditioner.embedders.*`)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def encoder(part: str):
        config = CLIPTextConfig(**_config(forge, repo, part))
        with_projection = "CLIPTextModelWithProjection" in (config.architectures or [])
        return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)

    def named(prefix: str, part: str) -> dict[str, torch.Tensor]:
        # transformers 5 dropped the `text_model.` level that the original checkpoints (and Forge) name
        state = _meta_state(lambda: encoder(part))
        return {
            prefix + (k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
            for k, v in state.items()
        }

    if repo == SDXL_REFINER_REPO:
        state = named("clip_g.transformer.", "text_encoder")
        return guess.model_list.SDXLRefiner.process_clip_state_dict_for_saving(None, state)
    state = named("clip_l.transformer.", "text_encoder") | named("clip_g.transformer.", "text_encoder_2")
    return guess.model_list.SDXL.process_clip_state_dict_for_saving(None, state)


def sdxl_layout(forge: Path, repo: str) -> dict[str, Spec]:
    """Every tensor name of the original single-file SDXL checkpoint with its shape and stored dtype."""
    guess = huggingface_guess(forge)
    tensors = unet_layout(forge, repo, guess) | vae_layout(forge, repo, guess) | text_layout(forge, repo, guess)
    return {
        name: (t.shape, torch.int64 if name.endswith("position_ids") else torch.float16) for name, t in tensors.items()
    }


_ONES = re.compile(r"(norm[^.]*|ln_\w+|layer_norm\d?)\.weight$")


def random_tensor(name: str, spec: Spec, generator: torch.Generator) -> torch.Tensor:
    """Small random values (norm scales 1, position ids counted): a model that runs finite and follows its input."""
    shape, dtype = spec
    if dtype == torch.int64:
        return torch.arange(shape[-1], dtype=torch.int64).expand(shape).contiguous()
    if _ONES.search(name):
        return torch.ones(shape, dtype=dtype)
    return (torch.randn(shape, generator=generator) * 0.02).to(dtype)


def write_sdxl(forge: Path, repo: str, path: Path, seed: int = 0) -> Path:
    """SDXL base or refiner (by `repo`) as an original-layout float16 checkpoint with random weights."""
    generator = torch.Generator().manual_seed(seed)
    metadata = {"reimagine": f"random weights, architecture of {repo}"}
    return write_streamed_safetensors(
        path, sdxl_layout(forge, repo), lambda n, s: random_tensor(n, s, generator), metadata
    )


def make_real_size_models(forge: Path, out: Path, kinds: Iterable[str] = tuple(FILES)) -> dict[str, dict]:
    """Write the chosen kinds into `out` (existing files are kept); returns {kind: {path, bytes, seconds}}."""
    from .real_size_unclip import write_real_size_unclip_h, write_real_size_unclip_l

    writers = {
        "sdxl-base": lambda p: write_sdxl(forge, SDXL_BASE_REPO, p),
        "sdxl-refiner": lambda p: write_sdxl(forge, SDXL_REFINER_REPO, p),
        "unclip-h": write_real_size_unclip_h,
        "unclip-l": write_real_size_unclip_l,
    }
    report = {}
    for kind in kinds:
        path = out / FILES[kind]
        started = time.perf_counter()
        if not path.exists():
            writers[kind](path)
        report[kind] = {
            "path": str(path),
            "bytes": path.stat().st_size,
            "seconds": round(time.perf_counter() - started, 1),
        }
    return report
