"""Reimagine XL: variations with any SDXL base checkpoint, conditioned on the OpenCLIP ViT-bigG/14 image embedding.

SDXL has no image conditioning of its own, but its class/ADM vector starts with the pooled, projected OpenCLIP
ViT-bigG/14 text embedding (1280 values), which lives in the same CLIP space as the bigG image embedding. "Revision"
(ComfyUI's unCLIPConditioning on SDXL: `comfy/model_base.py` `sdxl_pooled` and `unclip_adm`, with the SDXL noise
augmentor `CLIPEmbeddingNoiseAugmentation(timestep_dim=1280, squaredcos_cap_v2, 1000 steps)` and no CLIP statistics;
sd-webui-controlnet's `revision_clipvision`) puts the image embedding there. The formula, per image of a job:

    e_i    = bigG image embedding of reference i (visual projection of the pooled vision output, 1280 values)
    a      = alphas_cumprod[noise_level] of the squaredcos_cap_v2 schedule (1000 steps)
    z_i    = sqrt(a) * e_i + sqrt(1 - a) * eps_i        eps_i drawn from the image's seeded generator (mixing.py)
    image  = sum_i w_i * z_i                            weights normalised as for unCLIP (mixing.py)
    pooled = (1 - m) * image + m * pooled_text(prompt)  m = image/text mix
    vector = [pooled, the size/crop embeddings SDXL computes as usual]

Unlike unCLIP there is no noise-level embedding (SDXL has no slot for it: ComfyUI keeps `[:, :1280]`). The
cross-attention context is the prompt's as usual; an empty prompt gives a zero context instead (Revision's
"ignore prompt", ComfyUI's ConditioningZeroOut), so "image only" is the mix at 0 with no prompt. The negative
(unconditional) side is SDXL's own text conditioning of the negative prompt. Mix 1 is plain SDXL txt2img.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch

from .checkpoints import SDXL_BASE
from .errors import ParamError
from .reimagine_plan import ReimaginePlan, conditioning_for_seed

UNCLIP_ENGINE, XL_ENGINE = "unclip", "xl"
BIGG_ID = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"
CLIP_VISION_G_FILE = "clip_vision_g.safetensors"
POOLED_DIM = 1280  # SDXL's pooled text embedding, the first part of its class/ADM vector
NOISE_STEPS = 1000
# OpenAI CLIP's pixel statistics, which the LAION bigG tower was trained with too.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def engine_for_kind(kind: str) -> str:
    """Which Reimagine engine runs a model of this checkpoint kind: XL for an SDXL base, else unCLIP (whose own
    checks refuse what is neither: `checkpoints.ROLES["reimagine"]`)."""
    return XL_ENGINE if kind == SDXL_BASE else UNCLIP_ENGINE


@lru_cache(maxsize=1)
def alphas_cumprod() -> torch.Tensor:
    """The squaredcos_cap_v2 (cosine) schedule's cumulative alphas, 1000 steps, in float64."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / NOISE_STEPS) / alpha_bar(i / NOISE_STEPS), 0.999) for i in range(NOISE_STEPS)]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float64), dim=0)


def level_alpha(noise_level: int) -> float:
    """alphas_cumprod at a checked noise level (the signal share of q_sample), for every embedding augmentation."""
    if not 0 <= int(noise_level) < NOISE_STEPS:
        raise ParamError("noise_level", noise_level, f"an integer from 0 to {NOISE_STEPS - 1}")
    return float(alphas_cumprod()[int(noise_level)])


def pooled_augment(noise_level: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """augment(embeds, noise) for `conditioning_for_seed`: q_sample at `noise_level`, no level embedding."""
    alpha = level_alpha(noise_level)

    def augment(embeds: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return math.sqrt(alpha) * embeds + math.sqrt(1.0 - alpha) * noise.to(embeds)

    return augment


def image_pooled_for_seed(embeds: torch.Tensor, plan: ReimaginePlan, generator: torch.Generator) -> torch.Tensor:
    """The image part (1, D) of one image's pooled embedding: its references noised and weighted, times 1 - mix."""
    return conditioning_for_seed(embeds, plan, generator, pooled_augment(plan.values["noise_level"]), embeds.dtype)


def mix_pooled(image_part: torch.Tensor, text_pooled: torch.Tensor, mix: float) -> torch.Tensor:
    """The pooled embedding (1, D): the image part plus mix times the prompt's pooled text embedding."""
    return image_part.to(text_pooled) + mix * text_pooled.reshape(1, -1)


def pooled_for_seed(
    embeds: torch.Tensor, plan: ReimaginePlan, generator: torch.Generator, text_pooled: torch.Tensor
) -> torch.Tensor:
    """The pooled part (1, D) of one image's SDXL vector: noised, weighted image embeddings mixed with the text's."""
    check_embedding_size(embeds.shape[-1], text_pooled.shape[-1])
    image = image_pooled_for_seed(embeds, plan, generator)
    return mix_pooled(image, text_pooled, plan.values["image_text_mix"])


def context_for_prompt(context: torch.Tensor, prompt: str) -> torch.Tensor:
    """The prompt's cross-attention context, or zeros for an empty prompt (image only)."""
    return context if prompt.strip() else torch.zeros_like(context)


def check_embedding_size(image_dim: int, pooled_dim: int) -> None:
    """The image encoder must give embeddings of the size of the model's pooled text embedding."""
    if image_dim != pooled_dim:
        raise ParamError(
            "image_encoder",
            f"a tower with {image_dim}-value embeddings",
            f"an image encoder whose projection matches this SDXL model's pooled text embedding ({pooled_dim} values;"
            f" {POOLED_DIM} for real SDXL: OpenCLIP ViT-bigG/14)",
        )


def clip_pixels(image, size: int = 224) -> torch.Tensor:
    """(1, 3, size, size) CLIP input: shortest side resized to `size` (bicubic), centre crop, CLIP normalisation."""
    from PIL import Image

    rgb = image.convert("RGB")
    scale = size / min(rgb.size)
    resized = rgb.resize((max(size, round(rgb.width * scale)), max(size, round(rgb.height * scale))), Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    cropped = resized.crop((left, top, left + size, top + size))
    pixels = torch.frombuffer(bytearray(cropped.tobytes()), dtype=torch.uint8).reshape(size, size, 3)
    pixels = pixels.permute(2, 0, 1).float().div(255.0)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    return ((pixels - mean) / std).unsqueeze(0)
