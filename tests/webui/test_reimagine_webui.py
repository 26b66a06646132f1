"""Reimagine inside a real WebUI 1.10.1 (tiny checkpoints, CPU): API, reproducibility, errors, model restore."""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sd_reimagine import __version__
from sd_reimagine.infotext import Lineage, group_values, parse_infotext
from sd_reimagine.schema import REIMAGINE

from .conftest import OFFLINE_FLAGS, make_data_dir, webui_env

UNCLIP = "tiny-unclip-h"
USER_MODEL = "tiny-sd15"
FIELDS = [
    "model",
    "prompt",
    "negative_prompt",
    "noise_level",
    "image_text_mix",
    "structure_strength",
    "n",
    "seed",
    "steps",
    "cfg_scale",
    "sampler",
    "schedule_type",
    "width",
    "height",
]
TIMINGS: dict[str, list[float]] = {}


def noise_png(seed: int, size: tuple[int, int] = (64, 64), infotext: str | None = None) -> str:
    pixels = (np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype("uint8")
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if infotext:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("parameters", infotext)
        image.save(buffer, "PNG", pnginfo=info)
    else:
        image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def solid_png(colour: tuple[int, int, int], size: tuple[int, int] = (80, 48)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(np.int16)


def body(**overrides) -> dict:
    values = {"model": UNCLIP, "seed": 1, "steps": 4, "width": 64, "height": 64, "sampler": "Euler a"}
    values.setdefault("images", [{"image": noise_png(0), "weight": 1.0}])
    values.update(overrides)
    return values


def variations(webui, **overrides) -> dict:
    response = webui.post("/reimagine/v1/variations", json=body(**overrides))
    assert response.status_code == 200, response.text
    result = response.json()
    for key in ("swap_s", "restore_s", "sampling_s", "total_s"):
        if key in result.get("timings", {}):
            TIMINGS.setdefault(key, []).append(result["timings"][key])
    return result


def loaded(webui) -> str:
    return webui.get("/reimagine/v1/models").json()["loaded"]


def assert_user_model_back(webui) -> None:
    assert loaded(webui).startswith(USER_MODEL), loaded(webui)
    assert webui.options()["sd_model_checkpoint"].startswith(USER_MODEL)


@pytest.fixture(scope="module", autouse=True)
def user_state(webui):
    """The user's own choice before these tests (other test modules may have changed it): tiny-sd15, no VAE."""
    options = {"sd_model_checkpoint": f"{USER_MODEL}.safetensors", "sd_vae": "Automatic"}
    assert webui.post("/sdapi/v1/options", json=options).status_code == 200
    return webui


@pytest.fixture(scope="module")
def warm(webui):
    """One job first: the first image after a model load may differ by 1/255 from later identical ones."""
    variations(webui)
    return webui


def test_version_schema_models(webui):
    version = webui.get("/reimagine/v1/version").json()
    assert version["name"] == "sd-webui-reimagine" and version["version"] == __version__
    schema = webui.get("/reimagine/v1/schema").json()
    assert set(FIELDS) <= set(schema["properties"]) and "images" in schema["properties"]
    assert schema["properties"]["noise_level"]["maximum"] == 999
    assert "Euler a" in schema["properties"]["sampler"]["enum"]
    models = webui.get("/reimagine/v1/models").json()
    unclip = models["kinds"]["unclip-h"] + models["kinds"]["unclip-l"] + models["kinds"]["unclip"]
    assert any(t.startswith(UNCLIP) for t in unclip)
    assert any(t.startswith("tiny-sdxl-base") for t in models["kinds"]["sdxl-base"])
    assert any(t.startswith("tiny-sdxl-refiner") for t in models["kinds"]["sdxl-refiner"])
    assert models["default"].startswith(UNCLIP)
    assert models["loaded"].startswith(USER_MODEL)


def test_same_seed_reproduces_other_inputs_change(warm):
    base = variations(warm)["images"][0]
    assert np.array_equal(pixels(base), pixels(variations(warm)["images"][0]))
    two = [{"image": noise_png(0), "weight": 1.0}, {"image": solid_png((250, 20, 20)), "weight": 1.0}]
    mixed = variations(warm, images=two)["images"][0]
    changed = {
        "seed": variations(warm, seed=2)["images"][0],
        "noise_level": variations(warm, noise_level=600)["images"][0],
        "weights": variations(warm, images=[two[0], {**two[1], "weight": 4.0}])["images"][0],
        "prompt": variations(warm, prompt="a red house")["images"][0],
        "image_text_mix": variations(warm, image_text_mix=1.0)["images"][0],
        "structure_strength": variations(warm, structure_strength=0.5)["images"][0],
    }
    for name, image in changed.items():
        reference = mixed if name == "weights" else base
        diff = np.abs(pixels(image) - pixels(reference)).mean()
        assert diff > 0.5, f"{name} changed nothing (mean |diff| {diff:.3f})"


def test_n_images_have_consecutive_seeds_and_match_single_jobs(warm):
    job = variations(warm, n=3, seed=40)
    assert job["seeds"] == [40, 41, 42] and len(job["images"]) == 3
    for index in (0, 2):
        single = variations(warm, seed=40 + index)
        assert np.array_equal(pixels(job["images"][index]), pixels(single["images"][0])), index
    assert f"Seed: {41}" in job["info"][1]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"noise_level": 1000}, "noise_level"),
        ({"width": 65}, "width"),
        ({"images": [{"image": noise_png(0), "weight": -1}]}, "weight"),
        ({"images": None}, "images"),
        ({"images": []}, "images"),
        ({"images": [{"image": base64.b64encode(b"not an image at all").decode()}]}, "images"),
        ({"images": [{"image": "%%% not base64"}]}, "images"),
        ({"sampler": "No such sampler"}, "sampler"),
        ({"model": "no-such-model"}, "model"),
        ({"model": "tiny-sdxl-refiner"}, "model"),  # an SDXL base is Reimagine XL (test_reimagine_xl_webui.py)
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_is_422_naming_the_field(webui, overrides, field):
    request = body(**overrides)
    if overrides.get("images", 0) is None:
        request.pop("images")
    response = webui.post("/reimagine/v1/variations", json=request)
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()), response.text
    assert_user_model_back(webui)


