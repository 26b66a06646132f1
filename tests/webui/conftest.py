"""A real AUTOMATIC1111 WebUI with this extension and tiny checkpoints, started once per session (REIMAGINE_WEBUI_DIR).

REIMAGINE_WEBUI_DIR: the WebUI root (with repositories/ and a venv); REIMAGINE_WEBUI_PYTHON: its Python
(default <root>/venv/bin/python). Unset: every test here is skipped. The WebUI runs offline on CPU from a throw-away
--data-dir: tiny models built by this project's code, this project linked in as an extension.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..browser import free_port

PROJECT = Path(__file__).resolve().parents[2]
ENV_DIR = "REIMAGINE_WEBUI_DIR"
ENV_PYTHON = "REIMAGINE_WEBUI_PYTHON"
SKIP_REASON = f"set {ENV_DIR} to a WebUI 1.10.1 root (and optionally {ENV_PYTHON}) to run the real-WebUI tests"
START_TIMEOUT = float(os.environ.get("REIMAGINE_WEBUI_START_TIMEOUT", "240"))
OFFLINE_FLAGS = [
    "--skip-prepare-environment",
    "--skip-install",
    "--skip-torch-cuda-test",
    "--use-cpu",
    "all",
    "--no-half",
    "--precision",
    "full",
    "--no-download-sd-model",
    "--do-not-download-clip",
    "--api",
    "--api-server-stop",
]
TEST_OPTIONS = {"sd_model_checkpoint": "tiny-sd15.safetensors", "show_progress_type": "Approx cheap"}
TEST_OPTIONS_EXTRA = {"sd_checkpoints_limit": 2, "samples_save": False, "save_images_before_highres_fix": False}


def webui_root() -> Path | None:
    value = os.environ.get(ENV_DIR, "").strip()
    return Path(value).resolve() if value else None


def webui_python(root: Path) -> Path:
    return Path(os.environ.get(ENV_PYTHON) or root / "venv" / "bin" / "python")


def webui_env(root: Path) -> dict[str, str]:
    """Environment for the WebUI's Python: offline, this project and the WebUI's model repositories importable."""
    repos = [root / "repositories" / "stable-diffusion-stability-ai", root / "repositories" / "generative-models"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT), *map(str, repos)])
    return env


@pytest.fixture(autouse=True)
def _needs_webui():
    if webui_root() is None:
        pytest.skip(SKIP_REASON)


def build_tiny_models(root: Path, out_dir: Path) -> dict[str, Path]:
    """The project's tiny WebUI checkpoints, built with the WebUI's Python (`make-tiny-models --webui`)."""
    command = [str(webui_python(root)), "-m", "sd_reimagine", "make-tiny-models", "--webui", str(out_dir)]
    result = subprocess.run(command, cwd=PROJECT, env=webui_env(root), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"make-tiny-models failed:\n{result.stdout}\n{result.stderr}"
    return {p.stem: p for p in out_dir.iterdir()}


def make_data_dir(data_dir: Path, tiny_dir: Path, options: dict[str, Any] | None = None) -> Path:
    """A throw-away --data-dir: tiny checkpoints linked in, test options, this project and the tiny support linked."""
    models = data_dir / "models" / "Stable-diffusion"
    models.mkdir(parents=True, exist_ok=True)
    for path in sorted(tiny_dir.glob("tiny-*")):
        if path.suffix in (".safetensors", ".yaml"):
            (models / path.name).symlink_to(path)
    if (tiny_dir / "clip_vision").is_dir():  # Reimagine XL's tiny image encoder, where the WebUI keeps CLIP vision
        (data_dir / "models" / "clip_vision").symlink_to(tiny_dir / "clip_vision", target_is_directory=True)
    extensions = data_dir / "extensions"
    extensions.mkdir(exist_ok=True)
    (extensions / "sd-webui-reimagine").symlink_to(PROJECT, target_is_directory=True)
    (extensions / "reimagine-tiny-support").symlink_to(tiny_dir / "reimagine-tiny-support", target_is_directory=True)
    test_options = json.loads((tiny_dir / "webui-test-options.json").read_text(encoding="utf-8"))
    config = {**test_options, **TEST_OPTIONS, **TEST_OPTIONS_EXTRA, **(options or {})}
    (data_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return data_dir


@dataclass
class WebUI:
    """A running WebUI: its URL, HTTP helpers, its log, and where its files are."""

    root: Path
    data_dir: Path
    tiny_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    startup_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # command-line flags beyond OFFLINE_FLAGS
    auth: tuple[str, str] | None = None  # the --api-auth credentials its HTTP helpers send

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models" / "Stable-diffusion"

    @property
    def python(self) -> Path:
        return webui_python(self.root)

    def get(self, path: str, **kwargs):
        import requests

        kwargs.setdefault("timeout", 300)
        kwargs.setdefault("auth", self.auth)
        return requests.get(self.url + path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs):
        import requests

        kwargs.setdefault("timeout", 300)
        kwargs.setdefault("auth", self.auth)
        return requests.post(self.url + path, json=json, **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def options(self) -> dict[str, Any]:
        response = self.get("/sdapi/v1/options")
        response.raise_for_status()
        return response.json()

    def loaded_checkpoint(self) -> str:
        """The title of shared.sd_model's checkpoint, from the progress endpoint's state-free view (options)."""
        return self.options()["sd_model_checkpoint"]

    def start(self) -> None:
        command = [str(self.python), "launch.py", *OFFLINE_FLAGS, "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port), *self.flags]
        started = time.perf_counter()
        log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            command, cwd=self.root, env=webui_env(self.root), stdout=log, stderr=subprocess.STDOUT
        )
        self.extra["log_handle"] = log
        while time.perf_counter() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"WebUI exited with {self.process.returncode}:\n{self.log_text()[-6000:]}")
            if "Model loaded in" in self.log_text() and self._answers():
                self.startup_seconds = time.perf_counter() - started
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"WebUI did not load its model in {START_TIMEOUT:.0f} s:\n{self.log_text()[-6000:]}")

    def _answers(self) -> bool:
        try:
            return self.get("/reimagine/v1/version", timeout=5).status_code in (200, 401)  # 401: behind --api-auth
        except Exception:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.post("/sdapi/v1/server-stop", timeout=10)
            except Exception:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
        handle = self.extra.pop("log_handle", None)
        if handle is not None:
            handle.close()


@pytest.fixture(scope="session")
def webui_tiny_models(tmp_path_factory) -> Path:
    """The folder of tiny WebUI checkpoints (built once per session with the WebUI's Python)."""
    root = webui_root()
    if root is None:
        pytest.skip(SKIP_REASON)
    out_dir = tmp_path_factory.mktemp("webui-tiny-models")
    build_tiny_models(root, out_dir)
    return out_dir


@pytest.fixture(scope="session")
def webui(tmp_path_factory, webui_tiny_models) -> WebUI:
    """A WebUI started on the tiny models with this extension installed; stopped at the end of the session."""
    root = webui_root()
    data_dir = make_data_dir(tmp_path_factory.mktemp("webui-data"), webui_tiny_models)
    server = WebUI(root, data_dir, webui_tiny_models, free_port(), data_dir / "webui.log")
    server.start()
    print(f"\nWebUI started in {server.startup_seconds:.1f} s at {server.url} (log: {server.log_path})")
    try:
        yield server
    finally:
        server.stop()
