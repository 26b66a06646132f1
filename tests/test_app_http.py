"""The standalone app over HTTP (gradio_client against a launched app): uploads through the project's loader, errors
naming their field, Stop, dropped and cancelled clients, and `serve --out` anywhere."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sd_reimagine.images import open_image
from sd_reimagine.mixing import MAX_REFERENCES
from sd_reimagine.schema import REFINER, REIMAGINE, SDXL

from .browser import free_port
from .conftest import noise_image

gradio_client = pytest.importorskip("gradio_client")
ROOT = Path(__file__).resolve().parents[1]
LONG_JOB = {"n": 8, "steps": 150}  # two batches of 4, about 30 s on the tiny model: far longer than a stop takes
FAST_SECONDS = 10.0


@pytest.fixture(scope="module")
def app(tiny_models, tmp_path_factory):
    """(url, out_dir) of the app as `serve` launches it, on the tiny models."""
    from sd_reimagine.standalone.app import build_app, launch
    from sd_reimagine.standalone.session import Session

    out_dir = tmp_path_factory.mktemp("app-http-out")
    session = Session(device="cpu", out_dir=out_dir)
    demo = build_app(session, str(tiny_models["tiny-unclip"]), str(tiny_models["tiny-sdxl-base"]))
    port = free_port()
    launch(demo, session, port=port, block=False)
    yield f"http://127.0.0.1:{port}/", out_dir
    demo.close()


@pytest.fixture
def client(app):
    """A fresh client (its own browser session) per test."""
    return gradio_client.Client(app[0], verbose=False)


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "reference.png"
    noise_image(0).save(path)
    return path


def reimagine_args(model, files, weights=(), **values) -> list:
    """The /reimagine endpoint's positional arguments: reference files, weights, then the schema's values."""
    files = [gradio_client.handle_file(str(f)) if f else None for f in files]
    files += [None] * (MAX_REFERENCES - len(files))
    weights = [*weights, *[1.0] * (MAX_REFERENCES - len(weights))]
    merged = {**REIMAGINE.defaults(), "model": str(model), "width": 64, "height": 64, "steps": 2, "seed": 3, **values}
    return [*files, *weights, *(merged[name] for name in REIMAGINE.names)]


def reimagine(client, model, files, weights=(), **values):
    return client.predict(*reimagine_args(model, files, weights, **values), api_name="/reimagine")


def submit_reimagine(client, model, files, **values):
    return client.submit(*reimagine_args(model, files, **values), api_name="/reimagine")


def error_of(call) -> str:
    with pytest.raises(gradio_client.exceptions.AppError) as error:
        call()
    return str(error.value)


def reference_hashes(infotext: str) -> list[str]:
    field = re.search(r"Reimagine references: ([^,\n]+(?:, [0-9a-f]{10}@[^,\n]+)*)", infotext).group(1)
    return [item.split("@")[0] for item in field.split(", ")]


# --- 1. uploads go through the project's loader -----------------------------------------------------------------


def zero_bytes(path: Path) -> Path:
    path = path.with_suffix(".png")
    path.write_bytes(b"")
    return path


def truncated_png(path: Path) -> Path:
    path = path.with_suffix(".png")
    noise_image(1, (256, 256)).save(path)
    path.write_bytes(path.read_bytes()[:3000])
    return path


def corrupt_png(path: Path) -> Path:
    path = path.with_suffix(".png")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    return path


def text_file(path: Path) -> Path:
    path = path.with_suffix(".txt")
    path.write_text("not an image")
    return path


def png_144_mp(path: Path) -> Path:
    path = path.with_suffix(".png")
    Image.new("1", (12_000, 12_000)).save(path)  # 17 KB on disk
    return path


def png_81_mp(path: Path) -> Path:
    path = path.with_suffix(".png")
    Image.new("1", (9_000, 9_000)).save(path)  # above MAX_PIXELS, below Pillow's own bomb limit
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (zero_bytes, "reference 2 is not an image; allowed: PNG, JPEG, WebP"),
        (truncated_png, "reference 2 is corrupt or truncated"),
        (corrupt_png, "reference 2 is "),
        (text_file, "reference 2 is not an image; allowed: PNG, JPEG, WebP"),
        (png_144_mp, "reference 2 is too large to decode safely"),
        (png_81_mp, "reference 2 is 9000x9000 pixels; at most 67 MP are allowed"),
    ],
)
def test_a_bad_reference_file_gets_the_loaders_message_without_server_paths(
    client, tiny_models, tmp_path, image, make, problem
):
    from gradio.utils import get_upload_folder

    bad = make(tmp_path / "bad")
    message = error_of(lambda: reimagine(client, tiny_models["tiny-unclip"], [image, bad]))
    assert message.startswith(problem), message
    assert str(get_upload_folder()) not in message and str(tmp_path) not in message and "/tmp" not in message


@pytest.mark.parametrize("mode", ["RGBA", "I;16"])
def test_references_are_converted_as_the_cli_converts_them(client, tiny_models, tmp_path, mode):
    path = tmp_path / f"{mode.replace(';', '')}.png"
    if mode == "RGBA":
        noise_image(5, mode="RGBA").save(path)  # random alpha: composited on white by our loader
    else:
        pixels = (np.random.RandomState(5).rand(64, 64) * 65535).astype("uint16")
        Image.fromarray(pixels).save(path)  # 16-bit grey: scaled to 8 bits by our loader
    assert Image.open(path).mode == mode
    _, infotext = reimagine(client, tiny_models["tiny-unclip"], [path])
    assert reference_hashes(infotext) == [open_image(path).short_hash]  # the same pixels as the CLI and the WebUI


# --- 2. refused values name their field -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "weights", "message"),
    [
        ({"noise_level": -1}, (), "noise_level=-1 is not allowed: an integer from 0 to 999"),
        ({"steps": 151}, (), "steps=151 is not allowed: an integer from 1 to 150"),
        ({"image_text_mix": 1.5}, (), "image_text_mix=1.5 is not allowed: a number from 0 to 1"),
        ({"seed": -2}, (), "seed=-2 is not allowed: an integer from -1 to 4294967295"),
        ({"sampler": "Bogus"}, (), "sampler='Bogus' is not allowed: one of 'Default', "),
        ({"width": 100}, (), "width=100 is not allowed: an integer from 64 to 2048, a multiple of 8"),
        ({}, (-1,), "weight of reference 1=-1 is not allowed: a number from 0 to 10"),
    ],
)
def test_a_refused_value_names_its_field(client, tiny_models, image, values, weights, message):
    assert error_of(lambda: reimagine(client, tiny_models["tiny-unclip"], [image], weights, **values)).startswith(
        message
    )


def test_a_refused_sdxl_value_names_its_field(client):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/sdxl"]["parameters"]
    labels = {p.label: p.name for group in (SDXL, REFINER) for p in group}
    values = {labels[p["label"]]: p["parameter_default"] for p in info}
    values.update(enabled=True, switch_at=1.5)
    message = error_of(lambda: client.predict(*values.values(), api_name="/sdxl"))
    assert message == "switch_at=1.5 is not allowed: a number from 0.01 to 0.99"


# --- 3. Stop, dropped clients and cancelled events --------------------------------------------------------------


def wait_until_sampling(job, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not job.status().progress_data:
        assert time.monotonic() < deadline, "the job never started sampling"
        time.sleep(0.05)


def saved_seeds(out_dir: Path) -> set[int]:
    return {int(p.stem.split("-")[1]) for p in (out_dir / "reimagine").glob("*.png")}


def test_stop_ends_the_job_at_the_next_step_and_keeps_what_it_made(app, client, tiny_models, image):
    job = submit_reimagine(client, tiny_models["tiny-unclip"], [image], seed=1000, **LONG_JOB)
    wait_until_sampling(job)
    started = time.monotonic()
    client.predict(api_name="/stop")
    gallery, infotext = job.result(timeout=60)
    assert time.monotonic() - started < FAST_SECONDS
    assert len(gallery) == 4 and "Seed: 1000" in infotext  # the first batch, shown
    assert {1000, 1001, 1002, 1003} <= saved_seeds(app[1]) and 1004 not in saved_seeds(app[1])  # and saved


DROPPED_CLIENT = """
import sys, time
from gradio_client import Client, handle_file
client = Client(sys.argv[1], verbose=False)
args = eval(sys.argv[2])
args[0] = handle_file(sys.argv[3])
job = client.submit(*args, api_name="/reimagine")
while not job.status().progress_data:
    time.sleep(0.05)
