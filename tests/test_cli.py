"""The CLI: writes K PNGs with infotext, lists every parameter in --help, refuses bad input with one line."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sd_reimagine.infotext import parse_infotext
from sd_reimagine.schema import REIMAGINE

from .conftest import noise_image

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=ROOT):
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "sd_reimagine", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_variations_writes_pngs_with_infotext(tiny_models, tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.jpg"
    noise_image(0).save(first)
    noise_image(1).save(second)
    result = cli(
        "variations",
        "--model",
        tiny_models["tiny-unclip"],
        "--image",
        first,
        "--image",
        second,
        "--weight",
        "0.5",
        "--n",
        "2",
        "--seed",
        "7",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "--prompt",
        "a cat",
        "--noise-level",
        "100",
        "--out",
        tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.split()]
    assert len(paths) == 2 and all(p.exists() for p in paths)
    infotext = Image.open(paths[1]).info["parameters"]
    assert infotext.startswith("a cat\n") and "Seed: 8" in infotext and "Reimagine noise level: 100" in infotext
    assert "@0.6667" in infotext and "@0.3333" in infotext


def test_help_lists_every_parameter_with_default_and_range():
    result = cli("variations", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for param in REIMAGINE:
        assert param.flag in text
    assert "(default: 0; an integer from 0 to 999)" in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--noise-level", "1000"], "noise_level='1000' is not allowed: an integer from 0 to 999"),
        (["--width", "100"], "a multiple of 8"),
        (["--weight", "-1"], "weight='-1' is not allowed"),
        (["--sampler", "Warp"], "sampler='Warp' is not allowed"),
    ],
)
def test_bad_input_exits_with_one_line(tmp_path, args, fragment):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    result = cli("variations", "--model", tmp_path, "--image", image, *args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and fragment in result.stderr


def test_missing_image_and_offline_model_are_clear(tmp_path):
    result = cli("variations", "--image", tmp_path / "nope.png")
    assert result.returncode == 2 and "cannot read" in result.stderr and "Traceback" not in result.stderr
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    result = cli("variations", "--image", image, "--model", "someone/not-cached-unclip")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "someone/not-cached-unclip" in result.stderr and "make-tiny-models" in result.stderr


def test_sdxl_with_refiner_and_refine_command(tiny_models, tmp_path):
    result = cli(
        "sdxl",
        "--base",
        tiny_models["tiny-sdxl-base"],
        "--refiner",
        tiny_models["tiny-sdxl-refiner"],
        "--refiner-mode",
        "refine",
        "--refine-strength",
        "0.5",
        "--refiner-steps",
        "4",
        "--prompt",
        "a boat",
        "--seed",
        "3",
        "--steps",
        "3",
        "--width",
        "64",
        "--height",
        "64",
        "--out",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    final, base = [Path(line) for line in result.stdout.split()]
    assert base.name.endswith("-3-base.png")
    assert base.name == final.name.replace(".png", "-base.png")  # the pair shares one number
    assert "Post-refiner mode: refine" in Image.open(final).info["parameters"]
    result = cli(
        "refine",
        "--refiner",
        tiny_models["tiny-sdxl-refiner"],
        "--image",
        final,
        "--refine-strength",
        "0.5",
        "--refiner-steps",
        "4",
        "--seed",
        "1",
        "--out",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    refined = Image.open(result.stdout.split()[0]).info["parameters"]
    assert refined.startswith("a boat") and "Post-refiner steps: 4" in refined
    assert "Post-refiner steps run: 2" in refined
    result = cli(
        "refine",
        "--refiner",
        tiny_models["tiny-sdxl-refiner"],
        "--image",
        final,
        "--prompt",
        "a gold boat",
        "--negative-prompt",
        "fog",
        "--cfg-scale",
        "3",
        "--refine-strength",
        "0.5",
        "--refiner-steps",
        "4",
        "--out",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    fields = parse_infotext(Image.open(result.stdout.split()[0]).info["parameters"])[2]
    assert fields["Post-refiner prompt"] == "a gold boat" and fields["Post-refiner negative prompt"] == "fog"
    assert fields["Post-refiner CFG scale"] == "3.0"


def test_refine_help_has_no_base_to_fall_back_on():
    result = cli("refine", "--help")
    assert "--prompt" in result.stdout and "--cfg-scale" in result.stdout
    assert "--refiner-prompt" not in result.stdout and "the base" not in result.stdout


def test_sdxl_bad_switch_point_is_one_line(tiny_models, tmp_path):
    result = cli(
        "sdxl",
        "--base",
        tiny_models["tiny-sdxl-base"],
        "--refiner",
        tiny_models["tiny-sdxl-refiner"],
        "--switch-at",
        "1.5",
        "--out",
        tmp_path,
    )
    assert result.returncode == 2 and "switch_at='1.5' is not allowed: a number from 0.01 to 0.99" in result.stderr


@pytest.mark.parametrize("content", [b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", b"not a checkpoint"])
def test_unreadable_single_file_unclip_is_a_clear_error(tmp_path, content):
    image, checkpoint = tmp_path / "a.png", tmp_path / "sd21-unclip-h.safetensors"
    noise_image(0).save(image)
    checkpoint.write_bytes(content)
    result = cli("variations", "--image", image, "--model", checkpoint)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "sd21-unclip-h.safetensors" in result.stderr


def test_without_width_and_height_the_models_own_size_is_used(tiny_models, tmp_path):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    result = cli(
        "variations", "--model", tiny_models["tiny-unclip"], "--image", image, "--steps", "2", "--out", tmp_path
    )
    assert result.returncode == 0, result.stderr
    made = Image.open(result.stdout.split()[0])
    assert made.size == (64, 64) and "Size: 64x64" in made.info["parameters"]  # the tiny model's, not 768
    result = cli("sdxl", "--base", tiny_models["tiny-sdxl-base"], "--steps", "2", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(result.stdout.split()[0]).size == (64, 64)  # not 1024
    result = cli("variations", "--help")
    assert "the --model model's own size: 768 for SD 2.1 unCLIP, 1024 for SDXL" in " ".join(result.stdout.split())


def test_dtype_bfloat16_runs_a_job_on_cpu(tiny_models, tmp_path):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    model = tiny_models["tiny-unclip"]
    result = cli(
        "variations", "--model", model, "--image", image, "--steps", "2", "--dtype", "bfloat16", "--out", tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(result.stdout.split()[0]).size == (64, 64)


@pytest.mark.parametrize("command", ["variations", "sdxl", "refine", "serve"])
@pytest.mark.parametrize(
    ("dtype", "allowed"),
    [
        ("float16", "one of float32, bfloat16 on cpu; float16 needs a GPU"),
        ("float64", "one of float32, bfloat16 on cpu"),
    ],
)
def test_a_dtype_the_device_cannot_run_exits_2_with_one_line(tmp_path, command, dtype, allowed):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    extra = ["--image", image] if command in ("variations", "refine") else []
    result = cli("--device", "cpu", command, *extra, "--dtype", dtype, "--out", tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: dtype={dtype!r} is not allowed: {allowed}"
