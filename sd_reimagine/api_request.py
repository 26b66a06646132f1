"""The Reimagine API request, read strictly: one parser and one JSON schema for every host's variations route.

A request is a JSON object with the parameter schema's fields and `images: [{"image": <base64>, "weight": w}]`.
Every value must have the JSON type the published schema gives it (no `true` for 1, no `2.5` for an integer, no
number for a prompt); images are data, never server paths or URLs; at most MAX_REFERENCES of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ParamError, ReimagineError
from .images import InputImage, decode_base64_image
from .mixing import MAX_REFERENCES, REFERENCE_WEIGHT, check_weights
from .schema import ParamGroup

IMAGE_FIELDS = ("image", "weight")
REFINER_FIELD = "refiner"  # optional: the SDXL Refiner post-step run on the variations (hosts that support it)


class RequestError(ReimagineError):
    """A refused request: `loc` is the path of the bad field in the body (FastAPI's `detail[].loc` shape)."""

    def __init__(self, loc: list[Any], message: str):
        self.loc = ["body", *loc]
        super().__init__(message)


def images_json_schema() -> dict[str, Any]:
    """JSON schema of the `images` field: base64 images with weights."""
    weight = {"type": "number", "default": 1.0}
    weight.update(minimum=REFERENCE_WEIGHT.minimum, maximum=REFERENCE_WEIGHT.maximum)
    item = {
        "type": "object",
        "properties": {"image": {"type": "string", "contentEncoding": "base64"}, "weight": weight},
        "required": ["image"],
        "additionalProperties": False,
    }
    title = "Reference images (base64 PNG/JPEG/WebP)"
    return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_REFERENCES, "title": title}


def request_json_schema(group: ParamGroup, refiner_group: ParamGroup | None = None) -> dict[str, Any]:
    """The parameters' JSON schema plus `images` (required) and, where the host runs it, the `refiner` post-step."""
    schema = group.json_schema()
    schema["properties"]["images"] = images_json_schema()
    if refiner_group is not None:
        refiner = refiner_group.json_schema()
        refiner["title"] = "SDXL Refiner post-step after the variations (the txt2img post-step's fields)"
        schema["properties"][REFINER_FIELD] = refiner
    schema["required"] = ["images"]
    return schema


def split_refiner(body: Any) -> tuple[Any, Any]:
    """(the body without `refiner`, the `refiner` object or None): the post-step is parsed by the host's group."""
    if not isinstance(body, Mapping) or REFINER_FIELD not in body:
        return body, None
    rest = {key: value for key, value in body.items() if key != REFINER_FIELD}
    block = body[REFINER_FIELD]
    if not isinstance(block, Mapping):
        raise RequestError([REFINER_FIELD], f"refiner={block!r} is not allowed: an object of post-step fields")
    return rest, dict(block)


def parse_variations_request(body: Any, group: ParamGroup) -> tuple[list[tuple[InputImage, float]], dict[str, Any]]:
    """(references with weights, checked values) of a request body; RequestError names the bad field."""
    if not isinstance(body, Mapping):
        raise RequestError([], f"the request body must be a JSON object, not {type(body).__name__}")
    data = dict(body)
    references = parse_images(data.pop("images", None))
    try:
        values = group.validate(data, strict=True)
    except ParamError as exc:
        raise RequestError([exc.name], str(exc)) from None
    return references, values


def parse_images(images: Any) -> list[tuple[InputImage, float]]:
    """The `images` field: 1 to MAX_REFERENCES objects {image: base64 text, weight: number}."""
    if images is None:
        raise RequestError(["images"], "images is required: a list of {image: base64, weight: number}")
    if not isinstance(images, list) or not 1 <= len(images) <= MAX_REFERENCES:
        shown = f"{len(images)} references" if isinstance(images, list) else images
        message = str(ParamError("images", shown, f"a list of 1 to {MAX_REFERENCES} reference images"))
        raise RequestError(["images"], message)
    references = [parse_image_item(index, item) for index, item in enumerate(images)]
    try:
        check_weights([weight for _, weight in references])
    except ParamError as exc:
        raise RequestError(["images"], str(exc)) from None
    return references


def parse_image_item(index: int, item: Any) -> tuple[InputImage, float]:
    """One reference: base64 image data and an optional weight (default 1)."""
    loc = ["images", index]
    name = f"images[{index}]"
    if not isinstance(item, Mapping):
        raise RequestError(loc, f"{name}={item!r} is not allowed: an object {{image: base64, weight: number}}")
    unknown = sorted(set(item) - set(IMAGE_FIELDS))
    if unknown:
        raise RequestError([*loc, unknown[0]], f"{name}.{unknown[0]} is not allowed: the fields are image and weight")
    image, weight = item.get("image"), item.get("weight", REFERENCE_WEIGHT.default)
    if not isinstance(image, str):
        raise RequestError([*loc, "image"], f"{name}.image={image!r} is not allowed: base64 image data (a string)")
    weight_param = REFERENCE_WEIGHT.renamed(f"{name}.weight")
    try:
        weight_param.check_json_type(weight)
        weight = weight_param.coerce(weight)
    except ParamError as exc:
        raise RequestError([*loc, "weight"], str(exc)) from None
    try:
        return decode_base64_image(image, name=f"{name}.image"), float(weight)
    except ReimagineError as exc:
        raise RequestError([*loc, "image"], str(exc)) from None
