"""Forge unCLIP pieces that run without Forge: the diffusers fallback's tokenizer through Forge's namespace
`backend` package (the HTTP 500 users hit: `backend.__file__` is None), the tower's pixels, and the checkpoint tower
converter the real-Forge test builds its own tower with."""

from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image

from sd_reimagine.reimagine_xl import CLIP_MEAN, CLIP_STD
from sd_reimagine.testing.ldm_layout import open_clip_to_vision, vision_to_open_clip
from sd_reimagine.webui.forge.unclip_diffusers import SD21_TOKENIZER, tokenizer_folder
from sd_reimagine.webui.forge.unclip_tower import squashed_pixels


def test_a_lone_checkpoint_gets_the_tokenizer_forge_ships(tmp_path, monkeypatch):
    forge = tmp_path / "forge"
    shipped = forge.joinpath("backend", *SD21_TOKENIZER)
    shipped.mkdir(parents=True)
    (shipped / "vocab.json").write_text("{}", encoding="utf-8")
    checkpoint = tmp_path / "models" / "sd21-unclip-h.safetensors"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    monkeypatch.syspath_prepend(str(forge))
    monkeypatch.delitem(sys.modules, "backend", raising=False)
    import backend  # a namespace package, as Forge's is: no __init__.py, so no __file__

    try:
        assert backend.__file__ is None
        assert tokenizer_folder(str(checkpoint)) == str(shipped)
        beside = tmp_path / "models" / "sd21-unclip-h_tokenizer"
        beside.mkdir()
        (beside / "vocab.json").write_text("{}", encoding="utf-8")
        assert tokenizer_folder(str(checkpoint)) == str(beside)  # the user's own folder first
    finally:
        sys.modules.pop("backend", None)


def test_tower_pixels_squash_the_whole_image_with_clip_statistics():
    halves = np.zeros((100, 400, 3), dtype=np.uint8)
    halves[:, :200] = (255, 0, 0)
    halves[:, 200:] = (0, 0, 255)
    pixels = squashed_pixels(Image.fromarray(halves))
    assert pixels.shape == (1, 3, 224, 224)
    red = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    blue = (1.0 - CLIP_MEAN[2]) / CLIP_STD[2]
    # no centre crop: both halves survive, at the left and right edges
    assert abs(float(pixels[0, 0, 112, 2]) - red) < 1e-3 and abs(float(pixels[0, 2, 112, 221]) - blue) < 1e-3


def test_checkpoint_tower_names_round_trip():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4, image_size=32, patch_size=4
    )
    tower = CLIPVisionModelWithProjection(config)
    state = tower.state_dict()
    back = open_clip_to_vision(vision_to_open_clip(tower))
    assert set(back) == set(state)
    assert all(torch.equal(back[name], state[name]) for name in state)
