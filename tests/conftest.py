"""Shared fixtures: tiny models built once per test session by the project's own code (never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("diffusers")
    from sd_reimagine.testing.tiny_diffusers import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def unclip_pipe(tiny_models):
    from diffusers import StableUnCLIPImg2ImgPipeline

    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(str(tiny_models["tiny-unclip"]))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def noise_image(seed: int, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = (np.random.RandomState(seed).rand(size[1], size[0], channels) * 255).astype("uint8")
    return Image.fromarray(pixels.squeeze(), mode)


@pytest.fixture
def image_a() -> Image.Image:
    return noise_image(0)


@pytest.fixture
def image_b() -> Image.Image:
    return noise_image(1, (80, 96))
