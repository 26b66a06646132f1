"""The HTTP API in A1111: the /reimagine/v1/* routes (`webui.api`) on A1111's job runner."""

from __future__ import annotations

from ..api import refiner_request_values
from ..api import register as register_routes
from ..api_common import ApiHost
from ..checkpoint_lookup import loaded_checkpoint
from ..refiner import webui_group


def register(app) -> None:
    """Add the routes to A1111's FastAPI app (from on_app_started)."""
    from ..reimagine import host_group
    from .reimagine import run_reimagine

    register_routes(app, ApiHost(host_group, run_reimagine, loaded_checkpoint, "", refiner_request_values, webui_group))
