"""Send-to-Reimagine buttons under the txt2img/img2img galleries and in PNG Info (the WebUI's paste-params buttons).

The buttons are made in `on_after_component` beside the WebUI's own send-to buttons; their bindings are registered only
once the Reimagine tab has registered its paste fields (`register_bindings`), so a tab that failed to build cannot break
`connect_paste_params_buttons`. The image keeps its `parameters` text (Image.info): gradio 3.41 writes it back into the
PNG it sends to the browser and reads it again on the next job, so the lineage of a Reimagine image is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TAB = "reimagine"
GALLERY_TABS = ("txt2img", "img2img")
PNGINFO_IMAGE = "pnginfo_image"
PNGINFO_TEXT = "pnginfo_generation_info"
PNGINFO_LAST_BUTTON = "extras_tab"  # the last of PNG Info's "Send to ..." buttons (infotext_utils.create_buttons)
PNGINFO_BUTTON = "pnginfo_send_to_reimagine"
ICON = "\U0001f52e"  # crystal ball
TOOLTIP = "Send image and generation parameters to the Reimagine tab (as reference 1)."


def gallery_id(tabname: str) -> str:
    return f"{tabname}_gallery"


def last_send_button_id(tabname: str) -> str:
    """The WebUI's last send-to button under a gallery (ui_common.create_output_panel): ours goes right after it."""
    return f"{tabname}_send_to_extras"


def button_id(tabname: str) -> str:
    return f"{tabname}_send_to_{TAB}"


@dataclass
class State:
    """Components seen while the UI is built, and the bindings waiting for the Reimagine tab."""

    sources: dict[str, Any] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)


STATE = State()


def reset() -> None:
    """Forget the previous UI (on_before_ui: a UI reload builds every component again)."""
    STATE.sources.clear()
    STATE.pending.clear()


def gallery_button(tabname: str) -> None:
    """A tool button after the gallery's send-to buttons; binding: the selected image + the tab's prompt/steps/seed."""
    from modules.ui_components import ToolButton

    gallery = STATE.sources.pop(gallery_id(tabname), None)
    if gallery is None:
        return
    button = ToolButton(ICON, elem_id=button_id(tabname), tooltip=TOOLTIP)
    STATE.pending.append(dict(paste_button=button, source_image_component=gallery, source_tabname=tabname))


def pnginfo_button() -> None:
    """A "Send to Reimagine" button after PNG Info's others; binding: the image + its parameters pasted."""
    import gradio as gr

    image = STATE.sources.pop(PNGINFO_IMAGE, None)
    text = STATE.sources.pop(PNGINFO_TEXT, None)
    if image is None:
        return
    button = gr.Button("Send to Reimagine", elem_id=PNGINFO_BUTTON)
    STATE.pending.append(dict(paste_button=button, source_image_component=image, source_text_component=text))


def on_after_component(component: Any, **kwargs: Any) -> None:
    """Remember the source components; add our button after the WebUI's last send-to button."""
    elem_id = getattr(component, "elem_id", None) or kwargs.get("elem_id")
    if elem_id in {PNGINFO_IMAGE, PNGINFO_TEXT, *map(gallery_id, GALLERY_TABS)}:
        STATE.sources[elem_id] = component
    elif elem_id == PNGINFO_LAST_BUTTON:
        pnginfo_button()
    else:
        for tabname in GALLERY_TABS:
            if elem_id == last_send_button_id(tabname):
                gallery_button(tabname)


def register_bindings() -> int:
    """Register the waiting buttons with the WebUI's paste-params mechanism (after the tab's add_paste_fields)."""
    from modules import infotext_utils

    if TAB not in infotext_utils.paste_fields:
        return 0
    count = len(STATE.pending)
    for kwargs in STATE.pending:
        infotext_utils.register_paste_params_button(infotext_utils.ParamBinding(tabname=TAB, **kwargs))
    STATE.pending.clear()
    return count
