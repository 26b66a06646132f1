"""`python -m sd_reimagine variations --image-dir`: outputs with source tags and lineage, a bad file reported and
passed over, a rerun that makes nothing new, Ctrl-C that keeps what is done, and clear refusals."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from sd_reimagine.folder_batch import SOURCE_KEY
from sd_reimagine.images import open_image, png_bytes
from sd_reimagine.infotext import Lineage, parse_infotext, write_infotext

from .conftest import noise_image
from .test_cli import ROOT, cli

JOB = ("--steps", "2", "--width", "64", "--height", "64", "--n", "2", "--seed", "5")


def batch_folder(folder: Path) -> Path:
    """3 good images (one of them a Reimagine image of generation 1), a corrupt PNG and a text file."""
    folder.mkdir()
    noise_image(0).save(folder / "a.png")
    noise_image(1).save(folder / "b.jpg", quality=95)
    fields = {"Steps": 2, "Seed": 1, "Reimagine references": "0123456789@1", "Reimagine generation": 1}
    parent_text = write_infotext("a parent", "", fields)
    (folder / "c.png").write_bytes(png_bytes(noise_image(2), parent_text))
    (folder / "d.png").write_bytes(png_bytes(noise_image(3))[:60])
    (folder / "notes.txt").write_text("not an image")
    return folder


def outputs(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*")}


def test_a_folder_then_a_rerun_that_skips_what_is_done(tiny_models, tmp_path):
    source, out = batch_folder(tmp_path / "in"), tmp_path / "out"
    args = ("variations", "--model", tiny_models["tiny-unclip"], "--image-dir", source, "--out", out, *JOB)
    started = time.perf_counter()
    first = cli(*args)
    first_seconds = time.perf_counter() - started
    assert first.returncode == 1, first.stderr
    failed = [line for line in first.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith("failed: d.png: d.png is corrupt or truncated"), first.stderr
    assert "3 done, 0 skipped (already done), 1 failed, 1 ignored (not PNG/JPEG/WebP); 6 images saved" in first.stderr
    paths = [Path(line) for line in first.stdout.split()]
    assert sorted(paths) == sorted((out / "reimagine").glob("*.png")) and len(paths) == 6  # the single jobs' folder

    by_input: dict[str, list[tuple[int, int]]] = {}
    for path in paths:
        with Image.open(path) as image:
            source_tag = json.loads(image.info[SOURCE_KEY])
            infotext = image.info["parameters"]
        name = source_tag["input"]
        assert source_tag["sha256"] == hashlib.sha256((source / name).read_bytes()).hexdigest()
        assert source_tag["complete"] is True and source_tag["seed"] == 5 and source_tag["n"] == 2
        fields = parse_infotext(infotext)[2]
        assert int(fields["Seed"]) == 5 + source_tag["index"]
        lineage = Lineage.from_fields(fields)
        reference = open_image(source / name)
        assert lineage.references == ((reference.short_hash, 1.0),)
        if name == "c.png":  # a Reimagine image: its outputs are the next generation, with it as parent
            assert (lineage.generation, lineage.parents) == (2, (reference.short_hash,))
        else:
            assert (lineage.generation, lineage.parents) == (1, ())
        by_input.setdefault(name, []).append((source_tag["index"], int(fields["Seed"])))
    assert {k: sorted(v) for k, v in by_input.items()} == {n: [(0, 5), (1, 6)] for n in ("a.png", "b.jpg", "c.png")}

    before = outputs(out / "reimagine")
    started = time.perf_counter()
    again = cli(*args)
    assert again.returncode == 1 and again.stdout == ""
    assert "0 done, 3 skipped (already done), 1 failed" in again.stderr and "failed: d.png:" in again.stderr
    assert outputs(out / "reimagine") == before
    assert time.perf_counter() - started < first_seconds  # no model load, no sampling


def test_ctrl_c_stops_after_the_current_step_and_keeps_what_is_done(tiny_models, tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for seed in range(3):
        noise_image(seed).save(source / f"{seed}.png")
    command = [sys.executable, "-m", "sd_reimagine", "variations", "--model", str(tiny_models["tiny-unclip"])]
    command += ["--image-dir", str(source), "--out", str(out), "--steps", "40", "--width", "64", "--height", "64"]
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("reimagine/*.png")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "stopping after the current step" in stderr and "interrupted:" in stderr
    saved = [Path(line) for line in stdout.split()]
    assert 1 <= len(saved) < 3 and sorted(saved) == sorted(out.glob("reimagine/*.png"))
    with Image.open(saved[0]) as image:
        assert json.loads(image.info[SOURCE_KEY])["input"] == "0.png"


def test_image_dir_refusals(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in.txt").write_text("a regular file: no folder can be made under it")
    (tmp_path / "root" / "reimagine").mkdir(parents=True)
    cases = [
        (("--image", "x.png", "--image-dir", tmp_path / "in"), "not allowed with argument"),
        (("--image-dir", tmp_path / "missing"), "--image-dir="),
        (("--image-dir", tmp_path / "root" / "reimagine", "--out", tmp_path / "root"), "--out="),  # outputs = inputs
        (("--image-dir", tmp_path / "in", "--out", tmp_path / "in.txt" / "out"), "a folder that can be created"),
    ]
    for args, fragment in cases:
        result = cli("variations", *args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_an_out_under_a_regular_file_is_refused_before_any_model_work(tiny_models, tmp_path):
    (tmp_path / "file.txt").write_text("a regular file: no folder can be made under it")
    out = tmp_path / "file.txt" / "out"
    noise_image(0).save(tmp_path / "a.png")
    variations = ("variations", "--image", tmp_path / "a.png", "--model", tiny_models["tiny-unclip"], *JOB)
    for command in (variations, ("refine", "--image", tmp_path / "a.png")):
        result = cli(*command, "--out", out)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"error: --out={str(out)!r} is not allowed: a folder that can be created and written to (Not a directory)"
        ]
