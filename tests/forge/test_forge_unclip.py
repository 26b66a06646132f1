"""Stable unCLIP on Forge's own engine, loader, memory manager and samplers, in a real Forge whose unCLIP-H and -L
checkpoints (real architectures, random weights) lie alone in models/Stable-diffusion, as users have them.
Order matters: each model load costs 10-30 s on a CPU, so tests that share a model follow each other."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
import torch

from sd_reimagine.checkpoints import UNCLIP_H, UNCLIP_L
from sd_reimagine.images import open_image
from sd_reimagine.infotext import parse_infotext
from sd_reimagine.reimagine_plan import ReimagineFacts, conditioning_for_seed, plan_reimagine
from sd_reimagine.unclip_noise import unclip_augment

from .conftest import BASE, LORA, PROBE_FILE, REFINER, UNCLIP
from .conftest import UNCLIP_L as UNCLIP_L_FILE
from .test_forge_api import SMALL, infotexts, pixels, png_b64, txt2img

LOADED = re.compile(r"Model loaded in [0-9.]+s")
FORGE_ENGINE = "Reimagine engine: Forge"


def reference(seed: int = 0) -> str:
    from PIL import Image

    return png_b64(Image.fromarray((np.random.default_rng(seed).random((64, 64, 3)) * 255).astype("uint8")))


def job(forge, model: str = UNCLIP, images: list | None = None, **values) -> dict:
    """One Reimagine job over the API (200 asserted), with the model loads its log shows."""
    loads_before = len(LOADED.findall(forge.log_text()))
    body = {"images": images or [{"image": reference(), "weight": 1}], "prompt": "a cat", "model": model}
    response = forge.post("/reimagine/v1/variations", json={**body, **SMALL, **values})
    assert response.status_code == 200, response.text
    answer = response.json()
    answer["loads"] = len(LOADED.findall(forge.log_text())) - loads_before
    answer["pixels"] = [pixels(b64) for b64 in answer["images"]]
    return answer


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a - b).max() > 0)


def test_unclip_h_alone_runs_on_forges_engine_loaded_once(forge):
    first = job(forge, n=2, seed=5, noise_level=0)
    assert first["seeds"] == [5, 6] and not first["interrupted"]
    assert FORGE_ENGINE in first["info"][0] and "Reimagine noise level: 0" in first["info"][0]
    assert "on Forge's own engine" in forge.log_text()
    again = job(forge, n=2, seed=5, noise_level=0)  # the same job: the same images, no load
    assert again["loads"] == 0
    assert all(np.array_equal(a, b) for a, b in zip(again["pixels"], first["pixels"], strict=True))
    alone = job(forge, n=1, seed=6, noise_level=0)  # image 2 of a job = a job of its seed alone
    assert alone["loads"] == 0 and np.abs(alone["pixels"][0] - first["pixels"][1]).max() <= 2
    noised = job(forge, n=1, seed=5, noise_level=800)
    other_reference = job(forge, n=1, seed=5, noise_level=0, images=[{"image": reference(7), "weight": 1}])
    other_prompt = job(forge, n=1, seed=5, noise_level=0, prompt="a lighthouse at night")
    for changed in (noised, other_reference, other_prompt):
        assert changed["loads"] == 0 and differs(changed["pixels"][0], first["pixels"][0])
    assert forge.options()["sd_model_checkpoint"] == BASE


@pytest.mark.parametrize("sampler", ["DPM++ 3M SDE", "Restart"])
def test_forge_samplers_run_unclip(forge, sampler):
    schema = forge.get("/reimagine/v1/schema").json()["properties"]
    assert sampler in schema["sampler"]["enum"] and "Karras" in schema["schedule_type"]["enum"]
    ran = job(forge, seed=3, sampler=sampler, schedule_type="Karras")
    fields = parse_infotext(ran["info"][0])[2]
    assert fields["Sampler"] == sampler and fields["Schedule type"] == "Karras" and ran["loads"] == 0


def test_structure_strength_runs_through_forges_img2img(forge):
    from_noise = job(forge, seed=9)
    kept = job(forge, seed=9, structure_strength=0.5)
    assert "Reimagine structure strength: 0.5" in kept["info"][0] and "Denoising strength: 0.5" in kept["info"][0]
    assert differs(kept["pixels"][0], from_noise["pixels"][0])


def test_cfg_one_and_and_prompts_run(forge):
    no_negative = job(forge, seed=9, cfg_scale=1.0)  # Forge skips the negative side: no uncond rows at all
    composed = job(forge, seed=9, prompt="a cat AND a dog :0.5")  # two prompts per image, each with its row
    assert FORGE_ENGINE in no_negative["info"][0] and FORGE_ENGINE in composed["info"][0]
    assert differs(no_negative["pixels"][0], composed["pixels"][0])


def test_lora_in_the_prompt_works_on_the_unclip_unet(forge):
    plain = job(forge, seed=41)
    with_lora = job(forge, seed=41, prompt=f"a cat <lora:{LORA}:1>")
    assert "Lora hashes" in with_lora["info"][0] and FORGE_ENGINE in with_lora["info"][0]
    assert with_lora["loads"] == 0 and differs(with_lora["pixels"][0], plain["pixels"][0])
    assert np.array_equal(job(forge, seed=41)["pixels"][0], plain["pixels"][0])  # and it is gone after the job


def decoded(b64: str):
    return open_image(base64.b64decode(b64))


def checkpoint_tower(path, kind: str):
    """The checkpoint's image tower built here, by transformers, not by Forge's converter."""
    from safetensors import safe_open
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from sd_reimagine.testing.ldm_layout import open_clip_to_vision
    from sd_reimagine.testing.real_size_unclip import EMBED_DIM, VISION

    with safe_open(str(path), "pt") as handle:
        state = {k: handle.get_tensor(k).float() for k in handle.keys() if k.startswith("embedder.model.visual.")}
    config = CLIPVisionConfig(
        num_attention_heads=16, image_size=224, patch_size=14, projection_dim=EMBED_DIM[kind], **VISION[kind]
    )
    tower = CLIPVisionModelWithProjection(config).eval()
    tower.load_state_dict(open_clip_to_vision(state), strict=True)
    return tower


def karlo_stats(forge):
    mean, std = torch.load(forge.root / "models" / "karlo" / "ViT-L-14_stats.th", weights_only=True)
    return mean.float().reshape(-1), std.float().reshape(-1)


def core_rows(forge, file: str, kind: str, refs: list[dict], values: dict) -> list[torch.Tensor]:
    """The core's rows for the job's references, seeds and noise level, with the checkpoint's own tower."""
    from sd_reimagine.webui.forge.unclip_tower import squashed_pixels

    references = [(decoded(r["image"]), r["weight"]) for r in refs]
    plan = plan_reimagine(values, references, ReimagineFacts(file))
    tower = checkpoint_tower(forge.data_dir / "models" / "Stable-diffusion" / file, kind)
    with torch.no_grad():
        embeds = torch.cat([tower(pixel_values=squashed_pixels(r.image.image)).image_embeds for r in plan.references])
    del tower
    augment = unclip_augment(values["noise_level"], *(karlo_stats(forge) if kind == UNCLIP_L else (None, None)))
    return [conditioning_for_seed(embeds, plan, torch.Generator().manual_seed(s), augment)[0] for s in plan.seeds]


