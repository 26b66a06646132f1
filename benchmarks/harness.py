"""Timing harness: model-call hooks, alternating runs after a warm-up, statistics and result rows."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# size name -> (tiny.py scale, image side in pixels, sampling steps)
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"scale": 1, "side": 64, "steps": 8},
    "medium": {"scale": 4, "side": 64, "steps": 8},
}


@dataclass
class Settings:
    """How many runs each measurement makes."""

    reps: int = 5
    warmup: int = 1
    growth_jobs: int = 100


class ModelTimer:
    """Wall time spent inside model calls (UNet, VAE encoder/decoder, text and image encoders).

    Forward pre/post hooks accumulate perf_counter time; a depth counter makes nested hooked modules count once.
    The hooks stay installed for both implementations, so their own small cost is in both runs.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self._depth = 0
        self._start = 0.0
        self._handles: list[Any] = []

    def attach(self, *modules) -> ModelTimer:
        for module in modules:
            if module is None or any(module is h[0] for h in self._handles):
                continue
            pre = module.register_forward_pre_hook(self._enter)
            post = module.register_forward_hook(self._leave)
            self._handles.append((module, pre, post))
        return self

    def detach(self) -> None:
        for _, pre, post in self._handles:
            pre.remove()
            post.remove()
        self._handles.clear()

    def _enter(self, *_args) -> None:
        if self._depth == 0:
            self._start = time.perf_counter()
        self._depth += 1

    def _leave(self, *_args) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.total += time.perf_counter() - self._start


def model_modules(pipe) -> list:
    """The modules whose forward calls count as model time in a diffusers pipeline."""
    modules = [getattr(pipe, "unet", None), getattr(pipe, "text_encoder", None)]
    modules += [getattr(pipe, "text_encoder_2", None), getattr(pipe, "image_encoder", None)]
    vae = getattr(pipe, "vae", None)
    if vae is not None:  # vae.encode/decode are not forward(): hook the parts they call
        modules += [vae.encoder, vae.decoder, getattr(vae, "quant_conv", None), getattr(vae, "post_quant_conv", None)]
    return [m for m in modules if m is not None]


def timer_for(*pipes) -> ModelTimer:
    timer = ModelTimer()
    for pipe in pipes:
        if pipe is not None:
            timer.attach(*model_modules(pipe))
    return timer


@dataclass
class Sample:
    """One run: wall seconds, wall seconds inside model calls, process CPU seconds (None: not measured)."""

    total: float
    model: float
    cpu: float | None = None


def measure(fn: Callable[[], Any], timer: ModelTimer | None) -> Sample:
    """Wall and process CPU time of one call. CPU time (all threads of this process) barely moves when other
    processes compete for the cores, so it is the figure to trust on a busy machine; wall time is what a user waits."""
    before = timer.total if timer else 0.0
    cpu_start, start = time.process_time(), time.perf_counter()
    fn()  # no extra no_grad: each implementation runs exactly as a caller would run it
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Sample(total, (timer.total - before) if timer else 0.0, cpu)


def alternate(
    ours: Callable[[], Any], reference: Callable[[], Any], settings: Settings, timer: ModelTimer | None = None
) -> tuple[list[Sample], list[Sample]]:
    """Warm up both, then run ours and the reference alternately (the order flips every repetition)."""
    for _ in range(settings.warmup):
        measure(ours, timer)
        measure(reference, timer)
    mine, theirs = [], []
    for rep in range(settings.reps):
        if rep % 2 == 0:
            mine.append(measure(ours, timer))
            theirs.append(measure(reference, timer))
        else:
            theirs.append(measure(reference, timer))
            mine.append(measure(ours, timer))
    return mine, theirs


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def cpu_stats(samples: list[Sample] | None) -> dict[str, float] | None:
    """Statistics of the samples' process CPU seconds (None when a sample has none)."""
    if not samples or any(s.cpu is None for s in samples):
        return None
    return stats([s.cpu for s in samples])


def cpu_fields(ours: list[Sample], reference: list[Sample] | None) -> dict[str, Any]:
    """The CPU-time columns of a row: both sides' statistics and the ratio of their medians."""
    mine, theirs = cpu_stats(ours), cpu_stats(reference)
    ratio = mine["median"] / theirs["median"] if mine and theirs and theirs["median"] > 0 else None
    return {"ours_cpu": mine, "reference_cpu": theirs, "cpu_ratio": ratio}


def row(
    item: str,
    size: str,
    name: str,
    ours: list[Sample],
    reference: list[Sample] | None,
    reference_name: str,
    target: str = "",
    note: str = "",
    overhead: bool = False,
    unit: str = "s",
) -> dict[str, Any]:
    """One table row: wall and CPU times of ours and the reference, ratios of medians, our overhead when asked."""
    result: dict[str, Any] = {
        "item": item,
        "size": size,
        "name": name,
        "unit": unit,
        "ours": stats([s.total for s in ours]),
        "reference_name": reference_name,
        "reference": stats([s.total for s in reference]) if reference else None,
        "ratio": None,
        "overhead": None,
        "target": target,
        "note": note,
        **cpu_fields(ours, reference),
    }
    if reference:
        result["ratio"] = result["ours"]["median"] / result["reference"]["median"]
    if overhead:
        ratios = [s.total / s.model for s in ours if s.model > 0]
        result["overhead"] = statistics.median(ratios) if ratios else None
        result["overhead_model_s"] = statistics.median([s.model for s in ours])
        theirs = [s.total / s.model for s in reference or [] if s.model > 0]
        result["reference_overhead"] = statistics.median(theirs) if theirs else None
    return result


_TOKENIZER = None


def tokenizer():
    """The tiny models' CLIP tokenizer (written once to a temporary folder)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from sd_reimagine.testing.tiny_diffusers import make_tokenizer

        _TOKENIZER = make_tokenizer(Path(tempfile.mkdtemp(prefix="bench-tok-")))
    return _TOKENIZER


def unclip_pipe(scale: int):
    from sd_reimagine.testing.tiny_diffusers import build_unclip

    pipe = build_unclip(scale)
    pipe.register_modules(tokenizer=tokenizer())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sdxl_pair(scale: int):
    from sd_reimagine.testing.tiny_diffusers import build_sdxl_pair

    base, refiner = build_sdxl_pair(scale)
    base.register_modules(tokenizer=tokenizer(), tokenizer_2=tokenizer())
    refiner.register_modules(tokenizer_2=tokenizer())
    for pipe in (base, refiner):
        pipe.set_progress_bar_config(disable=True)
    return base, refiner


def reference_images(count: int, side: int = 64) -> list:
    """Deterministic noise images as references."""
    import numpy as np
    from PIL import Image

    from sd_reimagine.images import open_image

    images = []
    for seed in range(count):
        pixels = (np.random.RandomState(seed).rand(side, side, 3) * 255).astype("uint8")
        images.append(open_image(Image.fromarray(pixels, "RGB")))
    return images


@contextmanager
def quiet():
    """Silence diffusers/transformers chatter during runs."""
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(level)
