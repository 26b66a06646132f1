"""Stable unCLIP in a real Forge on CPU: Forge's own engine against the diffusers fallback, real-architecture
random-weight checkpoints alone in models/Stable-diffusion.

`REIMAGINE_FORGE_DIR=/path/to/forge PYTHONPATH=. .venv/bin/python -m benchmarks.forge_unclip MODELS_DIR
[--paths forge,diffusers] [--model real-unclip-h.safetensors]`. MODELS_DIR as for the Forge tests
(`python -m sd_reimagine make-real-size-models --forge FORGE MODELS_DIR`). For each path a fresh Forge is started
(one at a time; the diffusers one with REIMAGINE_FORGE_UNCLIP=diffusers), the user's model (the SDXL base) serves a
1-step txt2img, then two identical Reimagine jobs run (64x64, 4 steps, one reference), then the user's txt2img again.
Each row: wall time, Forge's CPU time, the model loads its log shows, peak RSS, and the job's own timings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.process_memory import PeakSampler, process_cpu_s
from tests.forge.conftest import BASE, UNCLIP, Forge, build_models, forge_root, free_port, make_data_dir
from tests.forge.test_forge_unclip import reference

LOADED = re.compile(r"Model loaded in [0-9.]+s")
USER_JOB = {"prompt": "a red crown", "seed": 7, "steps": 1, "width": 64, "height": 64, "sampler_name": "Euler"}
JOB = {"prompt": "a cat", "seed": 5, "steps": 4, "width": 64, "height": 64, "sampler": "Euler", "n": 1}
PATH_ENV = "REIMAGINE_FORGE_UNCLIP"


def timed(server: Forge, route: str, body: dict[str, Any], ceiling_gib: float) -> dict[str, Any]:
    """One request: wall, Forge CPU seconds, loads in the log, peak RSS and (for Reimagine) the job's timings."""
    log_start, cpu = len(server.log_text()), process_cpu_s(server.process.pid)
    started = time.perf_counter()
    with PeakSampler(server.process.pid, ceiling_gib) as peak:
        response = server.post(route, json=body, timeout=3600)
    if response.status_code != 200:
        raise RuntimeError(f"{route} answered {response.status_code}: {response.text[:2000]}")
    answer = response.json()
    row = {
        "wall_s": time.perf_counter() - started,
        "cpu_s": process_cpu_s(server.process.pid) - cpu,
        "loads": len(LOADED.findall(server.log_text()[log_start:])),
        "peak_rss_gib": peak.rss_gib,
    }
    if "timings" in answer:
        engine = [p.split(": ", 1)[1] for p in answer["info"][0].split(", ") if p.startswith("Reimagine engine: ")]
        row |= {"engine": engine[0] if engine else "?", "timings": answer["timings"]}
    return row


def bench_path(root: Path, models: Path, path: str, model: str, ceiling_gib: float) -> list[dict[str, Any]]:
    """A fresh Forge for one path: the user's job, two Reimagine jobs, the user's job again."""
    reimagine = {**JOB, "model": model, "images": [{"image": reference(), "weight": 1}]}
    steps = [
        ("user txt2img", "/sdapi/v1/txt2img", USER_JOB),
        ("reimagine 1", "/reimagine/v1/variations", reimagine),
        ("reimagine 2", "/reimagine/v1/variations", reimagine),
        ("user txt2img after", "/sdapi/v1/txt2img", USER_JOB),
    ]
    saved = os.environ.pop(PATH_ENV, None)
    if path == "diffusers":
        os.environ[PATH_ENV] = "diffusers"
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-forge-unclip-") as scratch:
            data_dir = make_data_dir(Path(scratch) / "data", models)
            server = Forge(root, data_dir, free_port(), data_dir / "forge.log")
            server.start()
            try:
                assert server.post("/sdapi/v1/options", json={"sd_model_checkpoint": BASE}).status_code == 200
                for name, route, body in steps:
                    row = {"path": path, "step": name, **timed(server, route, body, ceiling_gib)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            finally:
                server.stop()
    finally:
        os.environ.pop(PATH_ENV, None)
        if saved is not None:
            os.environ[PATH_ENV] = saved
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forge_unclip", description=__doc__)
    parser.add_argument("models", type=Path)
    parser.add_argument("--paths", default="forge,diffusers")
    parser.add_argument("--model", default=UNCLIP)
    parser.add_argument("--kill-above-gib", type=float, default=19.0, help="anonymous memory ceiling for Forge")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/forge-unclip.json"))
    args = parser.parse_args(argv)
    root = forge_root()
    if root is None:
        parser.error("set REIMAGINE_FORGE_DIR to a Forge checkout")
    models = build_models(root, args.models.resolve())
    rows = []
    for path in args.paths.split(","):
        rows += bench_path(root, models, path, args.model, args.kill_above_gib)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
