"""Peak memory of the standalone's low-VRAM options on the CPU (RSS; a fresh process per option, since the peak
never decreases): an SDXL handoff job (base + refiner, tiny models at --scale, --side pixels) with no option,
with VAE tiling, and with diffusers' model and sequential offload hooks forced onto the CPU (the host itself makes
offload a no-op on a CPU device; these rows show why: there is no other memory to move the weights to).

`PYTHONPATH=. .venv/bin/python -m benchmarks.low_vram [--side 1024] [--scale 4] [--steps 2] [--out PATH]`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OPTIONS = ("none", "vae-tiling", "offload-model-forced", "offload-sequential-forced")


def _place(pipes, option: str) -> None:
    """The option as the host applies it (none, VAE tiling), or diffusers' offload hooks forced onto the CPU."""
    from sd_reimagine.standalone.low_vram import MemoryOptions, place_pipeline

    for pipe in pipes:
        if option == "offload-model-forced":
            pipe.enable_model_cpu_offload(device="cpu")
        elif option == "offload-sequential-forced":
            pipe.enable_sequential_cpu_offload(device="cpu")
        else:
            place_pipeline(pipe, "cpu", MemoryOptions(vae_tiling=option == "vae-tiling"))


def _child(option: str, side: int, scale: int, steps: int) -> dict[str, Any]:
    """One job in this process: RSS once the models are placed, the job's peak RSS, wall and CPU seconds."""
    import torch

    torch.set_num_threads(1)
    from sd_reimagine.standalone.sdxl import SdxlRelay

    from .harness import quiet, sdxl_pair
    from .memory import current_rss_mb, peak_rss_mb
    from .sdxl import _refiner_values

    with quiet():
        base, refiner = sdxl_pair(scale)
        _place((base, refiner), option)
        loaded, started, cpu = current_rss_mb(), time.perf_counter(), time.process_time()
        values = {"prompt": "a lighthouse", "n": 1, "seed": 1, "steps": steps, "width": side, "height": side}
        job = SdxlRelay(base, refiner).run(values, _refiner_values("handoff", steps), output_type="np")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    pixels = job.images[0].image
    return {
        "option": option,
        "loaded_rss_mb": loaded,
        "peak_rss_mb": peak_rss_mb(),
        "wall_s": wall,
        "cpu_s": cpu,
        "pixel_mean": float(pixels.mean()),
    }


def measure(side: int, scale: int, steps: int) -> list[dict[str, Any]]:
    """Each option in its own process."""
    rows = []
    for option in OPTIONS:
        command = [sys.executable, "-m", "benchmarks.low_vram", "--child", option]
        command += ["--side", str(side), "--scale", str(scale), "--steps", str(steps)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:  # a row that says what failed (accelerate's hooks on the CPU, say)
            errors = [line for line in done.stderr.splitlines() if "Error:" in line] or ["no error line"]
            rows.append({"option": option, "error": errors[-1].strip()[:200]})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def table(rows: list[dict[str, Any]], command: str) -> str:
    """Markdown: each option's peak RSS, the job's growth over the loaded RSS, and its times."""
    lines = [
        f"Command: `{command}`",
        "",
        "| Option | RSS loaded | Peak RSS | Job peak over loaded | Wall | CPU |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['option']} | failed: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {r['option']} | {r['loaded_rss_mb']:.0f} MiB | {r['peak_rss_mb']:.0f} MiB "
            f"| {r['peak_rss_mb'] - r['loaded_rss_mb']:+.0f} MiB | {r['wall_s']:.2f} s | {r['cpu_s']:.2f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.low_vram", description=__doc__)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--child", choices=OPTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/low-vram.json"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.side, args.scale, args.steps)))
        return 0
    command = "python -m benchmarks.low_vram " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = measure(args.side, args.scale, args.steps)
    print(table(rows, command.strip()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command.strip(), "rows": rows}, indent=2))
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
