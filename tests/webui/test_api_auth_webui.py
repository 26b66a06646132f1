"""`--api-auth` covers every route the extension adds, in a real WebUI 1.10.1 (tiny checkpoints, CPU).

A client without credentials or with wrong ones gets 401 from every `/reimagine/v1/*` route, as from the WebUI's own
`/sdapi/v1/*`; a client with them gets its images.
"""

from __future__ import annotations

import base64
import io

import pytest

from ..api_auth import AUTH_FLAGS, CREDENTIALS, ROUTES, assert_refused_without_credentials
from ..browser import free_port
from ..conftest import noise_image
from .conftest import WebUI, make_data_dir, webui_root


@pytest.fixture(scope="module")
def auth_webui(tmp_path_factory, webui_tiny_models):
    """A WebUI started with --api-auth (its HTTP helpers send the right credentials unless told otherwise)."""
    data_dir = make_data_dir(tmp_path_factory.mktemp("webui-auth"), webui_tiny_models)
    server = WebUI(webui_root(), data_dir, webui_tiny_models, free_port(), data_dir / "webui.log", auth=CREDENTIALS)
    server.flags = AUTH_FLAGS
    server.start()
    try:
        yield server
    finally:
        server.stop()


def png_b64(seed: int) -> str:
    buffer = io.BytesIO()
    noise_image(seed).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_is_401_without_or_with_wrong_credentials(auth_webui, method, path):
    assert_refused_without_credentials(auth_webui.url, method, path, "tiny-unclip-h")


def test_with_the_credentials_a_client_gets_its_images(auth_webui):
    assert auth_webui.get("/reimagine/v1/version").json()["name"] == "sd-webui-reimagine"
    job = {"model": "tiny-unclip-h", "seed": 3, "steps": 3, "width": 64, "height": 64, "sampler": "Euler a"}
    answer = auth_webui.post("/reimagine/v1/variations", json={**job, "images": [{"image": png_b64(0)}]})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["images"]) == 1
