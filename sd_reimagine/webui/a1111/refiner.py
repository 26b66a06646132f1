"""The SDXL Refiner post-step's A1111 parts (used by `a1111.profile.A1111Profile`).

- facts: a swap loads a checkpoint when the user's model, the base and the refiner do not all fit in
  `sd_checkpoints_limit`;
- the refiner residency: `a1111.swap.swapped_model` (the user's model and VAE come back also after an error or an
  interrupt) with the refiner's own VAE loaded into it (`keep_own_vae`: a globally selected VAE is never applied).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from ..checkpoint_lookup import loaded_checkpoint
from ..refiner_job import RefinerJob
from . import swap


def swap_loads(base_model, info) -> bool:
    """A1111's fact: the user's model, the base and the refiner do not all fit in `sd_checkpoints_limit`."""
    from modules import sd_models, shared

    base_info = getattr(base_model, "sd_checkpoint_info", None) if base_model is not None else loaded_checkpoint()
    # the saved setting may be a title, a name or a hash: compare files
    user_info = sd_models.checkpoint_aliases.get(str(shared.opts.sd_model_checkpoint or ""))
    files = [getattr(user_info, "filename", ""), getattr(base_info, "filename", ""), info.filename]
    return swap.swap_would_load(swap.checkpoints_limit(), files)


@contextmanager
def swapped_model_guard(job: RefinerJob):
    """The refiner as shared.sd_model with its own VAE; swap.swapped_model puts the user's model and VAE back."""
    from modules import shared

    with swap.swapped_model(job.info, field="refiner"):
        keep_own_vae(shared.sd_model)
        yield shared.sd_model


def own_vae(checkpoint_file: str) -> str | None:
    """The VAE that belongs to a checkpoint: user metadata or a file named after it, else the one baked in (None)."""
    from modules import sd_vae

    from_metadata = sd_vae.resolve_vae_from_user_metadata(checkpoint_file)
    if from_metadata.resolved:
        return from_metadata.vae
    return sd_vae.find_vae_near_checkpoint(checkpoint_file)


_VAE_CACHE: dict[tuple[str, float], dict[str, Any]] = {}


def keep_own_vae(model) -> None:
    """A globally selected VAE (an SD 1.x one, say) is never applied to the refiner: its own weights are loaded.

    Only the refiner object's VAE weights change; the WebUI's VAE bookkeeping (one global `loaded_vae_file` for all
    loaded models) is left alone, so the user's model keeps the VAE the user chose.
    """
    from modules import devices, sd_vae

    filename = model.sd_checkpoint_info.filename
    wanted = own_vae(filename)
    if sd_vae.resolve_vae(filename).vae == wanted:
        return  # the WebUI's own choice for the refiner is already its own VAE
    print(f"Reimagine post-refiner: refiner uses its own VAE ({wanted or 'built in'}), not the selected one")
    model.first_stage_model.load_state_dict(own_vae_weights(filename, wanted))
    model.first_stage_model.to(devices.dtype_vae)


def own_vae_weights(checkpoint_file: str, vae_file: str | None) -> dict[str, Any]:
    """VAE state dict from a VAE file or the VAE baked into a checkpoint (cached by path and mtime)."""
    import os

    from modules import sd_vae

    source = vae_file or checkpoint_file
    key = (source, os.path.getmtime(source))
    if key not in _VAE_CACHE:
        _VAE_CACHE.clear()
        _VAE_CACHE[key] = sd_vae.load_vae_dict(vae_file, "cpu") if vae_file else baked_vae(checkpoint_file)
    return _VAE_CACHE[key]


def baked_vae(checkpoint_file: str) -> dict[str, Any]:
    """The `first_stage_model.*` tensors of a checkpoint (safetensors: only those are read)."""
    prefix = "first_stage_model."
    if checkpoint_file.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(checkpoint_file, framework="pt", device="cpu") as handle:
            return {k[len(prefix) :]: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}
    from modules import sd_models

    state = sd_models.read_state_dict(checkpoint_file, map_location="cpu")
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
