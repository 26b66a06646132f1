"""The standalone host's low-VRAM options, as diffusers users know them: CPU offload (`--offload model`: diffusers'
`enable_model_cpu_offload`, each model moves to the GPU while it runs; `--offload sequential`:
`enable_sequential_cpu_offload`, layer by layer, least VRAM and slowest) and VAE tiling (`--vae-tiling`: large
images decoded and encoded in overlapping tiles). Host options from the schema's LOW_VRAM group: they change where
weights live and how the VAE walks the image, never the job's values or infotext.

Offload moves weights between CPU memory and an accelerator, so on a CPU device there is nothing to move: the
option is then a no-op and `offload_note` says so (the CLI prints it; the pipeline runs as without it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..schema import LOW_VRAM

NO_OFFLOAD = "none"
CPU_NOTE = (
    "offload={mode} has no effect on device {device}: CPU offload keeps weights in CPU memory and moves each model "
    "to an accelerator (CUDA, XPU, MPS) while it runs; on {device} every model already is in CPU memory"
)


@dataclass(frozen=True)
class MemoryOptions:
    """Checked low-VRAM options of a session: offload mode (none, model, sequential) and VAE tiling."""

    offload: str = NO_OFFLOAD
    vae_tiling: bool = False

    @classmethod
    def from_values(cls, values: dict[str, Any] | None = None) -> MemoryOptions:
        """From schema values (CLI flags, app server options); ParamError names a bad one."""
        checked = LOW_VRAM.validate(values or {})
        return cls(checked["offload"], checked["vae_tiling"])


def offloads_on(device: str | torch.device, options: MemoryOptions) -> bool:
    """Whether offload applies: asked for, on an accelerator device."""
    return options.offload != NO_OFFLOAD and torch.device(device).type != "cpu"


def offload_note(device: str | torch.device, options: MemoryOptions) -> str:
    """What the user should know about the options on this device ("" when they apply as asked)."""
    if options.offload != NO_OFFLOAD and not offloads_on(device, options):
        return CPU_NOTE.format(mode=options.offload, device=torch.device(device).type)
    return ""


def place_pipeline(pipe, device: str | torch.device, options: MemoryOptions) -> None:
    """Put a loaded diffusers pipeline on `device` with the options (offload hooks or a plain move; VAE tiling)."""
    if offloads_on(device, options):
        if options.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    set_vae_tiling(getattr(pipe, "vae", None), options.vae_tiling)


def set_vae_tiling(vae, on: bool) -> None:
    """Tiled VAE decode and encode on or off (diffusers' AutoencoderKL.enable_tiling / disable_tiling)."""
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling() if on else vae.disable_tiling()


def place_module(module: torch.nn.Module, device: str | torch.device, options: MemoryOptions) -> torch.nn.Module:
    """A module run outside a pipeline (the Reimagine XL vision tower): on `device`, or, with offload, kept in CPU
    memory and moved to `device` only for its own forward call (accelerate's CPU offload hook, released after)."""
    if not offloads_on(device, options):
        return module.to(device)
    from accelerate import cpu_offload_with_hook

    module, hook = cpu_offload_with_hook(module.to("cpu"), execution_device=device)
    module.register_forward_hook(lambda *_: hook.offload())  # back to CPU memory once the embedding is made
    return module


def execution_device(module: torch.nn.Module) -> torch.device:
    """Where a module computes: its offload hook's execution device, else where its weights are."""
    for part in (module, *module.modules()):
        hook = getattr(part, "_hf_hook", None)
        device = getattr(hook, "execution_device", None)
        if device is not None:
            return torch.device(device)
    return next(module.parameters()).device


def release_after_job(pipe) -> None:
    """With model offload, move every model back to CPU memory after a job that called them directly (diffusers
    does this at the end of each pipeline call)."""
    if getattr(pipe, "_all_hooks", None) and hasattr(pipe, "maybe_free_model_hooks"):
        pipe.maybe_free_model_hooks()
