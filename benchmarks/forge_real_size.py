"""The SDXL post-step against Forge's own refiner, in a real Forge on CPU with real-architecture checkpoints.

`REIMAGINE_FORGE_DIR=/path/to/forge PYTHONPATH=. .venv/bin/python -m benchmarks.forge_real_size MODELS_DIR
[--jobs ours:1:on,forge:1,ours:4:off,ours:4:on,forge:4] [--reps 1]`. MODELS_DIR holds the random-weight float16
`real-sdxl-base` and `real-sdxl-refiner` (`python -m sd_reimagine make-real-size-models --forge FORGE MODELS_DIR`).
Each job spec is `ours:batch_count:one_residency(on|off)` (the post-step, handoff at 0.5) or `forge:batch_count`
(Forge's refiner, switch at 0.5), 64x64, 4 steps, followed by a 1-step job on the user's model (the base) so that
both are charged their way back to it. Each row: wall time, Forge's CPU time, the model loads its log shows and the
peak memory, medians over the repetitions (after one warm-up job).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.process_memory import PeakSampler, process_cpu_s
from benchmarks.webui_real_size import RESIDENCY_SPECS
from sd_reimagine.webui.settings import REFINER_RESIDENCY
from tests.forge.conftest import BASE, REFINER, Forge, build_models, forge_root, free_port, make_data_dir

LOADED = re.compile(r"Model loaded in [0-9.]+s")
POST_STEP = "Reimagine SDXL Refiner"
# Forge's refiner switches when step / steps reaches the switch point: at 4 steps 0.8 is never reached, 0.5 is.
SWITCH = 0.5
USER_JOB = {"prompt": "a red crown", "seed": 7, "steps": 1, "width": 64, "height": 64, "sampler_name": "Euler"}


def common(count: int) -> dict[str, Any]:
    return {**USER_JOB, "steps": 4, "n_iter": count, "save_images": False}


def ours(count: int) -> dict[str, Any]:
    post = {"enabled": True, "refiner": REFINER, "refiner_mode": "handoff", "switch_at": SWITCH, "keep_base": False}
    return common(count) | {"alwayson_scripts": {POST_STEP: {"args": [post]}}}


def forge(count: int) -> dict[str, Any]:
    return common(count) | {"refiner_checkpoint": REFINER, "refiner_switch_at": SWITCH}


def timed(server: Forge, body: dict[str, Any], ceiling_gib: float) -> dict[str, float]:
    """One job then the user's 1-step job: wall, Forge CPU seconds, loads in the log, peak memory (Forge is killed
    past `ceiling_gib` of anonymous memory and the row says so)."""
    log_start, cpu = len(server.log_text()), process_cpu_s(server.process.pid)
    started = time.perf_counter()
    with PeakSampler(server.process.pid, ceiling_gib) as peak:
        try:
            for payload in (body, USER_JOB):
                response = server.post("/sdapi/v1/txt2img", json=payload, timeout=3600)
                if response.status_code != 200:
                    raise RuntimeError(f"txt2img answered {response.status_code}: {response.text[:2000]}")
        except Exception:
            if not peak.killed:
                raise
    if peak.killed:
        return {"killed_after_s": time.perf_counter() - started, "peak_anon_gib": peak.anon_gib}
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": process_cpu_s(server.process.pid) - cpu,
        "loads": len(LOADED.findall(server.log_text()[log_start:])),
        "peak_rss_gib": peak.rss_gib,
    }


def bench(server: Forge, jobs: list[str], reps: int, ceiling_gib: float) -> list[dict[str, Any]]:
    """Each spec in turn, `reps` times, after one warm-up job; one row of medians per spec (a kill ends the run)."""
    assert server.post("/sdapi/v1/options", json={"sd_model_checkpoint": BASE}, timeout=3600).status_code == 200
    timed(server, ours(1), ceiling_gib)  # warm-up: the first job pays Forge's first loads
    runs: dict[str, list] = {spec: [] for spec in jobs}
    for _ in range(reps):
        for spec in jobs:
            name, count, *setting = spec.split(":")
            residency = {REFINER_RESIDENCY: RESIDENCY_SPECS[setting[0] if setting else "off"]}
            server.post("/sdapi/v1/options", json=residency)
            result = timed(server, (ours if name == "ours" else forge)(int(count)), ceiling_gib)
            print(json.dumps({"job": spec, **result}), flush=True)
            runs[spec].append(result)
            if "killed_after_s" in result:
                return medians({k: v for k, v in runs.items() if v})
    return medians(runs)


def medians(runs: dict[str, list]) -> list[dict[str, Any]]:
    return [{"job": spec, **{k: statistics.median(r[k] for r in rows) for k in rows[0]}} for spec, rows in runs.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forge_real_size", description=__doc__)
    parser.add_argument("models", type=Path)
    parser.add_argument("--jobs", default="ours:1:on,forge:1,ours:4:off,ours:4:on,forge:4")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--kill-above-gib", type=float, default=19.0, help="anonymous memory ceiling for Forge")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/forge-real-size.json"))
    args = parser.parse_args(argv)
    root = forge_root()
    if root is None:
        parser.error("set REIMAGINE_FORGE_DIR to a Forge checkout")
    models = build_models(root, args.models.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-forge-") as scratch:
        data_dir = make_data_dir(Path(scratch) / "data", models)
        server = Forge(root, data_dir, free_port(), data_dir / "forge.log")
        server.start()
        try:
            rows = bench(server, args.jobs.split(","), args.reps, args.kill_above_gib)
        finally:
            server.stop()
    for row in rows:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
