"""The app's Lineage tab: the variation tree of an output folder; a picked node becomes reference 1 of the
Reimagine tab (its file, so its infotext records the lineage of the next job)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..lineage_ui import LineageHost, lineage_panel
from .output import VARIATIONS_FOLDER, job_folder


def served_copy(path: str, out_dir: Path) -> str:
    """`path` itself when gradio may serve it (under the output folder), else a copy in the temp folder."""
    source = Path(path).resolve()
    if source.is_relative_to(out_dir.resolve()):
        return str(source)
    target = Path(tempfile.mkdtemp(prefix="reimagine-lineage-")) / source.name
    shutil.copyfile(source, target)
    return str(target)


def lineage_tab(reference_file: Any, taken: Any, out_dir: Path) -> None:
    """The tab; `reference_file` is reference slot 1, `taken` the state that keeps a taken file's path."""
    import gradio as gr

    from ..errors import ReimagineError

    def to_reference(path: str) -> tuple[str, str]:
        try:
            served = served_copy(path, out_dir)
        except OSError as exc:
            raise ReimagineError(f"{Path(path).name} cannot be read ({exc.strerror or exc})") from None
        return served, served

    folder = job_folder(out_dir, VARIATIONS_FOLDER)
    host = LineageHost("reimagine", lambda: str(folder), True, to_reference, [reference_file, taken])
    with gr.Tab("Lineage", elem_id="lineage_tab"):
        gr.Markdown("Variations of variations in an output folder; click an image to make it reference 1.")
        lineage_panel(host)
