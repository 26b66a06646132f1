"""The default size of a model (sd_reimagine.model_size): read from configs and headers, never from weights."""

import json

import pytest
import torch
from safetensors.torch import save_file

from sd_reimagine.checkpoints import SDXL_BASE_KEY, UNCLIP_KEY
from sd_reimagine.model_size import model_size, sized_for_model
from sd_reimagine.schema import REIMAGINE, SDXL, SDXL_BASE, SDXL_REFINER, UNCLIP_H, UNCLIP_L


def config_folder(folder, sample_size, vae_levels: int = 4):
    """A diffusers layout with only its unet and vae configs (no weights at all)."""
    for name, config in [
        ("unet", {"sample_size": sample_size}),
        ("vae", {"block_out_channels": [32] * vae_levels}),
    ]:
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("name", ["tiny-unclip", "tiny-sdxl-base", "tiny-sdxl-refiner"])
def test_a_diffusers_folder_has_its_unet_sample_size_times_the_vae_factor(tiny_models, name):
    assert model_size(str(tiny_models[name])) == (64, 64)  # sample_size 8, four VAE levels: x 8


def test_configs_alone_are_enough_and_a_non_square_sample_size_is_height_width(tmp_path):
    assert model_size(str(config_folder(tmp_path / "square", 96))) == (768, 768)
    assert model_size(str(config_folder(tmp_path / "wide", [64, 96]))) == (768, 512)
    assert model_size(str(config_folder(tmp_path / "two-levels", 16, vae_levels=2))) == (32, 32)
    assert model_size(str(tmp_path / "square" / "unet")) is None  # no vae config: not known


@pytest.mark.parametrize(
    ("spec", "size"),
    [(UNCLIP_H, (768, 768)), (UNCLIP_L, (768, 768)), (SDXL_BASE, (1024, 1024)), (SDXL_REFINER, (1024, 1024))],
)
def test_known_hub_ids_have_their_published_size(spec, size):
    assert model_size(spec) == size


def test_an_unknown_hub_id_not_in_the_cache_is_not_known():
    assert model_size("someone/not-cached-model") is None


@pytest.mark.parametrize(("key", "shape", "size"), [(SDXL_BASE_KEY, [1280], 1024), (UNCLIP_KEY, [1024], 768)])
def test_a_single_file_has_the_size_of_its_kind_from_its_header(tmp_path, key, shape, size):
    path = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(shape)}, str(path))
    assert model_size(str(path)) == (size, size)


def test_an_unrecognised_single_file_is_not_known(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"something.weight": torch.zeros(2)}, str(path))
    assert model_size(str(path)) is None


def test_sized_for_model_sets_the_defaults_and_keeps_the_schemas_when_unknown_or_refused(tiny_models, tmp_path):
    sized = sized_for_model(REIMAGINE, str(tiny_models["tiny-unclip"]))
    assert (sized["width"].default, sized["height"].default) == (64, 64)
    assert sized.validate({})["width"] == 64 and sized["width"].maximum == REIMAGINE["width"].maximum
    assert sized_for_model(SDXL, SDXL_BASE)["width"].default == 1024
    assert sized_for_model(REIMAGINE, "someone/not-cached-model") is REIMAGINE
    too_small = config_folder(tmp_path / "too-small", 16, vae_levels=2)  # 32 px: below the schema's 64
    assert sized_for_model(REIMAGINE, str(too_small))["width"].default == REIMAGINE["width"].default
