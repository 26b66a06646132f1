"""Where the parts of an original-layout unCLIP checkpoint live, and taking and loading tensors by prefix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


class TensorFile:
    """An original-layout checkpoint read part by part: every name and shape up front (as meta tensors), the
    tensors of one component when it is built. `.safetensors` is read through memory-mapped views, `.ckpt`
    through torch's weights-only unpickler with `mmap=True` where the file allows it, so a component's source
    tensors are in memory only while that component is converted."""

    def __init__(self, path: Path):
        self.path = path
        self._state: dict[str, torch.Tensor] | None = None  # .ckpt: mmap-backed tensors, dropped as they are taken
        try:
            self.meta = self._read_safetensors_meta() if path.suffix == ".safetensors" else self._read_ckpt()
        except ModelNotAvailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error, reported in one line
            raise ModelNotAvailableError(
                f"checkpoint {str(path)!r} could not be read as tensors: {first_line(exc)}"
            ) from None
        if not self.meta:
            raise ModelNotAvailableError(f"checkpoint {str(path)!r} holds no state dict of tensors")

    def _read_safetensors_meta(self) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt", device="cpu") as handle:
            return {name: _meta(handle.get_slice(name)) for name in handle.keys()}

    def _read_ckpt(self) -> dict[str, torch.Tensor]:
        try:
            state: Any = torch.load(str(self.path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(str(self.path), map_location="cpu", weights_only=True)  # legacy (non-zip) format
        while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ModelNotAvailableError(f"checkpoint {str(self.path)!r} holds no state dict of tensors")
        self._state = state
        return {name: torch.empty(t.shape, dtype=t.dtype, device="meta") for name, t in state.items()}

    def take(self, prefix: str, used: set[str], strip: bool = True) -> dict[str, torch.Tensor]:
        """The tensors under `prefix` (prefix stripped unless told otherwise), marked as used."""
        names = [name for name in self.meta if name.startswith(prefix)]
        used.update(names)
        if self._state is not None:
            tensors = {name: self._state.pop(name) for name in names if name in self._state}
        else:
            from safetensors import safe_open

            with safe_open(str(self.path), framework="pt", device="cpu") as handle:
                tensors = {name: handle.get_tensor(name) for name in names}
        return {name[len(prefix) :]: t for name, t in tensors.items()} if strip else tensors


def _meta(tensor_slice) -> torch.Tensor:
    dtype = {"F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}.get(tensor_slice.get_dtype())
    return torch.empty(tensor_slice.get_shape(), dtype=dtype or torch.float32, device="meta")


def empty_weights():
    """Modules built with their parameters on the meta device: the loaded tensors become the parameters
    (`load_into(..., assign)`), so no randomly initialised copy is ever allocated."""
    try:
        from accelerate import init_empty_weights
    except ImportError:  # without accelerate: built normally, one extra copy per component
        from contextlib import nullcontext

        return nullcontext()
    return init_empty_weights()


def count_blocks(tensors: dict[str, torch.Tensor], prefix: str) -> int:
    """How many numbered blocks `prefix<N>.` there are."""
    return 1 + max(int(n[len(prefix) :].split(".")[0]) for n in tensors if n.startswith(prefix))


def load_into(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str, dtype: torch.dtype | None = None
) -> None:
    """The converted tensors become the model's parameters, in `dtype`, each source tensor released as it is
    converted (`tensors` is emptied)."""
    converted = {}
    for name in list(tensors):
        tensor = tensors.pop(name)
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        converted[name] = tensor
    # strict: a missing or surplus tensor means the derived config is wrong, which must not pass silently.
    try:
        missing, unexpected = model.load_state_dict(converted, strict=False, assign=True)
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
