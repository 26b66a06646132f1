"""The SDXL Refiner post-step accordion in txt2img/img2img and its infotext paste-back."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import ReimagineError
from ..refiner_plan import KEY
from .checkpoint_lookup import resolve_checkpoint, titles_for_role
from .refiner import pasted_values, webui_group

log = logging.getLogger("sd_reimagine")


def build_ui(elem_prefix: str, note: str | None = None) -> tuple[list, list]:
    """The accordion (its checkbox is `enabled`) with one control per parameter: (components in schema order, paste
    fields). note: the host's note about its swaps, shown under the controls (A1111's `sd_checkpoints_limit`)."""
    import gradio as gr
    from modules.ui_components import InputAccordion

    from ..ui import Controls, parameter_controls

    group = webui_group()
    controls = Controls()
    label = "SDXL Refiner post-step (Reimagine)"
    with InputAccordion(False, label=label, elem_id=f"{elem_prefix}_enabled") as enabled:
        controls.params["refiner"] = gr.Dropdown(
            choices=checkpoint_titles(),
            value=group["refiner"].default or None,
            label=group["refiner"].label,
            info="SDXL refiner (or SDXL base) checkpoints, detected from their headers; other kinds are refused.",
            elem_id=f"{elem_prefix}_refiner",
        )
        parameter_controls(controls, group, elem_prefix, skip=("enabled", "refiner"))
        if note:
            gr.Markdown(f"Note: {note}", elem_classes=["reimagine-note"])
    components = [enabled, *(controls.params[name] for name in group.names[1:])]
    return components, paste_fields(dict(zip(group.names, components, strict=True)))


def checkpoint_titles() -> list[str]:
    """The checkpoints the post-step can run: SDXL refiners first, then SDXL bases."""
    return titles_for_role("refiner")


def paste_fields(components: Mapping[str, Any]) -> list:
    """PasteFields for every `Post-refiner ...` key; an infotext without the post-step switches it off."""
    from modules.infotext_utils import PasteField

    fields = [PasteField(components["enabled"], lambda d: KEY in d, api=None)]
    for name, component in components.items():
        if name != "enabled":
            fields.append(PasteField(component, _paste_getter(name), api=None))
    return fields


def _paste_getter(name: str):
    def getter(fields: Mapping[str, str]):
        values = _safe_pasted_values(fields)
        if values is None:
            return None
        if name == "refiner":
            return _title_or_name(values[name])
        return values[name]

    return getter


def _safe_pasted_values(fields: Mapping[str, str]) -> dict[str, Any] | None:
    try:
        return pasted_values(fields)
    except ReimagineError as error:
        log.warning("Reimagine post-refiner: infotext not pasted: %s", error)
        return None


def _title_or_name(name: str) -> str:
    try:
        return resolve_checkpoint(name).title
    except ReimagineError:
        return name
