"""The standalone Session on the tiny models: the dtype it loads pipelines in, and a refine that can be stopped."""

import pytest
import torch

from sd_reimagine.errors import ParamError
from sd_reimagine.images import InputImage, open_image
from sd_reimagine.standalone.session import Session, pick_dtype

from .conftest import noise_image


@pytest.fixture
def reference() -> InputImage:
    return open_image(noise_image(0))


def test_bfloat16_loads_every_pipeline_in_bfloat16_and_runs_on_cpu(tiny_models, tmp_path, reference):
    session = Session(device="cpu", out_dir=tmp_path, dtype="bfloat16")
    unclip = str(tiny_models["tiny-unclip"])
    job, paths = session.variations([(reference, 1.0)], {"model": unclip, "steps": 2, "width": 64, "height": 64})
    assert len(paths) == 1 and paths[0].is_file() and job.images[0].image.size == (64, 64)
    assert session.unclip(unclip).pipe.unet.dtype == torch.bfloat16
    relay = session.relay(str(tiny_models["tiny-sdxl-base"]), str(tiny_models["tiny-sdxl-refiner"]))
    assert relay.base.unet.dtype == relay.refiner.unet.dtype == torch.bfloat16


def test_the_automatic_dtype_is_float32_on_cpu(tmp_path):
    assert Session(device="cpu", out_dir=tmp_path).dtype == torch.float32
    assert pick_dtype(None, "cpu") == torch.float32 and pick_dtype("float32", "cpu") == torch.float32


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("float16", "dtype='float16' is not allowed: one of float32, bfloat16 on cpu; float16 needs a GPU"),
        ("fp16", "dtype='fp16' is not allowed: one of float32, bfloat16 on cpu"),
        ("float64", "dtype='float64' is not allowed: one of float32, bfloat16 on cpu"),
    ],
)
def test_a_dtype_the_device_cannot_run_is_refused_naming_what_it_can(tmp_path, name, message):
    with pytest.raises(ParamError) as error:
        Session(device="cpu", out_dir=tmp_path, dtype=name)
    assert str(error.value) == message


def test_refine_stops_at_the_next_step_and_keeps_its_image(tiny_models, tmp_path, reference):
    session = Session(device="cpu", out_dir=tmp_path)
    steps: list[tuple[int, int]] = []
    values = {"refiner": str(tiny_models["tiny-sdxl-refiner"]), "refine_strength": 1.0, "refiner_steps": 20}
    job, paths = session.refine(
        reference, values, seed=1, progress=lambda *step: steps.append(step), should_stop=lambda: True
    )
    assert job.interrupted and steps == [(1, 20)]  # one step of 20, then stopped
    assert len(paths) == 1 and paths[0].is_file()
    job, paths = session.refine(reference, {**values, "refiner_steps": 2}, seed=1, should_stop=lambda: False)
    assert not job.interrupted and len(paths) == 1
