"""Measuring one run on a GPU (or the CPU with --tiny): wall time with the device synchronised, process CPU time,
time inside the UNets per call (CUDA events, no synchronisation inside the loop) and peak memory (CUDA max
allocated, reset before each run; on the CPU the peak RSS, reset through /proc/self/clear_refs)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MIB = 2**20


class UnetClock:
    """Time inside UNet forward calls: CUDA event pairs read after the run, perf_counter on the CPU."""

    def __init__(self, unets, cuda: bool):
        self.cuda = cuda
        self.spans: list[tuple[Any, Any]] = []
        self._handles = []
        for unet in {id(u): u for u in unets}.values():
            self._handles.append(unet.register_forward_pre_hook(self._start))
            self._handles.append(unet.register_forward_hook(self._stop))

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _start(self, *_):
        self.spans.append((self._mark(), None))

    def _stop(self, *_):
        start, _ = self.spans[-1]
        self.spans[-1] = (start, self._mark())

    def reset(self) -> None:
        self.spans.clear()

    def seconds_per_call(self) -> float | None:
        """Mean seconds per UNet call (one denoising step: CFG runs batched) of the spans since the reset."""
        done = [(a, b) for a, b in self.spans if b is not None]
        if not done:
            return None
        if self.cuda:
            return sum(a.elapsed_time(b) for a, b in done) / 1000 / len(done)
        return sum(b - a for a, b in done) / len(done)

    @property
    def calls(self) -> int:
        return len(self.spans)

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()


def reset_peak(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return
    try:  # "5" resets the peak RSS (VmHWM) of this process (Linux 4.0+)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mib(cuda: bool) -> float:
    if cuda:
        return torch.cuda.max_memory_allocated() / MIB
    from benchmarks.memory import peak_rss_mb

    return peak_rss_mb()


def run_once(fn: Callable[[], Any], clock: UnetClock, cuda: bool) -> dict[str, float | None]:
    """One synchronised run: wall, CPU, UNet seconds per step, UNet calls, peak memory."""
    reset_peak(cuda)
    clock.reset()
    cpu, started = time.process_time(), time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "step_s": clock.seconds_per_call(),
        "unet_calls": clock.calls,
        "peak_mib": peak_mib(cuda),
    }


def alternate(ours: Callable, reference: Callable, clock: UnetClock, cuda: bool, reps: int, warmup: int = 1):
    """Warm up both, then alternate them (the order flips every repetition); returns both lists of runs."""
    for _ in range(warmup):
        run_once(ours, clock, cuda)
        run_once(reference, clock, cuda)
    mine, theirs = [], []
    for rep in range(reps):
        pair = [(mine, ours), (theirs, reference)]
        for runs, fn in pair if rep % 2 == 0 else pair[::-1]:
            runs.append(run_once(fn, clock, cuda))
    return mine, theirs


def summary(runs: list[dict[str, float | None]]) -> dict[str, Any]:
    """Medians (with min and max of wall time) over repetitions."""
    medians = {
        key: statistics.median(r[key] for r in runs) if runs[0][key] is not None else None
        for key in ("wall_s", "cpu_s", "step_s", "peak_mib")
    }
    walls = [r["wall_s"] for r in runs]
    return {
        **medians,
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "unet_calls": runs[0]["unet_calls"],
        "n": len(runs),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def row(job: str, offload: str, reference_name: str, mine: list, theirs: list, note: str = "") -> dict[str, Any]:
    """One result row: both sides' summaries and the ratios ours / diffusers of wall, CPU, step and peak memory."""
    ours, reference = summary(mine), summary(theirs)
    ratios = {key: ratio(ours[key], reference[key]) for key in ("wall_s", "cpu_s", "step_s", "peak_mib")}
    return {
        "job": job,
        "offload": offload,
        "reference_name": reference_name,
        "ours": ours,
        "reference": reference,
        "ratios": ratios,
        "note": note,
    }
