"""A real Forge with this extension and real-architecture random-weight checkpoints, started once per session.

REIMAGINE_FORGE_DIR: a Forge checkout (lllyasviel/stable-diffusion-webui-forge) with its venv and repositories/
(huggingface_guess at the pinned commit, assets, BLIP); REIMAGINE_FORGE_PYTHON: its Python (default
<root>/venv/bin/python); REIMAGINE_FORGE_MODELS: where the checkpoints are kept (default
~/.cache/sd-reimagine/forge-models; built there by `make-real-size-models --forge` when missing: ~5 min, 21 GB);
each checkpoint is linked in alone, as a user has it (no tokenizer folder, no .yaml).
Unset REIMAGINE_FORGE_DIR: every test here is skipped. Forge runs offline on the CPU from a throw-away --data-dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sd_reimagine.reimagine_xl import POOLED_DIM
from sd_reimagine.testing.tiny_clip_vision import write_into_clip_vision_folder
from sd_reimagine.webui.settings import BATCH_API_DIR

from ..browser import free_port

PROJECT = Path(__file__).resolve().parents[2]
ENV_DIR, ENV_PYTHON, ENV_MODELS = "REIMAGINE_FORGE_DIR", "REIMAGINE_FORGE_PYTHON", "REIMAGINE_FORGE_MODELS"
SKIP_REASON = (
    f"set {ENV_DIR} to a Forge checkout with its venv and repositories/ (optionally {ENV_PYTHON}, {ENV_MODELS}) "
    "to run the real-Forge tests"
)
START_TIMEOUT = float(os.environ.get("REIMAGINE_FORGE_START_TIMEOUT", "300"))
FLAGS = [
    "--always-cpu",
    "--unet-in-bf16",  # about half the memory of float32 for the SDXL UNets (14-19 GB otherwise)
    "--clip-in-fp16",
    "--skip-prepare-environment",
    "--skip-install",
    "--skip-torch-cuda-test",
    "--skip-python-version-check",
    "--api",
    "--api-server-stop",
    "--no-download-sd-model",
]
BASE, REFINER, UNCLIP = "real-sdxl-base.safetensors", "real-sdxl-refiner.safetensors", "real-unclip-h.safetensors"
UNCLIP_L = "real-unclip-l.safetensors"
LORA = "reimagine-test-sd2"  # a small random LoRA on one attention layer of the SD 2 UNet (unCLIP's)
PROBE_FILE = "probe-y.pt"  # where the probe extension writes the `y` Forge's k-model last handed its UNet
PROBE_SCRIPT = '''"""Test probe: saves the image conditioning `y` Forge's k-model hands its UNet (observes only)."""
import os

import torch
from backend.modules import k_model

PROBE = os.environ.get("REIMAGINE_PROBE_FILE")
if PROBE and not getattr(k_model.KModel.apply_model, "reimagine_probe", False):
    original = k_model.KModel.apply_model

    calls = []  # (sigma, y) of every UNet call since the test removed the file

    def apply_model(self, x, t, *args, **kwargs):
        if kwargs.get("y") is not None:
            if not os.path.exists(PROBE):
                calls.clear()
            calls.append((float(t.flatten()[0]), kwargs["y"].detach().float().cpu()))
            torch.save(calls, PROBE)
        return original(self, x, t, *args, **kwargs)

    apply_model.reimagine_probe = True
    k_model.KModel.apply_model = apply_model
