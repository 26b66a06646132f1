"""Where the parts of an original-layout unCLIP checkpoint live, and taking and loading tensors by prefix."""

from __future__ import annotations

import re

import torch

from ..errors import ModelNotAvailableError

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT = "cond_stage_model.model."
IMAGE = "embedder.model.visual."
NORMALIZER = "noise_augmentor."
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# Tensors of an LDM unCLIP file that the diffusers pipeline has no use for: ldm's precomputed diffusion schedules
# (diffusers recomputes them from the scheduler configs), the image embedder's text tower (ldm deletes only its
# `transformer`; the rest is dead weight), CLIP's logit scale and the text projection (SD 2.x conditions on hidden
# states, not on the pooled projection) and EMA copies (the non-EMA weights are used).
UNUSED = re.compile(
    r"^(noise_augmentor\.)?(betas|alphas_cumprod(_prev)?|sqrt_(recip(m1)?_)?alphas_cumprod|sqrt_one_minus_alphas_cumprod"
    r"|log_one_minus_alphas_cumprod|posterior_(variance|log_variance_clipped|mean_coef[12]))$"
    r"|^embedder\.model\.(ln_final\.(weight|bias)|logit_scale|positional_embedding|text_projection"
    r"|token_embedding\.weight|transformer\..*)$"
    r"|^cond_stage_model\.model\.(logit_scale|text_projection)$"
    r"|^model_ema\."
)


def take(state: dict[str, torch.Tensor], used: set[str], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix` (prefix stripped), marked as used."""
    taken = {name[len(prefix) :]: tensor for name, tensor in state.items() if name.startswith(prefix)}
    used.update(prefix + name for name in taken)
    return taken


def count_blocks(tensors: dict[str, torch.Tensor], prefix: str) -> int:
    """How many numbered blocks `prefix<N>.` there are."""
    return 1 + max(int(n[len(prefix) :].split(".")[0]) for n in tensors if n.startswith(prefix))


def load_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    # strict: a missing or surplus tensor means the derived config is wrong, which must not pass silently.
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # size mismatches: torch's message spans many lines
        raise ModelNotAvailableError(f"unCLIP {what}: converted tensors do not fit ({first_line(exc)})") from None
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing or unexpected:
        raise ModelNotAvailableError(
            f"unCLIP {what}: converted tensors do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__
