"""Model swap in A1111: load a checkpoint for one job through `sd_models.reload_model_weights`, always restore the
user's model (and its VAE bookkeeping); `sd_checkpoints_limit` says whether a swap loads from disk.

Checkpoint names, kinds and roles are shared with Forge (`webui.checkpoint_lookup`), and so are the swap records
(`webui.swap_records`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import ParamError
from ..checkpoint_lookup import check_loadable, find_checkpoint, loaded_checkpoint, resolve_checkpoint
from ..swap_records import load_failure, record_swap

log = logging.getLogger("sd_reimagine")

LIMIT_WARNING = (
    "Settings > Stable Diffusion > 'Maximum number of checkpoints loaded at the same time' is {limit}: every swap to "
    "and from the Reimagine/refiner checkpoint is a full load from disk. Set it to 2 or more to keep both in memory."
)
_warned: set[str] = set()


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
    record_swap(action, info.title, seconds)
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
                    field, info.title, f"a checkpoint the WebUI can load; loading it failed ({load_failure(error)})"
                ) from error
            try:
                yield info
            finally:
                _restore(previous, saved_option)
    finally:
        shared.opts.data["sd_model_checkpoint"] = saved_option
        shared.opts.data["sd_checkpoint_hash"] = saved_hash


def _recover(previous, saved_option) -> None:
    """After a load failed half-way: the user's model back for real, reloaded into a usable model object.

    The WebUI may have moved the user's model to the CPU and undone its hijack (same config), or sent it to the
    meta device (other config) before failing; its own "already loaded" shortcut would then keep the broken model.
    """
    from modules import sd_models, shared

    shared.opts.data["sd_model_checkpoint"] = saved_option
    target = previous if previous is not None else (find_checkpoint(saved_option) if saved_option else None)
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
    record_swap("recover", target.title, time.perf_counter() - started)


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
        restore = find_checkpoint(saved_option)
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
