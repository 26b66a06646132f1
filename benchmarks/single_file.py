"""Single-file unCLIP loading on a real-size checkpoint: load time and peak RSS against the finished pipeline's size.

`python -m benchmarks.single_file FILE [--dtype float32|bfloat16|float16] [--repeat 2] [--run]`; FILE is a
real-size original-layout checkpoint (`python -m sd_reimagine.testing.real_size_unclip OUT.safetensors`, ~3.9 GB
float16; a `.ckpt` works too). `--run` adds one 64x64 step, which reads in every weight of a memory-mapped `.ckpt`.
Each load runs in a fresh process (a peak never comes down): RSS after the imports (the baseline), VmHWM after the
load (and the step), the pipeline's tensor bytes, and wall and process CPU time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
import torch
from sd_reimagine.standalone.single_file import load_unclip_single_file
from benchmarks.memory import current_rss_mb, peak_rss_mb

path, dtype = sys.argv[1], getattr(torch, sys.argv[2])
baseline = current_rss_mb()
wall, cpu = time.perf_counter(), time.process_time()
pipe = load_unclip_single_file(path, dtype=dtype)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
modules = [pipe.unet, pipe.vae, pipe.text_encoder, pipe.image_encoder, pipe.image_normalizer]
size = sum(t.numel() * t.element_size() for m in modules for t in [*m.parameters(), *m.buffers()]) / 2**20
row = {"baseline_mb": baseline, "peak_mb": peak_rss_mb(), "after_mb": current_rss_mb(), "pipeline_mb": size,
       "load_s": wall, "load_cpu_s": cpu}
if sys.argv[3] == "run":  # one 64x64 step touches every weight (a memory-mapped .ckpt is read in only then)
    from PIL import Image
    pipe.set_progress_bar_config(disable=True)
    started = time.perf_counter()
    pipe(Image.new("RGB", (64, 64), (120, 80, 40)), prompt="a fox", num_inference_steps=1, height=64, width=64)
    row.update(run_s=time.perf_counter() - started, peak_after_run_mb=peak_rss_mb(), after_run_mb=current_rss_mb())
print("RESULT " + json.dumps(row))
"""


def measure(path: Path, dtype: str, run: bool) -> dict:
    """One load (and, with `run`, one 64x64 step) in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", CHILD, str(path), dtype, "run" if run else "load"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=3600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"load failed ({result.returncode}):\n{result.stderr[-3000:]}")
    row = json.loads(lines[-1][len("RESULT ") :])
    row["peak_over_pipeline"] = (row["peak_mb"] - row["baseline_mb"]) / row["pipeline_mb"]
    if "peak_after_run_mb" in row:
        row["peak_after_run_over_pipeline"] = (row["peak_after_run_mb"] - row["baseline_mb"]) / row["pipeline_mb"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.single_file", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--run", action="store_true", help="also run one 64x64 step after the load")
    args = parser.parse_args(argv)
    rows = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        rows.append(measure(args.file, args.dtype, args.run))
        rows[-1]["process_s"] = time.perf_counter() - started
        print(json.dumps({k: round(v, 3) for k, v in rows[-1].items()}))
    ratio = max(row["peak_over_pipeline"] for row in rows)
    print(f"{args.file.name} {args.dtype}: peak RSS over the pipeline's size (baseline removed) at most {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
