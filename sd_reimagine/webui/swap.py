"""Model swap through the WebUI's own loader: load a checkpoint for one job, always restore the user's model."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from ..checkpoints import ROLES, check_role, inspect_checkpoint, safetensors_problem
from ..errors import ParamError, ReimagineError

log = logging.getLogger("sd_reimagine")

SWAP_TIMES: list[dict[str, Any]] = []  # {"number", "action": "swap"|"restore"|"recover", "to", "seconds"}
MAX_SWAP_RECORDS = 200
_swap_count = 0  # records ever made: `number` of the newest (clients ask for those after a number they saw)
LIMIT_WARNING = (
    "Settings > Stable Diffusion > 'Maximum number of checkpoints loaded at the same time' is {limit}: every swap to "
    "and from the Reimagine/refiner checkpoint is a full load from disk. Set it to 2 or more to keep both in memory."
)
_warned: set[str] = set()
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
    """CheckpointInfo of the model loaded now, or None (never triggers a load)."""
    from modules import sd_models

    model = sd_models.model_data.sd_model
    return getattr(model, "sd_checkpoint_info", None) if model is not None else None


def checkpoints_limit() -> int:
    """The WebUI's 'Maximum number of checkpoints loaded at the same time' (`sd_checkpoints_limit`, default 1)."""
    from modules import shared

    return int(getattr(shared.opts, "sd_checkpoints_limit", 1) or 1)


def swap_would_load(limit: int, checkpoints: Collection[str]) -> bool:
    """Whether swapping among these checkpoints reloads one: the WebUI keeps at most `limit` models loaded."""
    return limit < len({name for name in checkpoints if name})


def limit_warning() -> str | None:
    """A message (logged once) when sd_checkpoints_limit makes every swap a full reload."""
    limit = checkpoints_limit()
    if limit >= 2:
        return None
    message = LIMIT_WARNING.format(limit=limit)
    if message not in _warned:
        _warned.add(message)
        log.warning("Reimagine: %s", message)
        print(f"Reimagine: {message}")
    return message


def _record(action: str, title: str, seconds: float) -> None:
    global _swap_count
    _swap_count += 1
    SWAP_TIMES.append({"number": _swap_count, "action": action, "to": title, "seconds": round(seconds, 4)})
    del SWAP_TIMES[:-MAX_SWAP_RECORDS]
    print(f"Reimagine: {action} to {title} in {seconds:.3f} s")


def _load(info, action: str) -> float:
    """Make `info` shared.sd_model without writing the user's setting; returns the seconds it took (0: no reload)."""
    from modules import sd_models

    current = loaded_checkpoint()
    if current is not None and current.filename == info.filename:
        return 0.0
    started = time.perf_counter()
    with sd_models.SkipWritingToConfig():
        sd_models.reload_model_weights(info=info)
    seconds = time.perf_counter() - started
    _record(action, info.title, seconds)
    return seconds


@contextmanager
def swapped_model(name_or_info: Any, field: str = "checkpoint") -> Iterator[Any]:
    """Load a checkpoint as shared.sd_model for the block; the user's model (and setting) is back afterwards.

    The WebUI reloads `opts.sd_model_checkpoint` at the start of each batch, so the option is pinned in memory
    (never saved, no callbacks) to the swapped checkpoint for the block and put back in `finally`.
    """
    from modules import sd_models, shared

    info = resolve_checkpoint(name_or_info, field)
    check_loadable(info, field)
    # The WebUI loads the startup checkpoint in a thread; `shared.sd_model` waits for it (under the loader's lock), so
    # a job sent right after start-up never loads a second model while the first is half built.
    shared.sd_model  # noqa: B018
    previous = loaded_checkpoint()
    saved_option = shared.opts.data.get("sd_model_checkpoint")
    saved_hash = shared.opts.data.get("sd_checkpoint_hash")  # a disk load writes it even in SkipWritingToConfig
    limit_warning()
    try:
        with vae_state_kept(sd_models.model_data.sd_model):
            shared.opts.data["sd_model_checkpoint"] = info.title
            try:
                _load(info, "swap")
            except Exception as error:
                _recover(previous, saved_option)
                raise ParamError(
                    field, info.title, f"a checkpoint the WebUI can load; loading it failed ({_reason(error)})"
                ) from error
            try:
                yield info
            finally:
                _restore(previous, saved_option)
    finally:
        shared.opts.data["sd_model_checkpoint"] = saved_option
        shared.opts.data["sd_checkpoint_hash"] = saved_hash


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def _recover(previous, saved_option) -> None:
    """After a load failed half-way: the user's model back for real, reloaded into a usable model object.

    The WebUI may have moved the user's model to the CPU and undone its hijack (same config), or sent it to the
    meta device (other config) before failing; its own "already loaded" shortcut would then keep the broken model.
    """
    from modules import sd_models, shared

    shared.opts.data["sd_model_checkpoint"] = saved_option
    target = previous if previous is not None else (_find(saved_option) if saved_option else None)
    if target is None:
        return
    log.warning("Reimagine: loading a checkpoint failed; reloading %s", target.title)
    started = time.perf_counter()
    with sd_models.SkipWritingToConfig():
        model = sd_models.model_data.sd_model
        if model is None or _on_meta(model):
            sd_models.model_data.sd_model = None
            sd_models.load_model(target)
        else:
            sd_models.reload_model_weights(info=target, forced_reload=True)
    _record("recover", target.title, time.perf_counter() - started)


def _on_meta(model) -> bool:
    """Whether a model's weights were sent to the meta device (the WebUI's 'trash')."""
    parameter = next(iter(model.parameters()), None)
    return parameter is not None and parameter.device.type == "meta"


def _restore(previous, saved_option) -> None:
    """Load the user's model back: the one loaded before the swap, else the one their setting names."""
    from modules import shared

    shared.opts.data["sd_model_checkpoint"] = saved_option
    restore = previous
    if restore is None and saved_option:
        restore = _find(saved_option)
    if restore is not None:
        _load(restore, "restore")


@contextmanager
def vae_state_kept(model) -> Iterator[None]:
    """Put the WebUI's VAE bookkeeping of the user's model back after a swap away and back.

    The WebUI keeps one global VAE backup for all loaded models: swapping away and back with a VAE selected makes it
    back up the selected VAE as the model's own, so the next job with 'Automatic' keeps the selected VAE (the
    WebUI's built-in refiner shows the same leak). Restores the state found, when the user's model is back.
    """
    from modules import sd_vae, shared

    if model is None:
        yield
        return
    saved = (sd_vae.base_vae, sd_vae.loaded_vae_file, sd_vae.checkpoint_info)
    attributes = (getattr(model, "base_vae", None), getattr(model, "loaded_vae_file", None))
    try:
        yield
    finally:
        if shared.sd_model is model:
            sd_vae.base_vae, sd_vae.loaded_vae_file, sd_vae.checkpoint_info = saved
            model.base_vae, model.loaded_vae_file = attributes


def _find(name: str):
    try:
        return resolve_checkpoint(name)
    except ReimagineError:
        return None


def swap_times_after(number: int = 0) -> dict[str, Any]:
    """The swap records numbered above `number` (the newest 200 at most) and the newest number."""
    return {"last": _swap_count, "swaps": [dict(r) for r in SWAP_TIMES if r["number"] > number]}


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
