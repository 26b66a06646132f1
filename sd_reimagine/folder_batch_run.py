"""Running a folder plan (`folder_batch.py`): one job per input through the host's runner, each output saved at
once with its source tag, a bad file reported and passed over, a stop honoured after the current step.

The host passes a BatchHost: `run(references, values, progress, should_stop)` is its ordinary Reimagine job (the
CLI's Session, the WebUI's `run_reimagine`), `save(image, folder, stem, chunks)` writes one PNG with `chunks` as
extra text chunks and returns its path. Errors of the job itself (a missing model, a bad value) are not about a
file: they end the batch and reach the host as they are; every image saved before stays saved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from .errors import ReimagineError
from .folder_batch import (
    SOURCE_KEY,
    FolderPlan,
    Pending,
    Run,
    SourceTag,
    finished_flags,
    job_key,
    next_number,
    output_stem,
    runs_to_do,
    seed_at,
)
from .images import InputImage, open_image, read_image_file
from .reimagine_plan import GeneratedImage, VariationResult


@dataclass(frozen=True)
class BatchProgress:
    """Where a batch is: input `image` of `images` (those with work), and the step within its job."""

    image: int
    images: int
    name: str
    step: int = 0
    steps: int = 0
    jobs: int = 0  # sampling batches the whole folder takes, as known now (a failed input's are taken off)


@dataclass(frozen=True)
class BatchHost:
    """A host's runner and saver, and the most images it samples together (to tell finished images after a stop)."""

    run: Callable[..., VariationResult]
    save: Callable[[GeneratedImage, Path, str, dict[str, str]], Path]
    max_batch: int = 1
    uneven: bool = True  # False: the host samples equal batches only (the WebUI), see `reimagine_plan.batched`


@dataclass
class BatchSummary:
    """What a batch did: inputs done now, skipped as already done, failed (name, reason), ignored, not done."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)  # left for a rerun after an interrupt
    outputs: list[Path] = field(default_factory=list)
    interrupted: bool = False

    def line(self) -> str:
        """One line for a log, a CLI's stderr or the tab."""
        parts = [f"{len(self.done)} done", f"{len(self.skipped)} skipped (already done)", f"{len(self.failed)} failed"]
        if self.ignored:
            parts.append(f"{len(self.ignored)} ignored (not PNG/JPEG/WebP)")
        if self.interrupted:
            parts.append(f"interrupted: {len(self.not_done)} left for a rerun")
        return f"Reimagine batch: {', '.join(parts)}; {len(self.outputs)} images saved"

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON values (output files by name in the output folder)."""
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": [{"name": name, "reason": reason} for name, reason in self.failed],
            "ignored": self.ignored,
            "not_done": self.not_done,
            "outputs": [path.name for path in self.outputs],
            "interrupted": self.interrupted,
            "summary": self.line(),
        }


def run_folder(
    plan: FolderPlan,
    values: dict[str, Any],
    host: BatchHost,
    progress: Callable[[BatchProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BatchSummary:
    """Run every pending input of `plan` in name order; returns the summary (also after a stop)."""
    return _FolderRun(plan, values, host, progress, should_stop or (lambda: False)).run()


class _FolderRun:
    """One batch over a folder plan, input by input."""

    def __init__(self, plan: FolderPlan, values: dict[str, Any], host: BatchHost, progress, stop):
        self.plan, self.values, self.host, self.progress, self.stop = plan, values, host, progress, stop
        self.key = job_key(values)
        self.numbers = count(next_number(plan.output_dir))
        self.jobs = plan.jobs(host.max_batch, host.uneven)
        self.summary = BatchSummary(skipped=list(plan.skipped), failed=list(plan.failed), ignored=list(plan.ignored))

    def run(self) -> BatchSummary:
        summary = self.summary
        for position, pending in enumerate(self.plan.pending, 1):
            summary.interrupted = summary.interrupted or self.stop()
            if summary.interrupted:
                summary.not_done.append(pending.name)
                continue
            where = BatchProgress(position, len(self.plan.pending), pending.name, jobs=self.jobs)
            self.report(where)
            try:
                image, pending = self.load(pending)
            except ReimagineError as exc:
                summary.failed.append((pending.name, str(exc)))
                self.jobs -= pending.jobs(self.host.max_batch, self.host.uneven)
                continue
            finished = self.run_input(pending, image, where)
            (summary.done if finished else summary.not_done).append(pending.name)
            summary.interrupted = not finished
        return summary

    def report(self, where: BatchProgress) -> None:
        if self.progress is not None:
            self.progress(where)

    def load(self, pending: Pending) -> tuple[InputImage, Pending]:
        """The decoded input and its runs, decided again if the file changed since the plan (ReimagineError: a bad
        file)."""
        data = read_image_file(pending.path, pending.name, self.plan.follow_links)
        image = open_image(data, name=pending.name)
        digest = hashlib.sha256(data).hexdigest()
        if digest != pending.sha256:
            runs = runs_to_do(pending.name, digest, self.values, self.plan.tags.get(pending.name, []))
            pending = Pending(pending.path, pending.name, digest, runs)
        return image, pending

    def run_input(self, pending: Pending, image: InputImage, where: BatchProgress) -> bool:
        """Run one input's jobs and save their images; False when a stop cut it short."""

        def step(done: int, total: int) -> None:
            self.report(BatchProgress(where.image, where.images, where.name, done, total, self.jobs))

        for run in pending.runs:
            if self.stop():
                return False
            result = self.host.run([(image, 1.0)], {**self.values, "n": run.count, "seed": run.seed}, step, self.stop)
            self.save(pending, run, result)
            if result.interrupted:
                return False
        return True

    def save(self, pending: Pending, run: Run, result: VariationResult) -> None:
        """Save a run's images at once, each with its source tag (after a stop, the last batch's as unfinished)."""
        job_seed = run.job_seed if run.job_seed != -1 or not result.images else seed_at(result.seeds[0], -run.first)
        flags = finished_flags(len(result.images), result.interrupted, self.host.max_batch)
        for offset, (generated, complete) in enumerate(zip(result.images, flags, strict=True)):
            tag = SourceTag(
                pending.name, pending.sha256, self.key, job_seed, run.first + offset, self.values["n"], complete
            )
            stem = _free_stem(self.plan.output_dir, self.numbers, generated.seed, pending.name)
            self.summary.outputs.append(self.host.save(generated, self.plan.output_dir, stem, {SOURCE_KEY: tag.text()}))


def _free_stem(folder: Path, numbers: Iterator[int], seed: int, input_name: str) -> str:
    """The next output stem that no file in the folder has (whatever its extension): nothing is overwritten."""
    for number in numbers:
        stem = output_stem(number, seed, input_name)
        if not any(folder.glob(f"{stem}.*")):
            return stem
    raise AssertionError("unreachable: count() never ends")