def test_user_model_restored_after_a_job(warm):
    job = variations(warm)
    assert job["parameters"]["model"].startswith(UNCLIP)
    assert "Model: tiny-unclip-h" in job["info"][0]
    assert_user_model_back(warm)
    log = warm.log_text()
    assert "Reimagine: swap to tiny-unclip-h" in log and "Reimagine: restore to tiny-sd15" in log


def fake_checkpoint(path: Path, tensors: dict[str, list[int]]) -> Path:
    """A safetensors file of zero tensors with the given names and shapes (float32)."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


def test_user_model_restored_after_an_error_inside_the_job(warm, tmp_path):
    """A checkpoint whose header says unCLIP but that the WebUI loads as SD 1.x: the job fails after the swap."""
    from safetensors.numpy import load_file, save_file

    sd15 = warm.tiny_dir / "tiny-sd15.safetensors"
    tensors = load_file(str(sd15))
    tensors["embedder.model.ln_final.weight"] = np.ones(32, dtype=np.float32)
    target = warm.models_dir / "tiny-fake-unclip.safetensors"
    save_file(tensors, str(target))
    (warm.models_dir / "tiny-fake-unclip.yaml").write_text((warm.tiny_dir / "tiny-sd15.yaml").read_text())
    try:
        assert warm.post("/sdapi/v1/refresh-checkpoints").status_code == 200
        response = warm.post("/reimagine/v1/variations", json=body(model="tiny-fake-unclip"))
        assert response.status_code == 422, response.text
        assert "model" in response.text and "did not load it as one" in response.text
        assert "Reimagine: swap to tiny-fake-unclip" in warm.log_text()
        assert_user_model_back(warm)
        assert variations(warm)["images"]
    finally:
        target.unlink()
        (warm.models_dir / "tiny-fake-unclip.yaml").unlink()
        warm.post("/sdapi/v1/refresh-checkpoints")


def test_user_model_restored_after_interrupt(warm):
    result: dict = {}

    def run() -> None:
        long_job = body(steps=150, width=256, height=256, n=4, seed=7)
        result["response"] = warm.post("/reimagine/v1/variations", json=long_job)

    thread = threading.Thread(target=run)
    thread.start()
    seen_progress, deadline = None, time.time() + 60
    while time.time() < deadline and thread.is_alive():
        progress = warm.get("/sdapi/v1/progress?skip_current_image=true").json()
        # /sdapi/v1/progress's current_task is always null in 1.10.1 (imported by value); the state is live
        if progress["state"]["sampling_step"] > 0 and progress["progress"] > 0:
            seen_progress = progress
            break
        time.sleep(0.05)
    assert seen_progress is not None, "the job never showed in /sdapi/v1/progress"
    warm.post("/sdapi/v1/interrupt")
    thread.join(timeout=120)
    response = result["response"]
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["interrupted"] is True and len(job["images"]) < 4
    assert_user_model_back(warm)


def test_infotext_keys_paste_back_and_lineage(warm):
    job = variations(warm, noise_level=250, image_text_mix=0.25, prompt="a, quoted: prompt")
    prompt, negative, fields = parse_infotext(job["info"][0])
    assert prompt == "a, quoted: prompt"
    for key in ("Reimagine noise level", "Reimagine image/text mix", "Reimagine structure strength"):
        assert key in fields
    values = group_values(REIMAGINE.replace(REIMAGINE["sampler"].with_choices(["Euler a"])), prompt, negative, fields)
    assert values["noise_level"] == 250 and values["image_text_mix"] == 0.25 and values["seed"] == 1
    assert (values["width"], values["height"]) == (64, 64) and values["steps"] == 4
    first = Lineage.from_fields(fields)
    assert first.generation == 1 and not first.parents
    image = base64.b64decode(job["images"][0])
    assert b"Reimagine generation" in image  # infotext in the PNG
    child = variations(warm, images=[{"image": job["images"][0], "weight": 1.0}])
    lineage = Lineage.from_fields(parse_infotext(child["info"][0])[2])
    assert lineage.generation == 2 and lineage.parents == (lineage.references[0][0],)


def test_clip_l_absent_offline_is_explained(warm):
    if (Path.home() / ".cache" / "clip" / "ViT-L-14.pt").exists():
        pytest.skip("OpenAI CLIP ViT-L/14 is cached on this machine")
    path = warm.models_dir / "tiny-fake-unclip-l.safetensors"
    fake = fake_checkpoint(path, {"embedder.model.ln_final.weight": [768]})
    try:
        warm.post("/sdapi/v1/refresh-checkpoints")
        assert any("tiny-fake-unclip-l" in t for t in warm.get("/reimagine/v1/models").json()["kinds"]["unclip-l"])
        response = warm.post("/reimagine/v1/variations", json=body(model="tiny-fake-unclip-l"))
        assert response.status_code == 422 and "ViT-L/14" in response.text and "offline" in response.text
        assert_user_model_back(warm)
    finally:
        fake.unlink()
        warm.post("/sdapi/v1/refresh-checkpoints")


NATIVE_PROBE = r"""
import json, os, sys
root, data = sys.argv[1], sys.argv[2]
os.chdir(root)
sys.path.insert(0, root)
sys.argv = ["launch.py", *json.loads(sys.argv[3]), "--data-dir", data]
import launch  # noqa: F401  (parses the flags, runs extension preloads)
import webui  # noqa: F401
from modules import initialize, processing, shared
initialize.initialize()
import numpy as np, torch
from PIL import Image
from sd_reimagine.images import open_image
from sd_reimagine.reimagine_plan import ReimagineFacts, plan_reimagine
from sd_reimagine.webui.a1111.reimagine import ReimagineConditioning, image_tensor
from sd_reimagine.webui.a1111.swap import swapped_model

