"""Model swap in Forge: a checkpoint for one pass, the user's checkpoint and additional modules always put back.

Forge's `sd_models.reload_model_weights` does nothing; a checkpoint changes through
`main_entry.checkpoint_change(name, save=False, refresh=False)` (forks add a `preset` argument),
`main_entry.refresh_model_loading_parameters()` and `sd_models.forge_model_reload()`, as its hires fix and refiner
do. Forge keeps one model resident: the user's model is reloaded by Forge itself where it needs it next (the top of
the next batch, or the next job), which is also what its built-in refiner does; the saved setting is never written.
Checkpoint names, kinds and roles (`webui.checkpoint_lookup`) and the swap records (`webui.swap_records`) are the
WebUI family's, shared with A1111.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ...errors import ParamError
from ..checkpoint_lookup import resolve_checkpoint
from ..swap_records import load_failure, record_swap


def checkpoint_change(name: str) -> bool:
    """`main_entry.checkpoint_change` without saving or refreshing, whatever the fork's signature."""
    from modules import shared
    from modules_forge import main_entry

    parameters = inspect.signature(main_entry.checkpoint_change).parameters
    if "preset" in parameters:  # Forge Classic / Neo
        preset = getattr(shared.opts, "forge_preset", None)
        return bool(main_entry.checkpoint_change(name, preset, save=False, refresh=False))
    return bool(main_entry.checkpoint_change(name, save=False, refresh=False))


def modules_change(modules: Sequence[str]) -> bool:
    from modules_forge import main_entry

    return bool(main_entry.modules_change(list(modules), save=False, refresh=False))


@contextmanager
def swapped_checkpoint(name_or_info: Any, field: str = "checkpoint", modules: Sequence[str] = ()) -> Iterator[Any]:
    """`shared.sd_model` is the checkpoint (with `modules`, none by default) for the block; afterwards the user's
    checkpoint and additional modules are the ones Forge loads next. A failed load is a ParamError naming `field`."""
    from modules import sd_models, shared
    from modules_forge import main_entry

    info = resolve_checkpoint(name_or_info, field)
    saved_checkpoint = shared.opts.data.get("sd_model_checkpoint")
    saved_modules = list(shared.opts.data.get("forge_additional_modules", []) or [])
    saved_hash = shared.opts.data.get("sd_checkpoint_hash")
    try:
        checkpoint_change(info.title)
        modules_change(modules)
        main_entry.refresh_model_loading_parameters()
        started = time.perf_counter()
        try:
            _, reloaded = sd_models.forge_model_reload()
        except Exception as error:
            wanted = f"a checkpoint Forge can load; loading it failed ({load_failure(error)})"
            raise ParamError(field, info.title, wanted) from error
        if reloaded:
            record_swap("swap", info.title, time.perf_counter() - started)
        yield shared.sd_model
    finally:
        modules_change(saved_modules)
        checkpoint_change(saved_checkpoint or "")
        main_entry.refresh_model_loading_parameters()
        shared.opts.data["sd_checkpoint_hash"] = saved_hash
