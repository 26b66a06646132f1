"""The HTTP API: /reimagine/v1/{version,schema,models,variations} on the WebUI's FastAPI app."""

# No `from __future__ import annotations` here: FastAPI reads the request model from a real annotation.

import base64
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..api_request import RequestError, parse_variations_request, request_json_schema, split_refiner
from ..errors import ParamError, ReimagineError
from ..images import png_bytes
from ..lineage_tree import own_hash_chunks
from .api_common import PREFIX, ApiHost, run_queued, unprocessable

KINDS = ("unclip-h", "unclip-l", "unclip", "sdxl-base", "sdxl-refiner", "sd", "unknown")


def refiner_request_values(block: dict) -> dict[str, Any]:
    """The post-step values of a request's `refiner` object, typed strictly as the txt2img API's dict form."""
    from .refiner import script_values

    return script_values([block], strict=True)


def request_schema(host: ApiHost) -> dict[str, Any]:
    """The Reimagine parameters' JSON schema plus `images`."""
    return request_json_schema(host.host_group(), host.refiner_group() if host.refiner_group else None)


def error_location(exc: ReimagineError) -> list[Any]:
    """The body field an error is about."""
    if isinstance(exc, ParamError):
        name = exc.name
        if name.startswith("weight of reference "):
            return ["body", "images", int(name.rsplit(" ", 1)[-1]) - 1, "weight"]
        return ["body", "images"] if name in ("weights", "images") else ["body", name]
    return ["body"]


def run_job(references: list[Any], values: dict[str, Any], run_reimagine: Callable[..., Any], **extra: Any):
    """Run one job under the WebUI queue lock with progress visible in /sdapi/v1/progress (`extra`: the refiner)."""
    return run_queued(lambda: run_reimagine(references, values, save=False, is_api=True, **extra), "reimagine")


def parse_refiner(host: ApiHost, block: dict) -> dict[str, Any]:
    """The `refiner` object checked by the host's post-step group; RequestError names the field."""
    if host.refiner_values is None:
        raise RequestError(["refiner"], "refiner is not allowed here: this host runs no post-step after Reimagine")
    try:
        return host.refiner_values(block)
    except ParamError as exc:
        raise RequestError(["refiner", exc.name], f"refiner.{exc}") from None
    except ReimagineError as exc:
        raise RequestError(["refiner"], f"refiner: {exc}") from None


def encode_png(image, infotext: str) -> str:
    """The image as base64 PNG with its infotext and, as every Reimagine output, its own hash chunk."""
    return base64.b64encode(png_bytes(image, infotext, own_hash_chunks(image, infotext))).decode("ascii")


def model_listing(host: ApiHost) -> dict[str, Any]:
    """`GET /models`: checkpoints by kind, the default Reimagine model and the loaded one."""
    from .checkpoint_lookup import list_checkpoints_by_kind
    from .settings import default_model

    kinds = list_checkpoints_by_kind()
    by_kind = {kind: kinds.get(kind, []) for kind in (*KINDS, *sorted(set(kinds) - set(KINDS)))}
    try:
        default = default_model()
    except ReimagineError:
        default = None
    loaded = host.loaded_checkpoint()
    return {"kinds": by_kind, "default": default, "loaded": loaded.title if loaded is not None else None}


def variations_answer(result) -> dict[str, Any]:
    """`POST /variations`' answer: the images as PNGs with their infotext and hash chunk, and the job's facts."""
    return {
        "images": [encode_png(image.image, image.infotext) for image in result.images],
        "seeds": result.seeds,
        "parameters": result.values,
        "info": result.infotexts,
        "interrupted": result.interrupted,
        "timings": result.timings,
    }


def register(app, host: ApiHost) -> None:
    """Add the routes to the WebUI's FastAPI app (from on_app_started); `host`: the host profile's parts.

    Every route carries the host's own `--api-auth` check, and none is added where the host serves no API.
    """
    from fastapi import Body

    from . import batch
    from .api_access import webui_guarded_app
    from .settings import default_model
    from .swap_records import swap_times_after

    app = webui_guarded_app(app)
    if app is None:
        return

    def version() -> dict[str, Any]:
        answer = {"name": "sd-webui-reimagine", "version": __version__, "api": "v1"}
        return {**answer, "host": host.name} if host.name else answer

    def schema() -> dict[str, Any]:
        return request_schema(host)

    def models() -> dict[str, Any]:
        return model_listing(host)

    def variations(body: Any = Body(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's way to take the raw JSON
        try:
            body, refiner_block = split_refiner(body)
            references, values = parse_variations_request(body, host.host_group())
            extra = {"refiner": parse_refiner(host, refiner_block)} if refiner_block is not None else {}
        except RequestError as exc:
            raise unprocessable(exc.loc, str(exc)) from None
        try:
            values["model"] = values["model"] or default_model()
            result = run_job(references, values, host.run_reimagine, **extra)
        except ReimagineError as exc:
            raise unprocessable(error_location(exc), str(exc)) from None
        return variations_answer(result)

    app.add_api_route(f"{PREFIX}/version", version, methods=["GET"])
    app.add_api_route(f"{PREFIX}/schema", schema, methods=["GET"])

    def swaps(after: int = 0) -> dict[str, Any]:
        return swap_times_after(after)

    app.add_api_route(f"{PREFIX}/models", models, methods=["GET"])
    app.add_api_route(f"{PREFIX}/swaps", swaps, methods=["GET"])
    # The body is read strictly by the core parser; the published schema documents it in /docs.
    request_body = {"required": True, "content": {"application/json": {"schema": request_schema(host)}}}
    app.add_api_route(f"{PREFIX}/variations", variations, methods=["POST"], openapi_extra={"requestBody": request_body})
    batch.register_route(app, host)  # POST /reimagine/v1/batch: a folder at a time (webui/batch.py)