def last_step_rows(calls: list) -> list[torch.Tensor]:
    """The `y` the UNet got at the job's last sigma, from every batch (with and without image, one call or two)."""
    return [y for sigma, y in calls if sigma == calls[-1][0]]


def check_unet_received_core_rows(forge, file: str, kind: str) -> None:
    refs = [{"image": reference(21), "weight": 2.0}, {"image": reference(22), "weight": 1.0}]
    values = {"n": 2, "seed": 11, "noise_level": 300, "cfg_scale": 3.0}
    (forge.data_dir / PROBE_FILE).unlink(missing_ok=True)  # the probe starts recording afresh
    ran = job(forge, model=file, images=refs, **values)
    assert FORGE_ENGINE in ran["info"][0]
    calls = torch.load(forge.data_dir / PROBE_FILE, weights_only=True)
    received = torch.cat(last_step_rows(calls))
    assert received.shape == (4, {UNCLIP_H: 2048, UNCLIP_L: 1536}[kind])  # 2 images, each with and without image
    expected = core_rows(forge, file, kind, refs, values)
    for row in expected:
        distances = (received - row).abs().amax(dim=1)
        assert distances.min() < 1e-3, f"no row of y within 1e-3 of the core's row: {distances.tolist()}"
    zero_rows = received.abs().amax(dim=1) == 0
    assert int(zero_rows.sum()) == 2  # the negative side: the model's "no image"
    other_seed = core_rows(forge, file, kind, refs, {**values, "seed": 13})[0]
    assert (received - other_seed).abs().amax(dim=1).min() > 1e-2  # the comparison can fail


