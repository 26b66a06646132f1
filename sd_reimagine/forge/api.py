"""The HTTP API in Forge: the same /reimagine/v1/* routes and answers as on A1111 (`webui.api`)."""

# No `from __future__ import annotations` here: FastAPI reads the request model from a real annotation.

from typing import Any

from .. import __version__
from ..api_request import RequestError, parse_variations_request, request_json_schema
from ..errors import ReimagineError
from ..webui.api import KINDS, PREFIX, encode_png, error_location, unprocessable


def request_schema() -> dict[str, Any]:
    from .reimagine import host_group

    return request_json_schema(host_group())


def run_job(references: list[Any], values: dict[str, Any]):
    """One job under the WebUI queue lock (as Forge's own txt2img API runs), visible in /sdapi/v1/progress."""
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


def register(app) -> None:
    """Add the routes to Forge's FastAPI app (from on_app_started)."""
    from fastapi import Body

    from ..webui.settings import default_model
    from ..webui.swap import list_checkpoints_by_kind, swap_times_after
    from .reimagine import host_group
    from .swap import loaded_checkpoint

    def version() -> dict[str, Any]:
        return {"name": "sd-webui-reimagine", "version": __version__, "api": "v1", "host": "forge"}

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

    def variations(body: Any = Body(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's way to take the raw JSON
        try:
            references, values = parse_variations_request(body, host_group())
        except RequestError as exc:
            raise unprocessable(exc.loc, str(exc)) from None
        try:
            values["model"] = values["model"] or default_model()
            result = run_job(references, values)
        except ReimagineError as exc:
            raise unprocessable(error_location(exc), str(exc)) from None
        return {
            "images": [encode_png(image.image, image.infotext) for image in result.images],
            "seeds": result.seeds,
            "parameters": result.values,
            "info": result.infotexts,
            "interrupted": result.interrupted,
            "timings": result.timings,
        }

    def swaps(after: int = 0) -> dict[str, Any]:
        return swap_times_after(after)

    app.add_api_route(f"{PREFIX}/version", version, methods=["GET"])
    app.add_api_route(f"{PREFIX}/schema", schema, methods=["GET"])
    app.add_api_route(f"{PREFIX}/models", models, methods=["GET"])
    app.add_api_route(f"{PREFIX}/swaps", swaps, methods=["GET"])
    request_body = {"required": True, "content": {"application/json": {"schema": request_schema()}}}
    app.add_api_route(f"{PREFIX}/variations", variations, methods=["POST"], openapi_extra={"requestBody": request_body})
