"""The HTTP API in Forge: the same /reimagine/v1/* routes and answers as on A1111 (`webui.api`), on Forge's parts."""

from __future__ import annotations

from ..api import refiner_request_values
from ..api import register as register_routes
from ..api_common import ApiHost
from ..checkpoint_lookup import loaded_checkpoint
from ..refiner import webui_group


def register(app) -> None:
    """Add the routes to Forge's FastAPI app (from on_app_started)."""
    from .reimagine import host_group, run_reimagine

    host = ApiHost(host_group, run_reimagine, loaded_checkpoint, "forge", refiner_request_values, webui_group)
    register_routes(app, host)
