"""The app's Lineage tab: the variation tree of an output folder; a picked node becomes reference 1 of the
Reimagine tab (its file, so its infotext records the lineage of the next job).

Only the folders the app was started with (`--out` and each `--lineage-dir`, `app_access.allowed_folders`) and the
folders inside them can be scanned, and a picked file is served only when it lies in one of them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ReimagineError
from ..lineage_ui import LineageHost, lineage_panel
from .output import VARIATIONS_FOLDER, job_folder


def served_copy(path: str, out_dir: Path, allowed: Sequence[Path] = ()) -> str:
    """`path` itself when gradio may serve it (under the output folder), else a copy in the temp folder; refused
    when it lies outside every allowed folder (the output folder is always one)."""
    source = Path(path).resolve()
    if source.is_relative_to(out_dir.resolve()):
        return str(source)
    if not any(source.is_relative_to(Path(folder).resolve()) for folder in allowed):
        raise ReimagineError(f"{source.name} is not in a folder this app serves")
    target = Path(tempfile.mkdtemp(prefix="reimagine-lineage-")) / source.name
    shutil.copyfile(source, target)
    return str(target)


def lineage_tab(reference_file: Any, taken: Any, out_dir: Path, allowed: Sequence[Path] | None = None) -> None:
    """The tab; `reference_file` is reference slot 1, `taken` the state that keeps a taken file's path, `allowed`
    the folders a client may scan (default: the output folder)."""
    import gradio as gr

    folders = list(allowed) if allowed else [out_dir]

    def to_reference(path: str) -> tuple[str, str]:
        try:
            served = served_copy(path, out_dir, folders)
        except OSError as exc:
            raise ReimagineError(f"{Path(path).name} cannot be read ({exc.strerror or exc})") from None
        return served, served

    def default_folder() -> str:
        return str(job_folder(out_dir, VARIATIONS_FOLDER))

    host = LineageHost("reimagine", default_folder, True, to_reference, [reference_file, taken], allowed=folders)
    with gr.Tab("Lineage", elem_id="lineage_tab"):
        gr.Markdown("Variations of variations in an output folder; click an image to make it reference 1.")
        lineage_panel(host)
