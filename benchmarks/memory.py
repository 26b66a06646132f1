"""Item 5: peak RSS per mode (a fresh subprocess each, since the peak never decreases) and RSS growth over jobs.

The peak is VmHWM of /proc/self/status (the high-water mark of this process's own memory map). getrusage's
ru_maxrss is kept in the JSON too, but on Linux it is inherited across fork + execve, so a child started by a
parent that already holds the medium models would report the parent's peak.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any

MODES = ("reimagine", "sdxl-handoff", "sdxl-refine")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak RSS of this process (VmHWM); ru_maxrss where /proc is missing."""
    peak = _status_mb("VmHWM")
    return peak if peak == peak else ru_maxrss_mb()


def ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(mode: str, size: str, jobs: int, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    from .harness import SIZES, quiet, reference_images, sdxl_pair, unclip_pipe

    scale = SIZES[size]["scale"]
    with quiet():
        if mode in ("reimagine", "growth"):
            from sd_reimagine.mixing import Reference
            from sd_reimagine.standalone.unclip import UnclipVariations

            from .reimagine import job_values

            runner = UnclipVariations(unclip_pipe(scale), "bench")
            refs = [Reference(reference_images(1)[0])]
            loaded, cpu = current_rss_mb(), time.process_time()
            after: dict[int, float] = {}
            for i in range(jobs):
                values = {**job_values(size, 4 if mode == "reimagine" else 1), "seed": 1000 + i}
                runner(refs, values, output_type="np")
                if i == 0 or i == jobs - 1:
                    after[i + 1] = current_rss_mb()
            return {
                "loaded_rss_mb": loaded,
                "rss_after_mb": after,
                "peak_rss_mb": peak_rss_mb(),
                "ru_maxrss_mb": ru_maxrss_mb(),
                "job_cpu_s": time.process_time() - cpu,
            }
        from sd_reimagine.standalone.sdxl import SdxlRelay

        from .sdxl import _refiner_values, _values

        relay = SdxlRelay(*sdxl_pair(scale))
        loaded, cpu = current_rss_mb(), time.process_time()
        values = {**_values(size), "n": 4}
        relay.run(values, _refiner_values(mode.split("-")[1], values["steps"]), output_type="np")
        memory = {"loaded_rss_mb": loaded, "peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": ru_maxrss_mb()}
        return {**memory, "job_cpu_s": time.process_time() - cpu}


def _spawn(mode: str, size: str, jobs: int, threads: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.memory", mode, size, str(jobs), str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(
    size: str,
    name: str,
    value: float,
    reference_name: str,
    reference,
    target: str,
    note: str,
    cpu_s: float | None = None,
    **extra: Any,
) -> dict:
    """A memory row; `cpu_s`: the measured jobs' process CPU seconds (the reference is a state, not a run)."""
    one = {"median": value, "min": value, "max": value, "n": 1}
    ref = {"median": reference, "min": reference, "max": reference, "n": 1} if reference is not None else None
    return {
        "item": "5 Memory",
        "size": size,
        "name": name,
        "unit": "MiB",
        "ours": one,
        "reference_name": reference_name,
        "reference": ref,
        "ratio": value / reference if reference else None,
        "overhead": None,
        "ours_cpu": {"median": cpu_s, "min": cpu_s, "max": cpu_s, "n": 1} if cpu_s is not None else None,
        "reference_cpu": None,
        "cpu_ratio": None,
        "target": target,
        "note": note,
        **extra,
    }


def bench_memory(size: str, growth_jobs: int, threads: int) -> list[dict[str, Any]]:
    """Peak RSS of one job (4 images) per mode, each in a fresh process; RSS after 1 and after N jobs (tiny)."""
    rows = []
    for mode in MODES:
        result = _spawn(mode, size, 1, threads)
        rows.append(
            _row(
                size,
                f"peak RSS, {mode} job of 4 images",
                result["peak_rss_mb"],
                "RSS with models loaded, before the job",
                result["loaded_rss_mb"],
                "",
                "fresh subprocess, VmHWM; CPU: both models resident (offload is CUDA-only)",
                cpu_s=result["job_cpu_s"],
                ru_maxrss_mb=result["ru_maxrss_mb"],
            )
        )
    if size == "tiny":
        result = _spawn("growth", size, growth_jobs, threads)
        after = {int(k): v for k, v in result["rss_after_mb"].items()}
        last = max(after)
        rows.append(
            _row(
                size,
                f"RSS after {last} Reimagine jobs",
                after[last],
                "RSS after 1 job",
                after[1],
                "growth within noise (ratio ~1.0)",
                f"growth {after[last] - after[1]:+.1f} MiB; new seed each job, same reference (caches on)",
                cpu_s=result["job_cpu_s"],
            )
        )
    return rows


if __name__ == "__main__":
    mode_arg, size_arg, jobs_arg, threads_arg = sys.argv[1:5]
    print(json.dumps(_child(mode_arg, size_arg, int(jobs_arg), int(threads_arg))))
