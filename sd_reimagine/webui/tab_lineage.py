"""The Reimagine tab's Lineage accordion: the variation tree of the output folder; a picked node becomes reference 1
(the image carrying its infotext, as "Reimagine this" hands it over, so the next job records the lineage).

Where the WebUI hides folder paths (`--hide-ui-dir-config`) the folder box is read-only and every scan uses the
Reimagine output folder, whatever a client sends. Uses only gradio and `modules.shared`, as in A1111 and Forge.
"""

from __future__ import annotations

from typing import Any

from ..images import open_image
from ..lineage_ui import LineageHost, lineage_panel
from .settings import outdir


def folders_hidden() -> bool:
    """Whether the WebUI was started with `--hide-ui-dir-config` (no folder paths from the UI)."""
    from modules import shared

    return bool(getattr(shared.cmd_opts, "hide_ui_dir_config", False))


def to_reference(path: str) -> tuple[Any]:
    """The file as reference 1: decoded by the project's loader, its infotext kept in `info`."""
    return (open_image(path, name="picked image").image_with_infotext(),)


def lineage_accordion(reference_slot: Any, prefix: str = "reimagine") -> None:
    """The accordion, closed; nothing is scanned until Refresh."""
    import gradio as gr

    host = LineageHost(prefix, outdir, not folders_hidden(), to_reference, [reference_slot])
    with gr.Accordion("Lineage", open=False, elem_id=f"{prefix}_lineage"):
        lineage_panel(host)
