"""The HTTP API: /reimagine/v1/{version,schema,models,variations} on the WebUI's FastAPI app."""

# No `from __future__ import annotations` here: FastAPI reads the request model from a real annotation.

import base64
from typing import Any

from .. import __version__
from ..errors import ParamError, ReimagineError
from ..images import decode_base64_image, png_bytes
from ..mixing import REFERENCE_WEIGHT

PREFIX = "/reimagine/v1"
KINDS = ("unclip-h", "unclip-l", "unclip", "sdxl-base", "sdxl-refiner", "sd", "unknown")


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
    return {"type": "array", "items": item, "minItems": 1, "title": "Reference images (base64 PNG/JPEG/WebP)"}


def request_schema() -> dict[str, Any]:
    """The Reimagine parameters' JSON schema plus `images`."""
    from .reimagine import host_group

    schema = host_group().json_schema()
    schema["properties"]["images"] = images_json_schema()
    schema["required"] = ["images"]
    return schema


def unprocessable(loc: list[Any], message: str):
    """HTTP 422 shaped like FastAPI's validation errors, naming the field."""
    from fastapi import HTTPException

    return HTTPException(status_code=422, detail=[{"loc": ["body", *loc], "msg": message, "type": "value_error"}])


def error_location(exc: ReimagineError) -> list[Any]:
    """The body field an error is about."""
    if isinstance(exc, ParamError):
        name = exc.name
        if name.startswith("weight of reference "):
            return ["images", int(name.rsplit(" ", 1)[-1]) - 1, "weight"]
        return ["images"] if name == "weights" else [name]
    return ["images"] if "reference" in str(exc) or "image" in str(exc) else []


def request_models():
    """(image item model, request model) for pydantic 1 (the WebUI) and 2."""
    import pydantic

    from .reimagine import host_group

    class ReimagineImage(pydantic.BaseModel):
        image: str = pydantic.Field(..., description="base64 PNG/JPEG/WebP (a data: URL prefix is accepted)")
        weight: float = pydantic.Field(1.0, ge=REFERENCE_WEIGHT.minimum, le=REFERENCE_WEIGHT.maximum)

        class Config:
            extra = "forbid"

    images_field = (list[ReimagineImage], pydantic.Field(..., description="reference images with weights"))
    base = host_group().pydantic_model("ReimagineVariationsBase", extra_fields={"images": images_field})

    class ReimagineVariationsRequest(base):
        class Config:
            extra = "forbid"

    return ReimagineImage, ReimagineVariationsRequest


def decode_references(images: list[Any]) -> list[Any]:
    """[(InputImage, weight)] from the request's images; errors name images[i]."""
    if not images:
        raise unprocessable(["images"], "at least one reference image is needed")
    references = []
    for index, item in enumerate(images):
        try:
            references.append((decode_base64_image(item.image, name=f"images[{index}].image"), float(item.weight)))
        except ReimagineError as exc:
            raise unprocessable(["images", index, "image"], str(exc)) from None
    return references


def run_job(references: list[Any], values: dict[str, Any]):
    """Run one job under the WebUI queue lock with progress visible in /sdapi/v1/progress."""
    from modules import call_queue, progress, shared

    from .reimagine import run_reimagine

    task_id = progress.create_task_id("reimagine")
    progress.add_task_to_queue(task_id)
    with call_queue.queue_lock:
        shared.state.begin(job="reimagine")
        progress.start_task(task_id)
        try:
            return run_reimagine(references, values, save=False, is_api=True)
        finally:
            progress.finish_task(task_id)
            shared.state.end()
            shared.total_tqdm.clear()


def encode_png(image, infotext: str) -> str:
    return base64.b64encode(png_bytes(image, infotext)).decode("ascii")


def register(app) -> None:
    """Add the routes to the WebUI's FastAPI app (from on_app_started)."""
    from .reimagine import host_group
    from .settings import default_model
    from .swap import list_checkpoints_by_kind, loaded_checkpoint

    _, request_model = request_models()

    def version() -> dict[str, Any]:
        return {"name": "sd-webui-reimagine", "version": __version__, "api": "v1"}

    def schema() -> dict[str, Any]:
        return request_schema()

    def models() -> dict[str, Any]:
        kinds = list_checkpoints_by_kind()
        by_kind = {kind: kinds.get(kind, []) for kind in (*KINDS, *sorted(set(kinds) - set(KINDS)))}
        try:
            default = default_model()
        except ReimagineError:
            default = None
        loaded = loaded_checkpoint()
        return {"kinds": by_kind, "default": default, "loaded": loaded.title if loaded is not None else None}

    def variations(body: request_model) -> dict[str, Any]:
        data = body.dict() if hasattr(body, "dict") else body.model_dump()
        images = data.pop("images", None)
        references = decode_references(list(body.images or []) if images is not None else [])
        try:
            values = host_group().validate(data)
            values["model"] = values["model"] or default_model()
            result = run_job(references, values)
        except ReimagineError as exc:
            raise unprocessable(error_location(exc), str(exc)) from None
        return {
            "images": [encode_png(im, info) for im, info in zip(result.images, result.infotexts, strict=True)],
            "seeds": result.seeds,
            "parameters": result.values,
            "info": result.infotexts,
            "interrupted": result.interrupted,
            "timings": result.timings,
        }

    app.add_api_route(f"{PREFIX}/version", version, methods=["GET"])
    app.add_api_route(f"{PREFIX}/schema", schema, methods=["GET"])
    app.add_api_route(f"{PREFIX}/models", models, methods=["GET"])
    app.add_api_route(f"{PREFIX}/variations", variations, methods=["POST"])
