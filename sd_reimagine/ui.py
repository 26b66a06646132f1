"""Gradio controls built from the schema: one builder for the standalone app and the WebUI tab.

Uses only components and arguments that exist in gradio 3.41.2 (the WebUI's) and in current gradio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ReimagineError
from .images import InputImage, open_image
from .mixing import MAX_REFERENCES, REFERENCE_WEIGHT
from .schema import Param, ParamGroup

REFERENCE_SLOTS = MAX_REFERENCES
# Component classes (or factories taking the same keyword arguments) by gradio name, replacing gradio's own: e.g.
# {"Slider": ...}; "Reference" builds a reference input from `label` and `elem_id` (default: `reference_image`).
Components = Mapping[str, Callable[..., Any]]


def param_component(param: Param, elem_prefix: str, value: Any = None, components: Components | None = None):
    """The Gradio component for one parameter (slider, number, dropdown, checkbox or textbox)."""
    value = param.default if value is None else value
    common = {"label": param.label, "elem_id": f"{elem_prefix}_{param.name}"}
    if param.choices is not None:
        dropdown = _component(components, "Dropdown")
        return dropdown(choices=list(param.choices), value=value, info=param.tooltip or None, **common)
    if param.kind is bool:
        return _component(components, "Checkbox")(value=value, info=param.tooltip or None, **common)
    if param.kind in (int, float) and param.name == "seed":
        return _component(components, "Number")(value=value, precision=0, info=param.tooltip or None, **common)
    if param.kind in (int, float):
        return _component(components, "Slider")(
            minimum=param.minimum,
            maximum=param.maximum,
            step=param.step,
            value=value,
            info=param.tooltip or None,
            **common,
        )
    lines = 3 if param.multiline else 1
    return _component(components, "Textbox")(value=value, lines=lines, placeholder=param.tooltip or None, **common)


def _component(components: Components | None, name: str) -> Callable[..., Any]:
    """The class (or factory) to build `name` with: the caller's, else gradio's own."""
    if components and name in components:
        return components[name]
    if name == "Reference":
        return reference_image
    import gradio as gr

    return getattr(gr, name)


@dataclass
class Controls:
    """The components of a panel, in the order the click handler receives their values."""

    images: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def inputs(self) -> list:
        return [*self.images, *self.weights, *self.params.values()]

    def split(self, args: Sequence[Any]) -> tuple[list[tuple[Any, float]], dict[str, Any]]:
        """Handler arguments -> ([(image, weight)] of the filled slots, {param: value})."""
        count = len(self.images)
        images, weights = args[:count], args[count : 2 * count]
        values = dict(zip(self.params, args[2 * count :], strict=True))
        return [(img, w) for img, w in zip(images, weights, strict=True) if img is not None], values


def reference_slots(
    controls: Controls, elem_prefix: str, slots: int = REFERENCE_SLOTS, components: Components | None = None
) -> None:
    """Image + weight slots: the first shown, the rest in an accordion (gradio 3.41 has no input gallery).

    Slots count from 1 in labels and element ids alike: "Reference 1" is `<prefix>_image_1`, "Weight 1"
    `<prefix>_weight_1`.
    """
    import gradio as gr

    def slot(number: int) -> None:
        image = _component(components, "Reference")(
            label=f"Reference {number}", elem_id=f"{elem_prefix}_image_{number}"
        )
        weight = _component(components, "Slider")(
            minimum=REFERENCE_WEIGHT.minimum,
            maximum=REFERENCE_WEIGHT.maximum,
            step=REFERENCE_WEIGHT.step,
            value=1.0,
            label=f"Weight {number}",
            elem_id=f"{elem_prefix}_weight_{number}",
        )
        controls.images.append(image)
        controls.weights.append(weight)

    slot(1)
    with gr.Accordion("More references", open=False, elem_id=f"{elem_prefix}_more_references"):
        for number in range(2, slots + 1):
            slot(number)


def reference_image(label: str, elem_id: str):
    """A reference input that hands the handler a PIL image, kept lossless (the WebUI tab's)."""
    import gradio as gr

    return gr.Image(label=label, type="pil", elem_id=elem_id, **lossless_image_kwargs())


def lossless_image_kwargs() -> dict[str, Any]:
    """Newer gradio sends images as WebP (lossy) unless told otherwise; 3.41 has no such argument."""
    import inspect

    import gradio as gr

    return {"format": "png"} if "format" in inspect.signature(gr.Image.__init__).parameters else {}


def parameter_controls(
    controls: Controls,
    group: ParamGroup,
    elem_prefix: str,
    skip: Sequence[str] = (),
    components: Components | None = None,
) -> None:
    """One component per schema parameter, two per row for the numeric ones."""
    import gradio as gr

    params = [p for p in group if p.name not in skip]
    texts = [p for p in params if p.kind is str and p.choices is None]
    others = [p for p in params if p not in texts]
    for param in texts:
        controls.params[param.name] = param_component(param, elem_prefix, components=components)
    for start in range(0, len(others), 2):
        with gr.Row():
            for param in others[start : start + 2]:
                controls.params[param.name] = param_component(param, elem_prefix, components=components)


def load_references(
    pairs: Sequence[tuple[Any, float]], known: Sequence[InputImage] = (), names: Sequence[str] | None = None
) -> list[tuple[InputImage, float]]:
    """PIL images (or image files) from the UI -> checked references; `names` name them in errors (their slots).

    Gradio may drop PNG text chunks on the way through the browser, so an image whose pixels equal a `known` one
    (a result taken with "Reimagine this") gets that one's infotext back: lineage survives the round trip.
    """
    if not pairs:
        raise ReimagineError("add at least one reference image")
    by_digest = {image.digest: image for image in known if image.infotext}
    references = []
    for index, (image, weight) in enumerate(pairs):
        loaded = open_image(image, name=names[index] if names else f"reference {index + 1}")
        if loaded.infotext is None and loaded.digest in by_digest:
            loaded = by_digest[loaded.digest]
        references.append((loaded, float(weight)))
    return references


def as_gradio_error(exc: Exception):
    """A gr.Error with the message of a user-facing error."""
    import gradio as gr

    return gr.Error(str(exc))