print("sampling", flush=True)
time.sleep(600)
"""


def drop_a_client_mid_job(url: str, args: list, image: Path) -> None:
    """A client in another process starts `args` and is killed while the job samples (its connection drops)."""
    child = subprocess.Popen(
        [sys.executable, "-c", DROPPED_CLIENT, url, repr(args), str(image)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "sampling"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


@pytest.mark.parametrize("how", ["client dropped", "event cancelled"])
def test_a_gone_client_stops_its_job_and_the_next_job_starts_at_once(app, client, tiny_models, image, how):
    url, out_dir = app
    model = tiny_models["tiny-unclip"]
    seed = 2000 if how == "client dropped" else 3000
    if how == "client dropped":
        args = reimagine_args(model, [None], seed=seed, **LONG_JOB)  # the child uploads reference 1 itself
        drop_a_client_mid_job(url, args, image)
    else:
        job = submit_reimagine(client, model, [image], seed=seed, **LONG_JOB)
        wait_until_sampling(job)
        job.cancel()
    started = time.monotonic()
    _, infotext = reimagine(gradio_client.Client(url, verbose=False), model, [image], seed=7)
    assert time.monotonic() - started < FAST_SECONDS and "Seed: 7" in infotext  # the model lock was free
    first_job = {s for s in saved_seeds(out_dir) if seed <= s < seed + LONG_JOB["n"]}
    assert first_job == {seed, seed + 1, seed + 2, seed + 3}  # stopped in its first batch, what it made saved


# --- 4. serve --out anywhere ------------------------------------------------------------------------------------


def wait_for_http(url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer")


def test_serve_out_outside_the_working_and_temp_folders(tiny_models, tmp_path, image):
    cwd, temp, out = tmp_path / "cwd", tmp_path / "temp", tmp_path / "elsewhere" / "outputs"
    cwd.mkdir()
    temp.mkdir()
    port = free_port()
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TMPDIR": str(temp)}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    command = ["serve", "--port", port, "--model", tiny_models["tiny-unclip"], "--out", out]
    server = subprocess.Popen(
        [sys.executable, "-m", "sd_reimagine", *map(str, command)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url, server)
        gallery, infotext = reimagine(gradio_client.Client(url, verbose=False), tiny_models["tiny-unclip"], [image])
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(gallery) == 1 and "Seed: 3" in infotext
    assert [p.name for p in (out / "reimagine").iterdir()] == ["00000-3.png"]


# --- 5. slots, default sizes and a stoppable refine -------------------------------------------------------------


def test_slot_ids_count_from_1_like_their_labels(app):
    import httpx

    props = [c.get("props", {}) for c in httpx.get(app[0] + "config", timeout=30).json()["components"]]
    labels = {p["elem_id"]: p.get("label") for p in props if p.get("elem_id")}
    for number in range(1, MAX_REFERENCES + 1):
        assert labels[f"reimagine_image_{number}"] == f"Reference {number}"
        assert labels[f"reimagine_image_{number}_preview"] == f"Reference {number} as loaded"
        assert labels[f"reimagine_weight_{number}"] == f"Weight {number}"
    assert not [elem_id for elem_id in labels if elem_id.endswith(("_image_0", "_weight_0", "_image_0_preview"))]


def endpoint_defaults(client, endpoint: str, groups) -> dict:
    """{schema name: default} of an endpoint's parameters, matched by label (a label names one field per group)."""
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"][endpoint]["parameters"]
    labels = {p.label: p.name for group in groups for p in group}
    return {labels[p["label"]]: p["parameter_default"] for p in info if p["label"] in labels}


