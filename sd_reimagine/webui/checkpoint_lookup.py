"""The WebUI's checkpoints as both hosts list them: exact names, kinds from file headers, roles, loadable files.

A1111 and Forge keep the same `sd_models.checkpoint_aliases` / `checkpoints_list` and `modules.safe`, so this is
shared; how a checkpoint is swapped in is each host's own (`a1111/swap.py`, `forge/swap.py`).
"""

from __future__ import annotations

import os
from typing import Any

from ..checkpoints import ROLES, check_role, inspect_checkpoint, safetensors_problem
from ..errors import ParamError, ReimagineError

_kind_cache: dict[str, tuple[float, str]] = {}


def resolve_checkpoint(name: Any, field: str = "checkpoint"):
    """The WebUI CheckpointInfo for exactly a title, a name with or without extension, or a hash.

    Never the WebUI's closest match: any title containing the text would do ("5" finds "tiny-sd15").
    """
    from modules import sd_models

    if hasattr(name, "filename") and hasattr(name, "title"):
        return name
    text = name.strip() if isinstance(name, str) else None
    info = sd_models.checkpoint_aliases.get(text) if text else None
    if info is None:
        known = ", ".join(sorted(sd_models.checkpoints_list)) or "none (put checkpoints into models/Stable-diffusion)"
        raise ParamError(field, name, f"a checkpoint's exact title, name or hash; available: {known}")
    return info


def find_checkpoint(name: str):
    """resolve_checkpoint, or None when nothing has that name."""
    try:
        return resolve_checkpoint(name)
    except ReimagineError:
        return None


def resolve_for_role(name: Any, field: str, role: str):
    """A checkpoint that exists, can play `role` ('unclip', 'refiner') and that the WebUI's loader will accept."""
    info = resolve_checkpoint(name, field)
    check_role(field, name, checkpoint_kind(info.filename), role)
    check_loadable(info, field)
    return info


def check_loadable(info, field: str) -> None:
    """Refuse a file the WebUI's loader would fail on, before any model is moved: a failed load half-way through
    leaves the user's model on the wrong device or unhooked. Reads headers only (pickles via the WebUI's own
    restricted unpickler, as its loader does)."""
    problem = loader_problem(info.filename)
    if problem:
        raise ParamError(field, info.title, f"a checkpoint the WebUI can load; {problem}")


def loader_problem(filename: str) -> str | None:
    """Why the WebUI's loader would refuse or fail on a checkpoint file, or None."""
    from modules import safe, shared

    if filename.lower().endswith(".safetensors"):
        return safetensors_problem(filename)
    if getattr(shared.cmd_opts, "disable_safe_unpickle", False):
        return None
    try:
        safe.check_pt(filename, safe.global_extra_handler)
    except Exception as exc:  # the WebUI's loader would print "The file may be malicious" and return None
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return (
            f"the WebUI's safe unpickler refuses it ({reason}): convert it to .safetensors (or, only if you trust "
            "the file, start the WebUI with --disable-safe-unpickle)"
        )
    return None


def loaded_checkpoint():
    """CheckpointInfo of the model loaded now, or None (never triggers a load; Forge's placeholder has none)."""
    from modules import sd_models

    model = sd_models.model_data.sd_model
    return getattr(model, "sd_checkpoint_info", None) if model is not None else None


def checkpoint_kind(filename: str) -> str:
    """The kind of a checkpoint file from its header, cached by path and mtime."""
    try:
        mtime = os.path.getmtime(filename)
    except OSError:
        return "unknown"
    cached = _kind_cache.get(filename)
    if cached and cached[0] == mtime:
        return cached[1]
    kind = inspect_checkpoint(filename).kind
    _kind_cache[filename] = (mtime, kind)
    return kind


def list_checkpoints_by_kind() -> dict[str, list[str]]:
    """{kind: [titles]} for every checkpoint the WebUI lists (unclip-h, unclip-l, unclip, sdxl-base, ...)."""
    from modules import sd_models

    kinds: dict[str, list[str]] = {}
    for info in list(sd_models.checkpoints_list.values()):
        kinds.setdefault(checkpoint_kind(info.filename), []).append(info.title)
    return kinds


def titles_for_role(role: str) -> list[str]:
    """Titles of the checkpoints that can play `role` ('unclip', 'refiner'), in the role's order of kinds."""
    kinds = list_checkpoints_by_kind()
    return [title for kind in ROLES[role][0] for title in sorted(kinds.get(kind, []), key=str.casefold)]


def reimagine_titles() -> list[str]:
    """Titles of the checkpoints Reimagine runs: unCLIP (H, L, other), then SDXL bases (Reimagine XL)."""
    return titles_for_role("reimagine")


def unclip_titles() -> list[str]:
    """Titles of the checkpoints detected as unCLIP (H first, then L, then other unCLIP)."""
    return titles_for_role("unclip")
