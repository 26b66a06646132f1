"""The same unCLIP-H job on A1111 1.10.1 and on Forge's own engine, both float32 on CPU with the k-diffusion Euler
sampler: how far apart the images are, beside how far a changed seed moves them.

`REIMAGINE_WEBUI_DIR=/path/to/a1111 REIMAGINE_FORGE_DIR=/path/to/forge PYTHONPATH=. .venv/bin/python -m
benchmarks.forge_vs_a1111_unclip FILE`; FILE is a real-size unCLIP-H checkpoint (`make-real-size-models`). One host at
a time: A1111 (the project's A1111 adapter, the ldm model and its embedder), then Forge without `--unet-in-bf16
--clip-in-fp16` (float32 weights). Each runs seeds S and S + 1 (64x64, 8 steps, Euler, noise level 0, CFG 5, one
reference). Printed: mean and max absolute pixel difference (0-255) A1111 vs Forge at seed S, and seed S vs S + 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tests.forge.conftest import FLAGS, Forge, forge_root
from tests.forge.conftest import make_data_dir as forge_data_dir
from tests.forge.test_forge_api import pixels
from tests.forge.test_forge_unclip import reference
from tests.webui.conftest import WebUI, build_tiny_models, free_port, make_data_dir, webui_root

SEED = 21
JOB = {"prompt": "a cat", "steps": 8, "width": 64, "height": 64, "sampler": "Euler", "schedule_type": "Automatic"}
JOB |= {"noise_level": 0, "cfg_scale": 5.0, "n": 1}


def run_jobs(server, model: str) -> list[np.ndarray]:
    """Seeds SEED and SEED + 1 on `model`; the images as int16 arrays."""
    images = []
    for seed in (SEED, SEED + 1):
        body = {**JOB, "seed": seed, "model": model, "images": [{"image": reference(), "weight": 1}]}
        response = server.post("/reimagine/v1/variations", json=body, timeout=3600)
        if response.status_code != 200:
            raise RuntimeError(f"variations answered {response.status_code}: {response.text[:2000]}")
        images.append(pixels(response.json()["images"][0]))
    return images


def a1111_images(root: Path, file: Path, scratch: Path) -> list[np.ndarray]:
    tiny = scratch / "tiny"
    tiny.mkdir()
    build_tiny_models(root, tiny)
    data_dir = make_data_dir(scratch / "a1111", tiny)
    (data_dir / "models" / "Stable-diffusion" / file.name).symlink_to(file)
    webui = WebUI(root, data_dir, tiny, free_port(), data_dir / "webui.log")
    webui.start()
    try:
        return run_jobs(webui, file.stem)
    finally:
        webui.stop()


def forge_images(root: Path, file: Path, scratch: Path) -> list[np.ndarray]:
    models = scratch / "forge-models"
    models.mkdir()
    (models / file.name).symlink_to(file)
    data_dir = forge_data_dir(scratch / "forge", models)
    float32 = [flag for flag in FLAGS if flag not in ("--unet-in-bf16", "--clip-in-fp16")]
    server = Forge(root, data_dir, free_port(), data_dir / "forge.log", base_flags=float32)
    server.start()
    try:
        return run_jobs(server, file.name)
    finally:
        server.stop()


def difference(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"mean": round(float(delta.mean()), 2), "max": float(delta.max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forge_vs_a1111_unclip", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/forge-vs-a1111-unclip.json"))
    args = parser.parse_args(argv)
    a1111, forge = webui_root(), forge_root()
    if a1111 is None or forge is None:
        parser.error("set REIMAGINE_WEBUI_DIR and REIMAGINE_FORGE_DIR")
    file = args.file.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-forge-a1111-") as scratch:
        ours = a1111_images(a1111, file, Path(scratch))
        theirs = forge_images(forge, file, Path(scratch))
    row: dict[str, Any] = {
        "a1111_vs_forge_same_seed": difference(ours[0], theirs[0]),
        "a1111_vs_forge_seed_plus_1": difference(ours[1], theirs[1]),
        "a1111_seed_vs_seed_plus_1": difference(ours[0], ours[1]),
        "forge_seed_vs_seed_plus_1": difference(theirs[0], theirs[1]),
    }
    print(json.dumps(row, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
