"""A model of the wrong kind, or an unreadable file, is refused before loading in one line saying what it is."""

import pytest
import torch

from sd_reimagine.errors import ModelNotAvailableError

from .conftest import noise_image
from .test_cli import cli

UNCLIP_NEEDED = "Reimagine needs a Stable unCLIP 2.1 model ("


def random_ckpt(tmp_path, tiny_models):
    path = tmp_path / "random.ckpt"
    torch.save({"weight": torch.randn(4, 4), "bias": torch.randn(4)}, str(path))
    return path


def garbage_ckpt(tmp_path, tiny_models):
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(b"\x80\x02not a checkpoint at all" * 64)
    return path


def sdxl_refiner_folder(tmp_path, tiny_models):
    return tiny_models["tiny-sdxl-refiner"]  # an SDXL base is Reimagine XL (tests/test_reimagine_xl.py)


@pytest.mark.parametrize(
    ("make", "found"),
    [
        (random_ckpt, "it holds no weights of a known Stable Diffusion model"),
        (garbage_ckpt, "not a readable .ckpt file"),
        (sdxl_refiner_folder, "this is an SDXL refiner pipeline (StableDiffusionXLImg2ImgPipeline)"),
    ],
)
def test_cli_says_what_the_model_is_and_what_is_needed(tiny_models, tmp_path, make, found):
    model = make(tmp_path, tiny_models)
    image = tmp_path / "a.png"
    noise_image(0).save(image)
    result = cli("variations", "--model", model, "--image", image, "--steps", 1, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line: nothing was loaded first
    line = result.stderr.strip()
    assert line.startswith(f"error: model {str(model)!r}: {found}")
    assert UNCLIP_NEEDED in line and "Weights only" not in line and "<class" not in line


def load_unclip(spec):
    from diffusers import StableUnCLIPImg2ImgPipeline

    from sd_reimagine.standalone.models import load_pipeline

    return load_pipeline(StableUnCLIPImg2ImgPipeline, str(spec))


class WritesAFile:
    """Unpickling this runs code: the check must refuse the file without unpickling it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_with_code_is_never_unpickled(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": WritesAFile(marker)}, str(path))
    with pytest.raises(ModelNotAvailableError, match="it holds no weights of a known Stable Diffusion model"):
        load_unclip(path)
    assert not marker.exists()


def test_unreadable_safetensors_and_folder_without_index(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelNotAvailableError, match=r"broken\.safetensors'?: not a readable \.safetensors file"):
        load_unclip(broken)
    (tmp_path / "folder").mkdir()
    with pytest.raises(
        ModelNotAvailableError, match=r"not a diffusers pipeline folder \(no model_index.json\); Reimagine needs"
    ):
        load_unclip(tmp_path / "folder")


def test_sdxl_base_refuses_an_unclip_folder(tiny_models):
    from diffusers import StableDiffusionXLPipeline

    from sd_reimagine.standalone.models import load_pipeline

    with pytest.raises(ModelNotAvailableError) as error:
        load_pipeline(StableDiffusionXLPipeline, str(tiny_models["tiny-unclip"]))
    message = str(error.value)
    assert "this is a Stable unCLIP pipeline (StableUnCLIPImg2ImgPipeline)" in message
    assert "the SDXL base needs an SDXL base model" in message and "\n" not in message


def test_right_kinds_still_load(tiny_models):
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from sd_reimagine.standalone.models import load_pipeline

    assert load_unclip(tiny_models["tiny-unclip"]).unet is not None
    # the refiner pipeline accepts an SDXL base too (same latent space), as the WebUI post-step does
    assert load_pipeline(StableDiffusionXLImg2ImgPipeline, str(tiny_models["tiny-sdxl-base"])).unet is not None
