"""The standalone app never opens the server wider than its user did, over HTTP against the real app: the Lineage
tab scans and serves only the folders it was started with (refusals that do not tell whether a path exists),
`serve --auth` signs every endpoint in, and listening beyond this machine without it is logged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sd_reimagine.lineage_tree import CACHE_FILE
from sd_reimagine.testing.lineage_folder import noise_picture, write_node

from .browser import free_port
from .test_app_http import ROOT, wait_for_http

gradio_client = pytest.importorskip("gradio_client")
ORIGINAL = "0123456789"
AUTH = ("alice", "correct horse")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """out (the output folder), extra (a --lineage-dir), private (never given to the app), each with one node."""
    base = tmp_path_factory.mktemp("app-folders")
    out, extra, private = base / "out", base / "extra", base / "private"
    nodes = {
        name: write_node(folder / "reimagine" / f"0000{i}-{i}.png", noise_picture(i), [(ORIGINAL, 1.0, None)], seed=i)
        for i, (name, folder) in enumerate((("out", out), ("extra", extra), ("private", private)))
    }
    os.symlink(private / "reimagine", out / "linked")  # a link inside the output folder to a folder outside it
    return {"out": out, "extra": extra, "private": private, "nodes": nodes}


def start_app(folders, tiny_models, auth=None):
    from sd_reimagine.standalone.app import build_app, launch
    from sd_reimagine.standalone.session import Session

    session = Session(device="cpu", out_dir=folders["out"])
    demo = build_app(session, str(tiny_models["tiny-unclip"]), lineage_dirs=[folders["extra"]])
    port = free_port()
    launch(demo, session, port=port, block=False, auth=auth)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def app(folders, tiny_models):
    demo, url = start_app(folders, tiny_models)
    yield url
    demo.close()


@pytest.fixture
def client(app):
    return gradio_client.Client(app, verbose=False)


def refresh(client, folder) -> tuple:
    return client.predict(str(folder), True, None, api_name="/reimagine_lineage_refresh")


def refusal(client, folder) -> str:
    with pytest.raises(gradio_client.exceptions.AppError) as error:
        refresh(client, folder)
    return str(error.value)


def test_the_folders_the_app_was_given_are_scanned(client, folders):
    for name in ("out", "extra"):
        *_, summary, page = refresh(client, folders[name] / "reimagine")
        assert summary.startswith("1 Reimagine images, 1 original references")
        assert folders["nodes"][name].digest in page


@pytest.mark.parametrize("where", ["private", "private/reimagine", "/etc", "/", "/no/such/folder", "../private"])
def test_a_folder_outside_them_is_refused_alike_whether_it_exists_or_not(client, folders, where):
    path = where if where.startswith(("/", "..")) else folders[where.split("/")[0]] / where.partition("/")[2]
    message = refusal(client, path)
    allowed = f"{folders['out'].resolve()}, {folders['extra'].resolve()}"
    assert message == (
        f"folder={str(path)!r} is not allowed: a folder inside the folders this app was started with: {allowed}"
    )
    assert not (folders["private"] / "reimagine" / CACHE_FILE).exists()  # nothing written there either


def test_a_link_out_of_an_allowed_folder_is_refused_too(client, folders):
    assert "is not allowed: a folder inside the folders" in refusal(client, folders["out"] / "linked")
    assert not (folders["private"] / "reimagine" / ".reimagine-lineage-thumbs").exists()


def test_a_picked_image_is_served_from_an_allowed_folder(client, folders):
    node = folders["nodes"]["extra"]
    reference, picked = client.predict(
        str(folders["extra"] / "reimagine"), True, node.digest, api_name="/reimagine_lineage_pick"
    )
    assert Path(reference).read_bytes() == node.path.read_bytes() and picked.startswith("Reference 1 is now")


def test_picking_in_a_folder_outside_is_refused(client, folders):
    node = folders["nodes"]["private"]
    with pytest.raises(gradio_client.exceptions.AppError, match="is not allowed: a folder inside"):
        client.predict(str(folders["private"] / "reimagine"), True, node.digest, api_name="/reimagine_lineage_pick")


def test_with_auth_every_endpoint_needs_the_sign_in(folders, tiny_models):
    import httpx

    demo, url = start_app(folders, tiny_models, auth=AUTH)
    try:
        assert httpx.get(url + "config", timeout=30).status_code == 401
        assert httpx.post(url + "gradio_api/queue/join", json={}, timeout=30).status_code in (401, 403)
        with pytest.raises(Exception, match="(?i)login|auth|401|credentials"):
            gradio_client.Client(url, verbose=False, auth=("alice", "wrong"))
        signed_in = gradio_client.Client(url, verbose=False, auth=AUTH)
        *_, page = signed_in.predict(
            str(folders["out"] / "reimagine"), True, None, api_name="/reimagine_lineage_refresh"
        )
        assert folders["nodes"]["out"].digest in page
    finally:
        demo.close()


def serve(*args: str, tmp_path: Path) -> subprocess.Popen:
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "sd_reimagine", "serve", "--out", str(tmp_path / "out"), *args]
    return subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def test_serve_beyond_this_machine_without_auth_logs_a_warning(tmp_path):
    port = free_port()
    server = serve("--host", "0.0.0.0", "--port", str(port), tmp_path=tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", server)
    finally:
        server.terminate()
        stderr = server.communicate(timeout=30)[1]
    assert "Reimagine app: listening on 0.0.0.0 without --auth" in stderr, stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--auth", "alice"), "--auth='alice:' is not allowed: USER:PASSWORD, both non-empty"),
        (("--auth", ":secret"), "--auth='?:…' is not allowed: USER:PASSWORD, both non-empty"),
        (
            ("--lineage-dir", "/no/such/folder"),
            "--lineage-dir='/no/such/folder' is not allowed: an existing folder of images",
        ),
    ],
)
def test_serve_refuses_a_bad_auth_or_lineage_dir_in_one_line(tmp_path, args, message):
    server = serve(*args, tmp_path=tmp_path)
    stderr = server.communicate(timeout=120)[1]
    assert server.returncode == 2 and stderr.strip().splitlines() == [f"error: {message}"], stderr
    assert "secret" not in stderr


def test_a_reference_that_names_a_server_file_is_refused(app, folders, client):
    """A client may send a file it uploaded, never a path on the server (gradio checks the path before our loader)."""
    import httpx

    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/reimagine"]["parameters"]
    args = [parameter.get("parameter_default") for parameter in info]
    args[0] = {"path": str(folders["nodes"]["private"].path), "meta": {"_type": "gradio.FileData"}}
    event = httpx.post(app + "gradio_api/call/reimagine", json={"data": args}, timeout=30).json()["event_id"]
    stream = httpx.get(app + f"gradio_api/call/reimagine/{event}", timeout=120).text
    assert "event: error" in stream and "was not uploaded by a user" in stream, stream
    assert "event: complete" not in stream