'''
OPTIONS = {"live_previews_enable": False, "sd_model_checkpoint": BASE, "samples_save": False}


def forge_root() -> Path | None:
    value = os.environ.get(ENV_DIR, "").strip()
    return Path(value).resolve() if value else None


def models_dir() -> Path:
    default = Path.home() / ".cache" / "sd-reimagine" / "forge-models"
    return Path(os.environ.get(ENV_MODELS) or default).expanduser()


@pytest.fixture(autouse=True)
def _needs_forge():
    if forge_root() is None:
        pytest.skip(SKIP_REASON)


def build_models(root: Path, out: Path) -> Path:
    """The real-size checkpoints (kept between sessions: the builder skips files that exist)."""
    command = [sys.executable, "-m", "sd_reimagine", "make-real-size-models", "--forge", str(root), str(out)]
    result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"make-real-size-models failed:\n{result.stdout}\n{result.stderr}"
    return out


def write_sd2_lora(folder: Path) -> Path:
    """A kohya-named LoRA (rank 4) on the first attention query of the SD 2 UNet: large enough to change an image."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    name = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"
    tensors = {
        f"{name}.lora_down.weight": torch.randn(4, 320, generator=generator) * 0.5,
        f"{name}.lora_up.weight": torch.randn(320, 4, generator=generator) * 0.5,
        f"{name}.alpha": torch.tensor(4.0),
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / f"{LORA}.safetensors"))
    return folder / f"{LORA}.safetensors"


def make_data_dir(data_dir: Path, models: Path) -> Path:
    """A throw-away --data-dir: the checkpoints linked in alone (as a user has them: no tokenizer folder, no .yaml),
    the tiny bigG-size image encoder in models/clip_vision, this project and the `y` probe as extensions."""
    target = data_dir / "models" / "Stable-diffusion"
    target.mkdir(parents=True)
    for path in sorted(models.iterdir()):
        if path.suffix == ".safetensors":
            (target / path.name).symlink_to(path)
    write_sd2_lora(data_dir / "models" / "Lora")
    # Reimagine XL's image encoder: a tiny tower whose projection has real SDXL's pooled size (1280)
    write_into_clip_vision_folder(data_dir / "models", projection_dim=POOLED_DIM)
    (data_dir / "extensions").mkdir()
    (data_dir / "extensions" / "sd-webui-reimagine").symlink_to(PROJECT, target_is_directory=True)
    (data_dir / "extensions" / "reimagine-probe" / "scripts").mkdir(parents=True)
    (data_dir / "extensions" / "reimagine-probe" / "scripts" / "probe.py").write_text(PROBE_SCRIPT, encoding="utf-8")
    # The folder the batch API may read from and write to (a setting the API itself cannot change).
    options = {**OPTIONS, BATCH_API_DIR: str((data_dir / "batch").resolve())}
    (data_dir / "batch").mkdir()
    (data_dir / "config.json").write_text(json.dumps(options, indent=1), encoding="utf-8")
    return data_dir


@dataclass
class Forge:
    """A running Forge: its URL, HTTP helpers and log."""

    root: Path
    data_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    startup_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # command-line flags beyond FLAGS
    base_flags: list[str] = field(default_factory=lambda: list(FLAGS))  # FLAGS less e.g. the bf16/fp16 ones
    auth: tuple[str, str] | None = None  # the --api-auth credentials its HTTP helpers send

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs):
        import requests

        kwargs.setdefault("timeout", 900)
        kwargs.setdefault("auth", self.auth)
        return requests.get(self.url + path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs):
        import requests

        kwargs.setdefault("timeout", 900)
        kwargs.setdefault("auth", self.auth)
        return requests.post(self.url + path, json=json, **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def options(self) -> dict[str, Any]:
        response = self.get("/sdapi/v1/options")
        response.raise_for_status()
        return response.json()

    def start(self) -> None:
        python = os.environ.get(ENV_PYTHON) or str(self.root / "venv" / "bin" / "python")
        command = [python, "launch.py", *self.base_flags, *self.flags]
        command += ["--data-dir", str(self.data_dir), "--port", str(self.port)]
        # Forge lets Gradio serve files only from --data-dir: its own javascript/ (and this project, linked in as the
        # extension) must be allowed too, or the page has no ui.js and no button works
        command += ["--gradio-allowed-path", str(self.root), "--gradio-allowed-path", str(PROJECT)]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        env["REIMAGINE_PROBE_FILE"] = str(self.data_dir / PROBE_FILE)
        started = time.perf_counter()
        log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.extra["log_handle"] = log
        while time.perf_counter() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"Forge exited with {self.process.returncode}:\n{self.log_text()[-6000:]}")
            if "Startup time:" in self.log_text() and self._answers():
                self.startup_seconds = time.perf_counter() - started
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Forge did not start in {START_TIMEOUT:.0f} s:\n{self.log_text()[-6000:]}")

    def _answers(self) -> bool:
        try:
            return self.get("/reimagine/v1/version", timeout=5).status_code in (200, 401)  # 401: behind --api-auth
        except Exception:
            return False

    def stop(self) -> None:
        """SIGTERM (Forge's server-stop closes the port but leaves the process running)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        handle = self.extra.pop("log_handle", None)
        if handle is not None:
            handle.close()


@pytest.fixture(scope="session")
def forge(tmp_path_factory) -> Forge:
    """Forge started with this extension and the real-size checkpoints; stopped at the end of the session."""
    root = forge_root()
    if root is None:
        pytest.skip(SKIP_REASON)
    models = build_models(root, models_dir())
    data_dir = make_data_dir(tmp_path_factory.mktemp("forge-data"), models)
    server = Forge(root, data_dir, free_port(), data_dir / "forge.log")
    server.start()
    print(f"\nForge started in {server.startup_seconds:.1f} s at {server.url} (log: {server.log_path})")
    try:
        yield server
    finally:
        server.stop()
