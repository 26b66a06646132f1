"""SDXL Refiner post-step against a real WebUI 1.10.1 (tiny checkpoints, CPU): API, infotext, model restore, X/Y/Z."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import time
from typing import Any

import numpy as np
import pytest

from sd_reimagine.infotext import group_values
from sd_reimagine.schema import REFINER

SCRIPT = "Reimagine SDXL Refiner"
BASE = "tiny-sdxl-base"
REFINER_NAME = "tiny-sdxl-refiner"
SD15 = "tiny-sd15"
POSITIONAL = [True, REFINER_NAME, "handoff", 0.7, 0.3, 10, "", "", 5.0, "", "", 6.0, 2.5, False]


def job(
    webui, post: Any = None, *, path: str = "txt2img", model: str | None = BASE, **fields
) -> tuple[list[np.ndarray], list[str]]:
    """One txt2img/img2img request (64x64, 6 steps); returns (images as arrays, infotexts)."""
    response = request(webui, post, path=path, model=model, **fields)
    assert response.status_code == 200, response.text[:2000]
    body = response.json()
    return [decode(image) for image in body["images"]], json.loads(body["info"])["infotexts"]


def request(webui, post: Any = None, *, path: str = "txt2img", model: str | None = BASE, **fields):
    payload: dict[str, Any] = {
        "prompt": "a red crown",
        "negative_prompt": "blurry",
        "seed": 1,
        "steps": 6,
        "width": 64,
        "height": 64,
        "cfg_scale": 7,
        "sampler_name": "Euler a",
    }
    if model is not None:
        payload["override_settings"] = {"sd_model_checkpoint": model}
    if post is not None:
        payload["alwayson_scripts"] = {SCRIPT: {"args": post if isinstance(post, list) else [post]}}
    payload.update(fields)
    return webui.post(f"/sdapi/v1/{path}", json=payload)


def decode(b64: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(np.float64)


def fields_of(infotext: str) -> dict[str, str]:
    from sd_reimagine.infotext import parse_infotext

    return parse_infotext(infotext)[2]


def post_step(mode: str, **values) -> dict[str, Any]:
    return {"enabled": True, "refiner": REFINER_NAME, "refiner_mode": mode, **values}


def loaded_model_name(webui) -> str:
    """The model a plain job runs on (the `Model:` infotext key): the user's model as the WebUI loads it."""
    _, infotexts = job(webui, model=None)
    return fields_of(infotexts[0])["Model"]


@pytest.fixture(scope="module")
def plain_base(webui) -> np.ndarray:
    job(webui)  # warm-up: the first image after a model load may differ by 1/255
    images, _ = job(webui)
    return images[0]


@pytest.fixture()
def user_model(webui):
    """Select a user checkpoint through the options API for a test; the previous one is put back afterwards."""
    previous = webui.options()["sd_model_checkpoint"]

    def select(name: str) -> None:
        assert webui.post("/sdapi/v1/options", json={"sd_model_checkpoint": name}).status_code == 200

    yield select
    select(previous)


def test_refine_json_object_form(webui, plain_base):
    images, infotexts = job(webui, post_step("refine"))
    assert len(images) == 2  # refined + kept base
    assert np.abs(images[0] - plain_base).mean() > 1.0
    assert np.array_equal(images[1], plain_base)  # keep_base returns the base image unchanged
    refined, base = fields_of(infotexts[0]), fields_of(infotexts[1])
    assert refined["Post-refiner mode"] == "refine"
    assert refined["Post-refiner"].startswith(REFINER_NAME)
    assert "Refiner" not in refined and "Refiner switch at" not in refined
    assert base["Post-refiner output"] == "base" and "Post-refiner output" not in refined


def test_handoff_positional_form(webui, plain_base):
    images, infotexts = job(webui, POSITIONAL)
    assert len(images) == 1  # keep_base False
    assert np.abs(images[0] - plain_base).mean() > 1.0
    fields = fields_of(infotexts[0])
    assert fields["Post-refiner mode"] == "handoff"
    assert fields["Post-refiner switch at"] == "0.7"
    assert fields["Post-refiner handoff"].startswith("base ") and "(t >= 300)" in fields["Post-refiner handoff"]


def test_handoff_and_refine_differ_and_repeat(webui):
    handoff_a, _ = job(webui, post_step("handoff", keep_base=False))
    handoff_b, _ = job(webui, post_step("handoff", keep_base=False))
    # strength 0.6: the refiner runs 12 of 20 steps (tiny models at 0.3 stay within 1/255 of the handoff)
    refine, _ = job(webui, post_step("refine", keep_base=False, refine_strength=0.6))
    assert np.array_equal(handoff_a[0], handoff_b[0])
    assert np.abs(handoff_a[0] - refine[0]).mean() > 1.0