def test_width_and_height_default_to_the_models_own_size(client):
    """The tiny models are 64x64 (unet sample_size 8 x VAE factor 8): the app offers that, not the schema's 768."""
    reimagine = endpoint_defaults(client, "/reimagine", [REIMAGINE])
    sdxl = endpoint_defaults(client, "/sdxl", [SDXL])
    assert (reimagine["width"], reimagine["height"]) == (64, 64)
    assert (sdxl["width"], sdxl["height"]) == (64, 64)
    assert REIMAGINE["width"].default == 768 and SDXL["width"].default == 1024  # the schema itself is unchanged


def test_stop_ends_a_refine_at_its_next_step_and_keeps_its_image(app, client, tiny_models, image):
    reimagine(client, tiny_models["tiny-unclip"], [image], seed=4000)  # the session's gallery: one variation
    values = endpoint_defaults(client, "/refine", [REFINER])
    values.update(refiner=str(tiny_models["tiny-sdxl-refiner"]), refine_strength=1.0, refiner_steps=150)
    job = client.submit(*values.values(), api_name="/refine")  # about 60 s unstopped on 2 CPU cores
    wait_until_sampling(job)
    started = time.monotonic()
    client.predict(api_name="/stop")
    gallery, infotext = job.result(timeout=60)
    assert time.monotonic() - started < FAST_SECONDS
    assert len(gallery) == 2 and "Post-refiner steps: 150" in infotext  # the variation, then the refined image
    assert len(list((app[1] / "refined").glob("*.png"))) == 1  # and saved
    _, infotext = reimagine(client, tiny_models["tiny-unclip"], [image], seed=8)
    assert "Seed: 8" in infotext  # the model lock was freed


def test_the_app_runs_reimagine_xl_on_an_sdxl_base(client, tiny_models, image):
    encoder = str(tiny_models["tiny-clip-vision-g"])
    _, infotext = reimagine(client, tiny_models["tiny-sdxl-base"], [image], image_encoder=encoder, noise_level=100)
    assert "Model: tiny-sdxl-base" in infotext and "Reimagine image encoder: tiny-clip-vision-g" in infotext
    assert reference_hashes(infotext) == [open_image(image).short_hash]
