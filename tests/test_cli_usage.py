"""What a new user meets on the command line: every command in the help, help and default on every option,
--device and --verbose before or after the command, one output-folder rule, quiet model loading with visible job
progress, and nothing written into the package while the app is built."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from sd_reimagine.standalone.cli import COMMANDS, build_parser
from sd_reimagine.standalone.cli_parser import REAL_SIZE_KINDS

from .conftest import noise_image
from .test_cli import ROOT, cli

JOB = ("--steps", "2", "--width", "64", "--height", "64", "--seed", "3")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_top_level_help_lists_every_command():
    result = cli("--help")
    assert result.returncode == 0
    listed = re.findall(r"^    (\S+)", result.stdout, re.MULTILINE)
    assert listed == list(subcommands()) and set(listed) == set(COMMANDS)
    assert "make-real-size-models" in listed


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help_and_shows_its_default(name):
    parser = subcommands()[name]
    one_needed = {a for group in parser._mutually_exclusive_groups if group.required for a in group._group_actions}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        if action.option_strings and not action.required and action not in one_needed:
            assert "default" in action.help, f"{name} {action.option_strings[0]} shows no default: {action.help}"


def test_device_and_verbose_work_before_and_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["variations", "--image", "a.png"]).device is None
    before = parser.parse_args(["--device", "cpu", "--verbose", "variations", "--image", "a.png"])
    after = parser.parse_args(["variations", "--image", "a.png", "--device", "cpu", "--verbose"])
    both = parser.parse_args(["--device", "cuda", "serve", "--device", "cpu"])
    assert (before.device, before.verbose) == (after.device, after.verbose) == ("cpu", True)
    assert both.device == "cpu" and not both.verbose  # the one nearer the job wins


def test_make_real_size_models_refuses_an_unknown_kind_in_one_line():
    from sd_reimagine.testing.real_size import FILES

    assert set(REAL_SIZE_KINDS) == set(FILES)
    result = cli("make-real-size-models", "out", "--forge", "forge", "--kinds", "sdxl-bass")
    assert result.returncode == 2 and "invalid choice: 'sdxl-bass'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_single_and_folder_jobs_save_into_the_same_folder(tiny_models, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    noise_image(0).save(images / "a.png")
    model, out = tiny_models["tiny-unclip"], tmp_path / "out"
    single = cli("variations", "--model", model, "--image", images / "a.png", "--out", out, *JOB, "--device", "cpu")
    folder = cli("variations", "--model", model, "--image-dir", images, "--out", out, *JOB, "--device", "cpu")
    assert single.returncode == 0 and folder.returncode == 0, single.stderr + folder.stderr
    saved = [Path(line) for line in (single.stdout + folder.stdout).split()]
    assert len(saved) == 2 and {path.parent for path in saved} == {out / "reimagine"}


def test_the_offline_message_is_whole_and_names_hf_download(tmp_path):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    result = cli("variations", "--image", image, "--model", "someone/not-cached-unclip")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr  # no library warnings around it
    assert "is not in the local Hugging Face cache" in lines[0]
    assert "`hf download someone/not-cached-unclip`" in lines[0]
    assert "huggingface-cli" not in lines[0] and lines[0].endswith("(`python -m sd_reimagine make-tiny-models DIR`)")


def on_a_terminal(*args, timeout: float = 300) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (progress bars draw only there); its exit code and stderr."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 0 columns: tqdm draws nothing
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "sd_reimagine", *map(str, args)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=child)
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([parent], [], [], 1)[0]:
            continue
        try:
            data = os.read(parent, 65536)
        except OSError:  # EIO: the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(parent)
    return process.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_model_loading_is_quiet_unless_verbose_and_job_progress_shows(tiny_models, tmp_path):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    job = ("variations", "--model", tiny_models["tiny-unclip"], "--image", image, "--out", tmp_path, *JOB)
    code, quiet = on_a_terminal(*job)
    assert code == 0, quiet
    assert re.search(r"2/2 \[.*step", quiet), quiet  # the job's own bar: 2 steps
    assert "Loading pipeline components" not in quiet
    code, verbose = on_a_terminal(*job, "--verbose")
    assert code == 0 and "Loading pipeline components" in verbose and re.search(r"2/2 \[.*step", verbose)


def test_building_the_app_writes_nothing_into_the_package(tiny_models, tmp_path):
    pytest.importorskip("gradio")
    from sd_reimagine.standalone.app import build_app
    from sd_reimagine.standalone.session import Session

    package = ROOT / "sd_reimagine"
    before = {path: path.stat().st_mtime_ns for path in package.rglob("*") if path.is_file()}
    build_app(Session(device="cpu", out_dir=tmp_path), str(tiny_models["tiny-unclip"]))
    after = {path: path.stat().st_mtime_ns for path in package.rglob("*") if path.is_file()}
    changed = {path for path in after if before.get(path) != after[path] and "__pycache__" not in path.parts}
    assert not changed, changed
