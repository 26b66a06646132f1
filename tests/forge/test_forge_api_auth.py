"""`--api-auth` covers every route the extension adds, in a real Forge: 401 without or with wrong credentials, as
Forge's own `/sdapi/v1/*`; with them a client gets its images (a Reimagine XL job on the SDXL base, 64x64, 2 steps)."""

from __future__ import annotations

import pytest

from ..api_auth import AUTH_FLAGS, CREDENTIALS, ROUTES, assert_refused_without_credentials
from ..browser import free_port
from .conftest import BASE, SKIP_REASON, Forge, build_models, forge_root, make_data_dir, models_dir
from .test_forge_api import reference


@pytest.fixture(scope="module")
def auth_forge(tmp_path_factory):
    """A Forge started with --api-auth (its HTTP helpers send the right credentials unless told otherwise)."""
    root = forge_root()
    if root is None:
        pytest.skip(SKIP_REASON)
    data_dir = make_data_dir(tmp_path_factory.mktemp("forge-auth"), build_models(root, models_dir()))
    server = Forge(root, data_dir, free_port(), data_dir / "forge.log", auth=CREDENTIALS)
    server.flags = AUTH_FLAGS
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_is_401_without_or_with_wrong_credentials(auth_forge, method, path):
    assert_refused_without_credentials(auth_forge.url, method, path, BASE)


def test_with_the_credentials_a_client_gets_its_images(auth_forge):
    assert auth_forge.get("/reimagine/v1/version").json()["host"] == "forge"
    job = {"model": BASE, "prompt": "a cat", "seed": 7, "sampler": "Euler", "width": 64, "height": 64, "steps": 2}
    answer = auth_forge.post("/reimagine/v1/variations", json={**job, "images": [{"image": reference()}]})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["images"]) == 1
