"""The Reimagine tab in Forge: the shared tab (`webui.tab`: same controls, output panel, paste-back, "Reimagine this")
with Forge's job runner, whose work runs on Forge's main worker thread like its own txt2img and img2img."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...images import InputImage
from ...reimagine_plan import VariationResult


def run_on_main_thread(
    references: Sequence[tuple[InputImage, float]], values: dict[str, Any], *, save: bool = True, **extra: Any
) -> VariationResult:
    """`forge.reimagine.run_reimagine` on `modules_forge.main_thread` (`extra`: the post-step); its error is raised
    here."""
    from modules_forge import main_thread

    from .reimagine import run_reimagine

    def capture():
        try:
            return run_reimagine(references, values, save=save, **extra), None
        except Exception as error:  # handed back to the caller's thread, not printed by the worker
            return None, error

    result, error = main_thread.run_and_wait_result(capture)
    if error is not None:
        raise error
    return result


def build_tab():
    """The Blocks of the tab (for on_ui_tabs)."""
    from ..checkpoint_lookup import reimagine_titles
    from ..tab import build_tab as build_webui_tab
    from .reimagine import host_group

    # unCLIP checkpoints, then SDXL bases (Reimagine XL on Forge's own SDXL engine)
    return build_webui_tab(run=run_on_main_thread, group=host_group(), titles_of=reimagine_titles, post_step=True)