image = Image.fromarray((np.random.RandomState(3).rand(72, 56, 3) * 255).astype("uint8"))
out = {}
plan = plan_reimagine({"noise_level": 0}, [(open_image(image), 1.0)], ReimagineFacts("tiny-unclip-h"))
with swapped_model("tiny-unclip-h"):
    model = shared.sd_model
    p = processing.StableDiffusionProcessing()
    for seed in (1234, 99):
        ours = ReimagineConditioning(plan).for_seeds(model, [seed])
        torch.manual_seed(seed)
        with torch.no_grad():
            native = p.unclip_image_conditioning(image_tensor(image).to(shared.device))
        out[seed] = {"equal": bool(torch.equal(ours, native)), "max_abs": float((ours - native).abs().max()),
                     "shape": list(ours.shape), "other_seed_differs": None}
    a = ReimagineConditioning(plan).for_seeds(model, [1, 2])
    out["seeds_differ"] = bool((a[0] - a[1]).abs().max() > 0)
print("RESULT " + json.dumps(out))
"""


def test_conditioning_equals_native_unclip_image_conditioning(webui_tiny_models, tmp_path):
    """One reference, weight 1, noise level 0: our c_adm is the WebUI's native unclip_image_conditioning, bit for bit.

    The native path draws its (tiny) level-0 noise from the global RNG; seeding that RNG with the image seed makes the
    two draws the same, so any difference would be in the computation itself. Runs in the WebUI's Python, in-process.
    """
    from .conftest import webui_python, webui_root

    root = webui_root()
    data_dir = make_data_dir(tmp_path / "data", webui_tiny_models)
    script = tmp_path / "native_probe.py"
    script.write_text(NATIVE_PROBE, encoding="utf-8")
    flags = [f for f in OFFLINE_FLAGS if f not in ("--api", "--api-server-stop")]
    command = [str(webui_python(root)), str(script), str(root), str(data_dir), json.dumps(flags)]
    result = subprocess.run(command, cwd=root, env=webui_env(root), capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"probe failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = json.loads(lines[-1][len("RESULT ") :])
    for seed in ("1234", "99"):
        assert out[seed]["equal"], out
        assert out[seed]["shape"] == [1, 64]
    assert out["seeds_differ"]


def test_zz_report_swap_timings(webui, capsys):
    swaps = [line for line in webui.log_text().splitlines() if line.startswith("Reimagine: ")]
    assert any(" swap to " in line for line in swaps) and any(" restore to " in line for line in swaps)
    with capsys.disabled():
        print(f"\nWebUI startup {webui.startup_seconds:.1f} s; Reimagine swap log:")
        for line in swaps:
            print("  " + line)
        for key, values in sorted(TIMINGS.items()):
            values = sorted(values)
            print(f"  {key}: n={len(values)} median {values[len(values) // 2]:.3f} s, max {values[-1]:.3f} s")


def test_swap_times_are_read_from_the_swap_module(warm):
    last = warm.get("/reimagine/v1/swaps?after=999999999").json()["last"]
    variations(warm)
    swaps = warm.get(f"/reimagine/v1/swaps?after={last}").json()["swaps"]
    assert [s["action"] for s in swaps] == ["swap", "restore"], swaps
    assert swaps[0]["to"].startswith(UNCLIP) and swaps[1]["to"].startswith(USER_MODEL)
    assert all(s["seconds"] >= 0 and s["number"] > last for s in swaps)
