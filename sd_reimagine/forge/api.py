"""The HTTP API in Forge: the same /reimagine/v1/* routes and answers as on A1111 (`webui.api`), on Forge's parts."""

from __future__ import annotations

from ..webui.api import ApiHost
from ..webui.api import register as register_routes


def register(app) -> None:
    """Add the routes to Forge's FastAPI app (from on_app_started)."""
    from ..webui.api import refiner_request_values
    from ..webui.refiner import webui_group
    from .reimagine import host_group, run_reimagine
    from .swap import loaded_checkpoint

    host = ApiHost(host_group, run_reimagine, loaded_checkpoint, "forge", refiner_request_values, webui_group)
    register_routes(app, host)
