"""The host's own API access control on every route the extension adds.

A1111 and Forge guard their `/sdapi/v1/*` routes with `--api-auth` by giving each route a FastAPI dependency (their
`Api.auth`); routes an extension adds to the same app are open unless they carry it too. So the extension copies
the dependencies the host put on its own API routes, and adds no route at all where the host serves no API (started
without `--api`): it never opens the host wider than its user did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

HOST_API_PREFIX = "/sdapi/v1/"
log = logging.getLogger(__name__)


class GuardedApp:
    """Adds routes to the host's FastAPI app with the access check the host's own API routes carry."""

    def __init__(self, app: Any, dependencies: Sequence[Any]):
        self.app = app
        self.dependencies = list(dependencies)

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        extra = list(kwargs.pop("dependencies", None) or [])
        self.app.add_api_route(path, endpoint, dependencies=[*self.dependencies, *extra], **kwargs)


def host_api_dependencies(app: Any) -> list[Any] | None:
    """The dependencies of the host's `/sdapi/v1` routes (its `--api-auth` check); None: the host serves no API."""
    for route in getattr(app, "routes", []):
        if str(getattr(route, "path", "")).startswith(HOST_API_PREFIX):
            return list(getattr(route, "dependencies", None) or [])
    return None


def guarded_app(app: Any, api_auth: str | None) -> GuardedApp | None:
    """Where the extension may add routes: under the host's API access control, or None (no routes at all).

    `api_auth`: the host's `--api-auth` value. If it is set but the host's routes carry no check we could copy (a
    host that guards its API some other way), the extension fails closed and adds no route.
    """
    dependencies = host_api_dependencies(app)
    if dependencies is None:
        log.info("Reimagine: API routes not added: the WebUI serves no API (start it with --api)")
        return None
    if api_auth and not dependencies:
        log.warning("Reimagine: API routes not added: --api-auth is set but the WebUI's API check was not found")
        return None
    return GuardedApp(app, dependencies)


def webui_guarded_app(app: Any) -> GuardedApp | None:
    """`guarded_app` for the running WebUI (A1111 or Forge: both take `--api-auth` on `shared.cmd_opts`)."""
    from modules import shared

    return guarded_app(app, getattr(shared.cmd_opts, "api_auth", None))
