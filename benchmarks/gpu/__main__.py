"""`python -m benchmarks.gpu [--tiny] [--reps 3] [--dtype float16] [--jobs unclip,sdxl,xl] [--out DIR]`

The standalone host against diffusers' own pipelines on the same weights, on one GPU: Reimagine on Stable unCLIP
2.1-H (768 px, 20 steps, 4 variations), SDXL base + refiner handoff at 0.8 (1024 px, 30 steps) and Reimagine XL
(1024 px, 30 steps), alternating after a warm-up, with wall time (device synchronised), UNet time per step (CUDA
events), process CPU time and peak VRAM (max allocated, reset before each run); then the same jobs with model CPU
offload (diffusers' enable_model_cpu_offload, as `--offload model` sets it). Real architectures with random weights
are built on the GPU (nothing downloaded). Writes DIR/gpu.json and DIR/gpu.md (`--tiny`: gpu-tiny.*).

`--tiny` runs the same code on the CPU with the project's tiny models (no CUDA call; peak memory is the peak RSS;
offload is a no-op there, as the host makes it on a CPU device).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

DTYPES = ("float16", "bfloat16", "float32")


def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU (what CI runs)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions after the warm-up (default 3; tiny 1)")
    parser.add_argument("--dtype", choices=DTYPES, default=None, help="default float16 (tiny: float32)")
    parser.add_argument("--jobs", default="unclip,sdxl,xl", help="comma-separated, of unclip, sdxl, xl")
    parser.add_argument("--no-offload", action="store_true", help="skip the model CPU offload rows")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for the JSON and table")
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser, args = parse(argv)
    import torch

    from benchmarks.harness import quiet

    from .jobs import JOBS, REAL, TINY
    from .models import real_models, tiny_models

    jobs = [name for name in args.jobs.split(",") if name]
    if unknown := [name for name in jobs if name not in JOBS]:
        parser.error(f"jobs={unknown[0]} is not allowed: one of {', '.join(JOBS)}")
    cuda = not args.tiny and torch.cuda.is_available()
    if not args.tiny and not cuda:
        parser.error("a CUDA GPU is needed (torch.cuda.is_available() is False); --tiny runs the same code on the CPU")
    device = torch.device("cuda" if cuda else "cpu")
    dtype = getattr(torch, args.dtype or ("float32" if args.tiny else "float16"))
    reps = args.reps or (1 if args.tiny else 3)
    started = time.perf_counter()
    log = lambda text: print(f"[{time.perf_counter() - started:6.1f} s] {text}", file=sys.stderr, flush=True)  # noqa: E731
    torch.set_grad_enabled(False)
    if args.tiny:
        torch.set_num_threads(1)  # 2 threads on a busy 2-core machine spin far longer than they compute
    with quiet():
        models = (tiny_models if args.tiny else real_models)(device, dtype)
        log(f"models built on {device} in {dtype}")
        size = TINY if args.tiny else REAL
        rows = run_rows(models, [JOBS[name] for name in jobs], size, device, cuda, reps, not args.no_offload, log)
    doc = document(rows, {"reps": reps, "warmup": 1, "dtype": str(dtype), "device": str(device), "size": vars(size)})
    doc["build_and_run_s"] = round(time.perf_counter() - started, 1)
    write(doc, args.out, "gpu-tiny" if args.tiny else "gpu")
    return 0


def run_rows(models, makers, size, device, cuda: bool, reps: int, offload: bool, log) -> list[dict[str, Any]]:
    """Each job side by side, first with every model on the device, then with model CPU offload."""
    from sd_reimagine.standalone.low_vram import MemoryOptions, offloads_on, place_module, place_pipeline

    from .measure import UnetClock, alternate, row

    rows = []
    modes = ("none", "model") if offload else ("none",)
    for mode in modes:
        options = MemoryOptions(offload=mode)
        if mode != "none":
            for pipe in models.pipelines():
                place_pipeline(pipe, device, options)
            models.tower.model = place_module(models.tower.model, device, options)
        label = mode if mode == "none" or offloads_on(device, options) else f"{mode} (no-op on {device.type})"
        for make in makers:
            job = make(models, size)
            clock = UnetClock(job.unets, cuda)
            try:
                mine, theirs = alternate(job.ours, job.reference, clock, cuda, reps)
            finally:
                clock.detach()
            rows.append(row(job.name, label, job.reference_name, mine, theirs, job.note))
            log(f"{job.name}, offload {label}: ratio {rows[-1]['ratios']['wall_s']:.3f}")
    return rows


def machine(cuda: bool) -> dict[str, Any]:
    import diffusers
    import torch

    gpu = None
    if cuda:
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return {
        "gpu": gpu,
        "cuda": torch.version.cuda if cuda else None,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
    }


def document(rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.gpu " + " ".join(sys.argv[1:]),
        "machine": machine(settings["device"].startswith("cuda")),
        "settings": settings,
        "rows": rows,
    }


def _seconds(value: float | None, scale: float = 1.0, unit: str = "s") -> str:
    return "—" if value is None else f"{value * scale:.3f} {unit}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(doc: dict[str, Any]) -> str:
    """The Markdown table: wall, UNet time per step and peak memory of ours and diffusers, with ratios."""
    m, cuda = doc["machine"], doc["settings"]["device"].startswith("cuda")
    memory = "peak VRAM (max allocated)" if cuda else "peak RSS"
    lines = [
        f"GPU: {m['gpu'] or 'none (CPU)'}; torch {m['torch']}, CUDA {m['cuda']}, diffusers {m['diffusers']}  ",
        f"Date: {doc['date']}  ",
        f"Command: `{doc['command']}`  ",
        f"Settings: {doc['settings']}; build + run {doc.get('build_and_run_s', '?')} s",
        "",
        f"| Job | Offload | Ours wall (min–max) | Diffusers wall | Wall ratio | Ours UNet s/step | Diffusers UNet "
        f"s/step | Step ratio | Ours {memory} | Diffusers {memory} | Peak ratio | CPU ratio | Note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        ours, ref, ratios = r["ours"], r["reference"], r["ratios"]
        lines.append(
            f"| {r['job']} | {r['offload']} "
            f"| {ours['wall_s']:.3f} ({ours['wall_min_s']:.3f}–{ours['wall_max_s']:.3f}) s "
            f"| {ref['wall_s']:.3f} s | {_ratio(ratios['wall_s'])} | {_seconds(ours['step_s'])} "
            f"| {_seconds(ref['step_s'])} | {_ratio(ratios['step_s'])} | {ours['peak_mib']:.0f} MiB "
            f"| {ref['peak_mib']:.0f} MiB | {_ratio(ratios['peak_mib'])} | {_ratio(ratios['cpu_s'])} | {r['note']} |"
        )
    return "\n".join(lines)


def write(doc: dict[str, Any], folder: Path, stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(doc, indent=2))
    text = table(doc)
    (folder / f"{stem}.md").write_text(text + "\n")
    print(text)
    print(f"\nWrote {folder / f'{stem}.json'} and {folder / f'{stem}.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
