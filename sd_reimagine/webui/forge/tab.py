"""The Reimagine tab's job runner in Forge (`ForgeProfile.run_in_tab`): the shared tab (`webui.tab`) runs its jobs on
Forge's main worker thread, like Forge's own txt2img and img2img."""

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