def test_conditioning_forges_unet_receives_is_the_cores_unclip_h(forge):
    check_unet_received_core_rows(forge, UNCLIP, UNCLIP_H)


def test_post_step_runs_after_an_unclip_job(forge):
    plain = job(forge, seed=31)
    post = {"enabled": True, "refiner": REFINER, "refiner_mode": "refine", "refine_strength": 0.5}
    refined = job(forge, seed=31, refiner={**post, "refiner_steps": 2, "keep_base": True})
    assert refined["seeds"] == [31, 31] and len(refined["images"]) == 2
    final, base = (parse_infotext(text)[2] for text in refined["info"])
    assert final["Post-refiner mode"] == "refine" and final["Reimagine engine"] == "Forge"
    assert base.get("Post-refiner output") == "base"
    assert np.abs(refined["pixels"][1] - plain["pixels"][0]).max() <= 1  # the kept unCLIP image
    assert forge.options()["sd_model_checkpoint"] == BASE


def test_unclip_l_alone_runs_on_forges_engine(forge):
    first = job(forge, model=UNCLIP_L_FILE, seed=4, noise_level=100)
    assert FORGE_ENGINE in first["info"][0] and "Model: real-unclip-l" in first["info"][0]
    again = job(forge, model=UNCLIP_L_FILE, seed=4, noise_level=100)
    assert again["loads"] == 0 and np.array_equal(again["pixels"][0], first["pixels"][0])
    noised = job(forge, model=UNCLIP_L_FILE, seed=4, noise_level=700)
    assert differs(noised["pixels"][0], first["pixels"][0])


def test_conditioning_forges_unet_receives_is_the_cores_unclip_l(forge):
    check_unet_received_core_rows(forge, UNCLIP_L_FILE, UNCLIP_L)


def test_an_unclip_file_no_path_can_load_is_a_422_naming_model(forge):
    from safetensors.torch import save_file

    folder = forge.data_dir / "models" / "Stable-diffusion"
    broken = folder / "broken-unclip.safetensors"  # unCLIP by its marker key, but no model Forge or diffusers builds
    save_file({"embedder.model.ln_final.weight": torch.ones(1024), "model.diffusion_model.x": torch.ones(2)}, broken)
    assert forge.post("/sdapi/v1/refresh-checkpoints").status_code == 200
    try:
        body = {"images": [{"image": reference()}], "model": broken.name}
        response = forge.post("/reimagine/v1/variations", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "model"] and "broken-unclip" in response.text
        assert broken.exists() and not broken.with_name(broken.name + ".corrupted").exists()  # Forge's wrappers
        assert "diffusers fallback" in forge.log_text()  # Forge's loader refused it, then the fallback did
    finally:
        broken.unlink()
        forge.post("/sdapi/v1/refresh-checkpoints")
    assert forge.options()["sd_model_checkpoint"] == BASE


def test_users_model_serves_the_next_txt2img(forge):
    response = txt2img(forge)
    assert response.status_code == 200, response.text
    text = infotexts(response)[0]
    assert "Model: real-sdxl-base" in text and "Reimagine" not in text
    assert forge.options()["sd_model_checkpoint"] == BASE