def test_png_info_round_trip(webui):
    values = post_step(
        "refine", refine_strength=0.45, refiner_steps=12, aesthetic_score=7.5, refiner_prompt="a gold, crown"
    )
    response = request(webui, values)
    assert response.status_code == 200
    png = response.json()["images"][0]
    parsed = webui.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64," + png}).json()["parameters"]
    got = group_values(REFINER, "", "", {k: str(v) for k, v in parsed.items()})
    assert got["refiner_mode"] == "refine"
    assert got["refine_strength"] == 0.45 and got["refiner_steps"] == 12 and got["aesthetic_score"] == 7.5
    assert got["refiner_prompt"] == "a gold, crown"
    assert got["refiner"].startswith(REFINER_NAME)


def test_infotext_paste_through_api(webui):
    """The API's `infotext` field fills the script's arguments through the PasteFields."""
    _, infotexts = job(webui, post_step("handoff", switch_at=0.6, keep_base=False))
    images, pasted = job(webui, None, infotext=infotexts[0])
    assert fields_of(pasted[0])["Post-refiner switch at"] == "0.6"


def test_sd15_base_takes_pixel_bridge(webui):
    for mode in ("refine", "handoff"):
        _, infotexts = job(webui, post_step(mode, keep_base=False), model=SD15)
        fields = fields_of(infotexts[0])
        assert fields["Model"] == SD15
        assert fields["Post-refiner bridge"].startswith("pixels")


def test_hires_fix_output_is_refined_through_pixels(webui):
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.6}
    images, infotexts = job(webui, post_step("refine", keep_base=False), **hires)
    assert images[0].shape == (128, 128, 3)
    assert fields_of(infotexts[0])["Post-refiner bridge"] == "pixels (hires fix output)"
    images, infotexts = job(webui, post_step("handoff", keep_base=False), **hires)
    assert "Post-refiner bridge" not in fields_of(infotexts[0])  # hires latents are handed over directly


def test_user_model_restored_after_success_and_error(webui, user_model):
    for name in (BASE, SD15):
        user_model(name)
        loaded_model_name(webui)  # loads it (the hash is known from here on)
        saved_hash = webui.options()["sd_checkpoint_hash"]
        job(webui, post_step("handoff"), model=None)
        assert webui.options()["sd_model_checkpoint"].startswith(name)
        assert webui.options()["sd_checkpoint_hash"] == saved_hash
        assert loaded_model_name(webui) == name
        response = request(webui, post_step("refine", refiner="no-such-refiner"), model=None)
        assert response.status_code == 422
        assert "no-such-refiner" in response.json()["errors"] and "exact title" in response.json()["errors"]
        assert loaded_model_name(webui) == name


def test_bad_value_is_a_readable_error(webui):
    response = request(webui, post_step("handoff", switch_at=5))
    assert response.status_code == 422
    assert response.json()["error"] == "RefusedJob"
    assert "switch_at=5" in response.json()["errors"]
    response = request(webui, post_step("handoff", refiner_sampler="DDIM"))
    assert "k-diffusion" in response.json()["errors"]


def test_builtin_refiner_is_switched_off(webui):
    _, infotexts = job(
        webui, post_step("handoff", keep_base=False), refiner_checkpoint=REFINER_NAME, refiner_switch_at=0.6
    )
    fields = fields_of(infotexts[0])
    assert "Refiner" not in fields
    assert "built-in refiner" in fields["Post-refiner note"]


def test_img2img_with_post_step(webui, plain_base):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(plain_base.astype(np.uint8)).save(buffer, format="PNG")
    init = base64.b64encode(buffer.getvalue()).decode()
    plain, _ = job(webui, path="img2img", init_images=[init], denoising_strength=0.6)
    for mode in ("handoff", "refine"):
        images, infotexts = job(
            webui, post_step(mode, keep_base=False), path="img2img", init_images=[init], denoising_strength=0.6
        )
        assert np.abs(images[0] - plain[0]).mean() > 1.0
        assert fields_of(infotexts[0])["Post-refiner mode"] == mode


def test_keep_base_is_saved_with_suffix(webui):
    """With saving on, the refined image and the base image (suffix -base) are both written."""
    started = time.time()
    settings = {"sd_model_checkpoint": BASE, "samples_save": True}
    job(webui, post_step("refine"), model=None, save_images=True, override_settings=settings, prompt="saved crown")
    saved = [p.name for p in (webui.data_dir / "outputs").rglob("*.png") if p.stat().st_mtime >= started - 1]
    assert len(saved) == 2 and sum(name.endswith("-base.png") for name in saved) == 1, saved


