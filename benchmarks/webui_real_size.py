"""The SDXL post-step on checkpoints large enough that loads are real, in a real WebUI 1.10.1 on CPU.

`REIMAGINE_WEBUI_DIR=/path/to/webui PYTHONPATH=. .venv/bin/python -m benchmarks.webui_real_size MODELS_DIR
[--limit 1] [--jobs ours:1:on,builtin:1:on,ours:4:off,ours:4:on,builtin:2:on] [--reps 1]`.
MODELS_DIR holds `big-sdxl-base` and `big-sdxl-refiner` (SDXL-shaped
UNets, float16, ~3 GB each: `python -m sd_reimagine make-tiny-models --webui --scale 10 MODELS_DIR` with the WebUI's
Python and its `repositories/stable-diffusion-stability-ai` and `repositories/generative-models` on PYTHONPATH).
Each job spec is `method:batch_count:residency`: ours (the post-step, handoff at 0.8, one refiner residency `on`,
batch by batch `off`, or the plan's choice `auto`) or the WebUI's built-in refiner (switch at 0.8); they run in turn
after a warm-up round, each followed by a 1-step job on the user's model. Each row: wall time, the WebUI process's
CPU time, the checkpoint loads and reuses its log shows, and the job's sampled peak RSS and anonymous RSS, medians
over the repetitions; the WebUI log is copied beside `--out`. Past `--kill-above-gib` of anonymous memory the WebUI
is killed, the row says so and the run ends. The built-in refiner at batch count 4 is left out by default: at limit
1 on 3 GB checkpoints its memory grows past 16 GiB (OOM-killed on a 24 GiB machine); at limit 2 it runs in 12.4 GiB.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.process_memory import PeakSampler, process_cpu_s
from sd_reimagine.refiner_plan import RESIDENCY_AUTO, RESIDENCY_BATCH, RESIDENCY_ONE
from sd_reimagine.webui.settings import REFINER_RESIDENCY
from tests.webui.conftest import WebUI, free_port, make_data_dir, webui_root

BASE, REFINER = "big-sdxl-base", "big-sdxl-refiner"
RESIDENCY_SPECS = {"on": RESIDENCY_ONE, "off": RESIDENCY_BATCH, "auto": RESIDENCY_AUTO}
LOADED = re.compile(r"(?:Weights|Model) loaded in [0-9.]+s")
REUSED = re.compile(r"Using already loaded model")


def common(count: int) -> dict[str, Any]:
    return {
        "prompt": "a red crown",
        "seed": 7,
        "steps": 4,
        "width": 64,
        "height": 64,
        "sampler_name": "Euler",
        "n_iter": count,
        "save_images": False,
    }


def ours(count: int) -> dict[str, Any]:
    post = {"enabled": True, "refiner": REFINER, "refiner_mode": "handoff", "switch_at": 0.8, "keep_base": False}
    return common(count) | {"alwayson_scripts": {"Reimagine SDXL Refiner": {"args": [post]}}}


def builtin(count: int) -> dict[str, Any]:
    return common(count) | {"refiner_checkpoint": f"{REFINER}.safetensors", "refiner_switch_at": 0.8}


USER_JOB = {"prompt": "", "steps": 1, "width": 64, "height": 64, "seed": 1, "save_images": False}
METHODS = {"ours": ours, "builtin": builtin}


def timed(webui: WebUI, body: dict[str, Any], ceiling_gib: float | None = None) -> dict[str, float]:
    """One job, then a 1-step job on the user's model: the built-in refiner leaves the refiner loaded and pays the
    base reload in the next job, so both are charged their way back to the user's model. Peak memory is sampled;
    past `ceiling_gib` of anonymous memory the WebUI is killed and the row says so."""
    log_start, cpu = len(webui.log_text()), process_cpu_s(webui.process.pid)
    started = time.perf_counter()
    with PeakSampler(webui.process.pid, ceiling_gib) as peak:
        try:
            for payload in (body, USER_JOB):
                response = webui.post("/sdapi/v1/txt2img", json=payload, timeout=3600)
                if response.status_code != 200:
                    raise RuntimeError(f"txt2img answered {response.status_code}: {response.text[:2000]}")
        except Exception:
            if not peak.killed:
                raise
    wall = time.perf_counter() - started
    memory = {"peak_rss_gib": peak.rss_gib, "peak_anon_gib": peak.anon_gib}
    if peak.killed:
        return {"killed_after_s": wall, **memory}
    log = webui.log_text()[log_start:]
    cpu = process_cpu_s(webui.process.pid) - cpu
    counts = {"loads": len(LOADED.findall(log)), "reused": len(REUSED.findall(log))}
    return {"wall_s": wall, "cpu_s": cpu, **counts, **memory}


def bench(webui: WebUI, limit: int, jobs: list[str], reps: int, ceiling_gib: float | None) -> list[dict[str, Any]]:
    """Each job spec `method:batch_count:residency(on|off|auto)`, in turn, `reps` times after a warm-up round; a job
    killed at the memory ceiling ends the run (the WebUI is gone) with what was measured so far."""
    options = {"sd_checkpoints_limit": limit, "sd_model_checkpoint": f"{BASE}.safetensors"}  # the user's model
    assert webui.post("/sdapi/v1/options", json=options, timeout=3600).status_code == 200
    runs: dict[str, list] = {spec: [] for spec in jobs}
    for round_number in range(reps + 1):
        for spec in jobs:
            name, count, setting = spec.split(":")
            webui.post("/sdapi/v1/options", json={REFINER_RESIDENCY: RESIDENCY_SPECS[setting]})
            result = timed(webui, METHODS[name](int(count)), ceiling_gib)
            print(json.dumps({"round": round_number, "job": spec, **result}), flush=True)
            if round_number or "killed_after_s" in result:  # round 0 is the warm-up
                runs[spec].append(result)
            if "killed_after_s" in result:
                return summarize(limit, {k: v for k, v in runs.items() if v})
    return summarize(limit, runs)


def summarize(limit: int, runs: dict[str, list]) -> list[dict[str, Any]]:
    """One row per job spec: medians over its repetitions."""
    rows = []
    for spec, measured in runs.items():
        row = {"limit": limit, "job": spec, **{k: statistics.median(r[k] for r in measured) for k in measured[0]}}
        rows.append(row)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webui_real_size", description=__doc__)
    parser.add_argument("models", type=Path)
    parser.add_argument("--limit", type=int, default=1)
    parser.add_argument("--jobs", default="ours:1:on,builtin:1:on,ours:4:off,ours:4:on,builtin:2:on")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--kill-above-gib", type=float, default=18.0, help="anonymous memory ceiling for the WebUI")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/webui-real-size.json"))
    args = parser.parse_args(argv)
    root = webui_root()
    if root is None:
        parser.error("set REIMAGINE_WEBUI_DIR to a WebUI 1.10.1 root")
    with tempfile.TemporaryDirectory(prefix="bench-real-size-") as scratch:
        data_dir = make_data_dir(Path(scratch) / "data", args.models.resolve(), {"sd_checkpoints_limit": args.limit})
        for path in sorted(args.models.resolve().glob("big-*")):
            if path.suffix in (".safetensors", ".yaml"):
                (data_dir / "models" / "Stable-diffusion" / path.name).symlink_to(path)
        webui = WebUI(root, data_dir, args.models, free_port(), data_dir / "webui.log")
        webui.start()
        try:
            rows = bench(webui, args.limit, args.jobs.split(","), args.reps, args.kill_above_gib)
        finally:
            webui.stop()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(webui.log_path, args.out.with_suffix(".log"))  # the loads counted, for a second look
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
