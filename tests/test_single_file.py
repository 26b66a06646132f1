"""Single-file (LDM layout) Stable unCLIP checkpoints: a tiny diffusers unCLIP written as ldm would, loaded back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sd_reimagine.errors import ModelNotAvailableError

from .conftest import noise_image

pytest.importorskip("diffusers")

from sd_reimagine.testing.ldm_layout import pipeline_to_ldm  # noqa: E402

HEADS = {"unet_head_channels": 32, "text": 4, "vision": 4}  # build_unclip(scale=2): 64/2 and 128/4 head channels


def ldm_compatible_unclip():
    """build_unclip(scale=2) with what ldm fixes: GroupNorm(32) everywhere and OpenCLIP's exact GELU."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection

    from sd_reimagine.testing.tiny_diffusers import build_unclip

    pipe = build_unclip(scale=2)
    unet = UNet2DConditionModel.from_config({**pipe.unet.config, "norm_num_groups": 32})
    unet.load_state_dict(pipe.unet.state_dict())
    vae = AutoencoderKL.from_config({**pipe.vae.config, "norm_num_groups": 32})
    vae.load_state_dict(pipe.vae.state_dict())
    vision_config = pipe.image_encoder.config
    vision_config.hidden_act = "gelu"
    image_encoder = CLIPVisionModelWithProjection(vision_config)
    image_encoder.load_state_dict(pipe.image_encoder.state_dict())
    pipe.register_modules(unet=unet, vae=vae, image_encoder=image_encoder)
    return pipe


@pytest.fixture(scope="module")
def original():
    pipe = ldm_compatible_unclip()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory, original):
    from safetensors.torch import save_file

    from sd_reimagine.testing.tiny_diffusers import make_tokenizer

    folder = tmp_path_factory.mktemp("single-file")
    state = pipeline_to_ldm(original)
    save_file(state, str(folder / "tiny-unclip.safetensors"))
    torch.save({"state_dict": state, "global_step": 0}, str(folder / "tiny-unclip.ckpt"))
    make_tokenizer(folder / "tiny-unclip_tokenizer")
    return folder


def run(pipe) -> np.ndarray:
    return pipe(
        noise_image(3),
        prompt="a red fox",
        negative_prompt="blurry",
        num_inference_steps=2,
        height=64,
        width=64,
        noise_level=100,
        generator=torch.Generator().manual_seed(5),
        output_type="np",
    ).images[0]


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_ldm_checkpoint_gives_the_same_images(checkpoint_dir, original, suffix):
    from sd_reimagine.standalone.single_file import Heads, load_unclip_single_file

    loaded = load_unclip_single_file(checkpoint_dir / f"tiny-unclip{suffix}", heads=Heads(**HEADS))
    loaded.set_progress_bar_config(disable=True)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    # The scheduler and tokenizer are not in the file: give both pipelines the same ones.
    original.register_modules(tokenizer=loaded.tokenizer, scheduler=loaded.scheduler)
    embeds = [
        p.image_encoder(pixel_values=torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
        for p in (original, loaded)
    ]
    assert torch.allclose(embeds[0].image_embeds, embeds[1].image_embeds, atol=1e-5)
    np.testing.assert_allclose(run(loaded), run(original), atol=1e-4)


def test_missing_tokenizer_is_a_clear_error(checkpoint_dir, tmp_path):
    from sd_reimagine.standalone.single_file import Heads, load_unclip_single_file

    lonely = tmp_path / "sd21-unclip-h.safetensors"
    lonely.write_bytes((checkpoint_dir / "tiny-unclip.safetensors").read_bytes())
    with pytest.raises(ModelNotAvailableError, match="no CLIP tokenizer found.*`tokenizer` folder"):
        load_unclip_single_file(lonely, heads=Heads(**HEADS))


class NotATensor:
    """Any pickled class: a weights-only load must refuse it instead of running its code."""


def test_pickled_object_is_refused(tmp_path):
    from sd_reimagine.standalone.single_file import load_unclip_single_file

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": NotATensor()}, str(path))
    with pytest.raises(ModelNotAvailableError, match=r"evil\.ckpt.*could not be read as tensors") as error:
        load_unclip_single_file(path)
    assert "\n" not in str(error.value)


def test_non_unclip_checkpoint_says_what_it_looks_like(tmp_path):
    from safetensors.torch import save_file

    from sd_reimagine.standalone.single_file import load_unclip_single_file

    path = tmp_path / "sd15.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}, str(path))
    with pytest.raises(ModelNotAvailableError, match=r"sd15\.safetensors.*looks like a 'sd' model, not Stable unCLIP"):
        load_unclip_single_file(path)


def test_a_webui_yaml_beside_the_checkpoint_is_read(tmp_path):
    from sd_reimagine.standalone.single_file import _read_yaml

    path = tmp_path / "sd21-unclip-h.yaml"
    path.write_text("model:\n  params:\n    scale_factor: 0.2\n    parameterization: v\n")
    assert _read_yaml(path) == {"scale_factor": 0.2, "parameterization": "v"}
    assert _read_yaml(tmp_path / "missing.yaml") == {}


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_components_are_built_in_the_asked_dtype_with_no_meta_left(checkpoint_dir, suffix):
    from sd_reimagine.standalone.single_file import Heads, load_unclip_single_file

    path = checkpoint_dir / f"tiny-unclip{suffix}"
    pipe = load_unclip_single_file(path, heads=Heads(**HEADS), dtype=torch.bfloat16)
    for name in ("unet", "vae", "text_encoder", "image_encoder"):
        parameters = list(getattr(pipe, name).parameters())
        assert all(p.dtype == torch.bfloat16 and p.device.type == "cpu" for p in parameters), name
    image = pipe(noise_image(3), prompt="a fox", num_inference_steps=1, height=64, width=64, output_type="np")
    assert np.isfinite(image.images[0]).all()