def test_selected_sd1_vae_is_not_applied_to_the_refiner(webui):
    vae_dir = webui.data_dir / "models" / "VAE"
    vae_dir.mkdir(parents=True, exist_ok=True)
    target = vae_dir / "tiny-sd15-vae.safetensors"
    code = (
        "import sys; from safetensors.torch import load_file, save_file; sd = load_file(sys.argv[1]); "
        "save_file({k[18:]: v.contiguous() for k, v in sd.items() if k.startswith('first_stage_model.')}, sys.argv[2])"
    )
    source = webui.models_dir / f"{SD15}.safetensors"
    subprocess.run([str(webui.python), "-c", code, str(source.resolve()), str(target)], check=True, timeout=120)
    assert webui.post("/sdapi/v1/refresh-vae").status_code == 200

    def run(vae: str):
        settings = {"sd_model_checkpoint": BASE, "sd_vae": vae}
        return job(webui, post_step("refine"), model=None, override_settings=settings)[0]

    before, with_vae, after = run("Automatic"), run(target.name), run("Automatic")
    assert np.array_equal(before[0], with_vae[0])  # the refined image is decoded by the refiner's own VAE
    assert np.abs(before[1] - with_vae[1]).mean() > 1.0  # the base image does use the selected VAE
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])  # nothing leaks


def axis_choices(webui) -> list[str]:
    config = webui.get("/config").json()
    for component in config["components"]:
        if component.get("props", {}).get("elem_id") == "script_txt2img_xyz_plot_x_type":
            return [c if isinstance(c, str) else c[0] for c in component["props"]["choices"]]
    raise AssertionError("X/Y/Z plot x type dropdown not found")


def test_xyz_axes_registered_and_run(webui):
    assert "reimagine sdxl refiner" in webui.get("/sdapi/v1/scripts").json()["txt2img"]
    choices = axis_choices(webui)
    for label in ("Post-refiner checkpoint", "Post-refiner switch at", "Post-refiner strength", "Post-refiner steps"):
        assert label in choices
    assert "Post-refiner aesthetic score" in choices
    xyz_args = [choices.index("Post-refiner switch at"), "0.5,0.9", [], 0, "", [], 0, "", []]
    xyz_args += [True, True, False, False, False, False, False, 0, False]
    _, infotexts = job(
        webui, {"enabled": False, "refiner": REFINER_NAME}, script_name="x/y/z plot", script_args=xyz_args
    )
    switch = [fields_of(t).get("Post-refiner switch at") for t in infotexts[1:]]
    assert switch == ["0.5", "0.9"]  # the axis also enables the post-step


def seconds(webui, **fields) -> float:
    started = time.perf_counter()
    response = request(webui, **fields)
    assert response.status_code == 200, response.text[:1000]
    return time.perf_counter() - started


def test_timing_post_step_vs_builtin_refiner(webui):
    """Batch count 4, same switch point: post-step handoff vs the built-in refiner (alternating runs, medians)."""
    common = {"n_iter": 4, "steps": 10}
    variants = {
        "base": {},
        "post-step handoff": {"post": post_step("handoff", switch_at=0.8, keep_base=False)},
        "built-in refiner": {"refiner_checkpoint": REFINER_NAME, "refiner_switch_at": 0.8},
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(6):
        for name, fields in variants.items():
            elapsed = seconds(webui, **common, **fields)
            if round_index:  # the first round warms up
                times[name].append(elapsed)
    medians = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
    print("\nbatch count 4, 64x64, 10 steps, median of 5: " + ", ".join(f"{k} {v:.3f} s" for k, v in medians.items()))


def test_user_model_restored_after_interrupt_in_the_refiner_pass(webui, user_model):
    import threading

    user_model(BASE)
    post = post_step("refine", refine_strength=1.0, refiner_steps=150, keep_base=False)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(response=request(webui, post, model=None, width=128)))
    worker.start()
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        state = webui.get("/sdapi/v1/progress?skip_current_image=true").json()["state"]
        if state.get("sampling_steps") == 150 and state.get("sampling_step", 0) > 0:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the refiner pass was not seen in /sdapi/v1/progress")
    webui.post("/sdapi/v1/interrupt")
    worker.join(timeout=120)
    assert result["response"].status_code == 200
    assert loaded_model_name(webui) == BASE
    assert webui.options()["sd_model_checkpoint"].startswith(BASE)
