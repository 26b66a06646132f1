"""The extension's routes carry the host's own API access check (a real FastAPI app shaped as the WebUI builds it).

The host part here is the WebUI's pattern itself (`Api.add_api_route` adds `Depends(self.auth)` when `--api-auth` is
set); the real A1111 and Forge are tested in tests/webui/test_api_auth_webui.py and tests/forge/test_forge_api_auth.py.
"""

from __future__ import annotations

import logging
from secrets import compare_digest

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.testclient import TestClient

from sd_reimagine.webui.api_access import guarded_app, host_api_dependencies

CREDENTIALS = {"user": "pass"}


def host_auth(credentials: HTTPBasicCredentials = Depends(HTTPBasic())):  # noqa: B008 - FastAPI's idiom
    if compare_digest(credentials.password, CREDENTIALS.get(credentials.username, "\0")):
        return True
    raise HTTPException(status_code=401, detail="Incorrect username or password", headers={"WWW-Authenticate": "Basic"})


def host_app(api: bool = True, auth: bool = True) -> FastAPI:
    """A FastAPI app with a host API route added the way the WebUI adds its /sdapi/v1 routes."""
    app = FastAPI()
    if api:
        app.add_api_route("/sdapi/v1/options", lambda: {"ok": True}, dependencies=[Depends(host_auth)] if auth else [])
    return app


def add_extension_routes(app: FastAPI, api_auth: str | None) -> bool:
    guarded = guarded_app(app, api_auth)
    if guarded is None:
        return False
    guarded.add_api_route("/reimagine/v1/version", lambda: {"name": "sd-webui-reimagine"}, methods=["GET"])
    guarded.add_api_route("/reimagine/v1/variations", lambda: {"images": []}, methods=["POST"])
    return True


@pytest.mark.parametrize(("method", "path"), [("get", "/reimagine/v1/version"), ("post", "/reimagine/v1/variations")])
def test_routes_answer_401_without_or_with_wrong_credentials_and_200_with_them(method, path):
    app = host_app()
    assert add_extension_routes(app, "user:pass")
    client = TestClient(app)
    assert getattr(client, method)(path).status_code == 401
    assert getattr(client, method)(path, auth=("user", "wrong")).status_code == 401
    assert getattr(client, method)(path, auth=("other", "pass")).status_code == 401
    assert getattr(client, method)(path, auth=("user", "pass")).status_code == 200


def test_routes_are_open_exactly_as_the_host_api_is_without_api_auth():
    app = host_app(auth=False)
    assert add_extension_routes(app, None)
    assert TestClient(app).get("/reimagine/v1/version").status_code == 200


def test_no_route_is_added_where_the_host_serves_no_api(caplog):
    app = host_app(api=False)
    with caplog.at_level(logging.INFO):
        assert not add_extension_routes(app, None)
    assert TestClient(app).get("/reimagine/v1/version").status_code == 404
    assert "--api" in caplog.text


def test_api_auth_without_a_check_to_copy_fails_closed(caplog):
    app = host_app(auth=False)
    assert not add_extension_routes(app, "user:pass")
    assert TestClient(app).get("/reimagine/v1/version").status_code == 404
    assert "--api-auth" in caplog.text


def test_the_host_check_is_copied_from_its_api_routes_not_from_others():
    app = FastAPI()
    app.add_api_route("/internal/ping", lambda: {}, dependencies=[])
    assert host_api_dependencies(app) is None
    app.add_api_route("/sdapi/v1/options", lambda: {}, dependencies=[Depends(host_auth)])
    dependencies = host_api_dependencies(app)
    assert [d.dependency for d in dependencies] == [host_auth]
