"""The standalone's low-VRAM options (`--offload model|sequential`, `--vae-tiling`): declared once in the schema,
accepted by variations, sdxl, refine and serve, reaching the pipelines; on a CPU device offload is a no-op with a
note and the image is the same; VAE tiling gives the same picture within tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sd_reimagine.schema import LOW_VRAM
from sd_reimagine.standalone.cli import build_parser
from sd_reimagine.standalone.low_vram import MemoryOptions, execution_device, offload_note, place_pipeline

from .conftest import noise_image
from .test_cli import cli

pytest.importorskip("diffusers")


@pytest.mark.parametrize("command", ["variations", "sdxl", "refine", "serve"])
def test_every_job_command_takes_the_schemas_low_vram_flags(command):
    required = {"variations": ["--image", "a.png"], "refine": ["--image", "a.png"]}.get(command, [])
    parser = build_parser()
    args = parser.parse_args([command, *required, "--offload", "sequential", "--vae-tiling"])
    assert LOW_VRAM.values_from_cli(args) == {"offload": "sequential", "vae_tiling": True}
    bare = parser.parse_args([command, *required, "--offload"])  # the earlier on/off flag: model offload
    assert LOW_VRAM.values_from_cli(bare) == {"offload": "model", "vae_tiling": False}
    assert LOW_VRAM.values_from_cli(parser.parse_args([command, *required])) == LOW_VRAM.defaults()


def test_a_bad_offload_mode_is_one_line(tmp_path):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    result = cli("variations", "--model", tmp_path, "--image", image, "--offload", "disk")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "offload='disk' is not allowed: one of 'none', 'model', 'sequential'" in result.stderr


def test_offload_on_cpu_is_a_noop_with_a_note_and_the_same_image(tiny_models, tmp_path):
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    job = ["--model", tiny_models["tiny-unclip"], "--image", image, "--steps", "2", "--width", "64", "--height", "64"]
    plain = cli("variations", *job, "--seed", "5", "--device", "cpu", "--out", tmp_path / "plain")
    offloaded = cli(
        "variations", *job, "--seed", "5", "--device", "cpu", "--offload", "model", "--out", tmp_path / "offload"
    )
    assert plain.returncode == offloaded.returncode == 0, offloaded.stderr
    assert "note: offload=model has no effect on device cpu" in offloaded.stderr and "note:" not in plain.stderr
    pixels = [np.asarray(Image.open(Path(r.stdout.split()[0]))) for r in (plain, offloaded)]
    assert np.array_equal(*pixels)
    assert offload_note("cuda", MemoryOptions("model")) == "" and offload_note("cpu", MemoryOptions()) == ""


def test_model_offload_reaches_the_pipeline_on_an_accelerator():
    """Hooks only (no CUDA call until a model runs), so this runs on a CPU-only machine too."""
    from sd_reimagine.testing.tiny_diffusers import build_sdxl_pair

    base, _ = build_sdxl_pair()
    place_pipeline(base, "cuda", MemoryOptions("model"))
    assert base._execution_device == torch.device("cuda", 0)
    assert execution_device(base.vae) == torch.device("cuda", 0)
    assert next(base.unet.parameters()).device.type == "cpu"  # the weights wait in CPU memory
    assert len(base._all_hooks) == 4  # text encoders, UNet, VAE


def test_sequential_offload_reaches_the_pipeline():
    """accelerate's layer-by-layer hooks: the weights leave the module (the meta device stands in for a GPU here:
    a CPU-only torch cannot place buffers on CUDA)."""
    from sd_reimagine.testing.tiny_diffusers import build_sdxl_pair

    base, _ = build_sdxl_pair()
    place_pipeline(base, "meta", MemoryOptions("sequential"))
    assert next(base.unet.parameters()).device.type == "meta"
    assert execution_device(base.vae).type == "meta" and base._execution_device.type == "meta"


def test_vae_tiling_reaches_the_pipeline_and_keeps_the_picture(tiny_models, tmp_path):
    from sd_reimagine.images import open_image
    from sd_reimagine.standalone.session import Session

    references = [(open_image(noise_image(0)), 1.0)]
    values = {"model": str(tiny_models["tiny-unclip"]), "steps": 2, "width": 256, "height": 256, "seed": 9}
    images = []
    for tiling in (False, True):
        session = Session(device="cpu", out_dir=tmp_path / str(tiling), vae_tiling=tiling)
        runner = session.unclip(values["model"])
        assert runner.pipe.vae.use_tiling is tiling
        job, _ = session.variations(references, values, save=False)
        images.append(np.asarray(job.images[0].image, dtype=np.float32) / 255)
    plain, tiled = images
    # the tiny VAE's 64-pixel tiles cover a quarter of the side: random weights make seams visible, yet the
    # picture stays the same one (trained VAEs differ by a few levels)
    assert np.abs(plain - tiled).mean() < 0.1
    assert np.corrcoef(plain.ravel(), tiled.ravel())[0, 1] > 0.75
    assert not np.array_equal(plain, tiled)  # tiling did run
