"""What the real-host `--api-auth` tests share: the credentials, every route the extension adds, the refusal check."""

from __future__ import annotations

import requests

CREDENTIALS = ("reimagine", "s3cret-pass")
AUTH_FLAGS = ["--api-auth", ":".join(CREDENTIALS)]
ROUTES = [
    ("get", "/reimagine/v1/version"),
    ("get", "/reimagine/v1/schema"),
    ("get", "/reimagine/v1/models"),
    ("get", "/reimagine/v1/swaps"),
    ("post", "/reimagine/v1/variations"),
    ("post", "/reimagine/v1/batch"),
]


def call(url: str, method: str, path: str, auth, model: str) -> requests.Response:
    body = {"images": [], "model": model} if method == "post" else None
    return getattr(requests, method)(url + path, json=body, auth=auth, timeout=60)


def assert_refused_without_credentials(url: str, method: str, path: str, model: str) -> None:
    """401 without credentials, with a wrong password and with an unknown user, as the host's own /sdapi/v1."""
    assert call(url, "get", "/sdapi/v1/options", None, model).status_code == 401  # the host's own rule
    assert call(url, method, path, None, model).status_code == 401
    assert call(url, method, path, (CREDENTIALS[0], "wrong"), model).status_code == 401
    assert call(url, method, path, ("someone", CREDENTIALS[1]), model).status_code == 401
