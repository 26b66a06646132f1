"""`python -m sd_reimagine variations --image-dir DIR --out OUT`: a folder at a time on the standalone Session.

The rules (inputs, resume, names, what an interrupt keeps) are `folder_batch`'s; this runs them on a Session and
reports: every saved path on stdout, one `failed: NAME: REASON` line per bad file and a summary line on stderr.
Exit 0 when every input is done or was already done, 1 when a file failed, 130 after Ctrl-C (the first one stops
after the current step and keeps every image made; a second one quits at once).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..folder_batch import plan_folder
from ..folder_batch_run import BatchHost, BatchProgress, BatchSummary, run_folder
from ..images import png_bytes
from ..lineage_tree import own_hash_chunks
from ..reimagine_plan import GeneratedImage
from .session import Session

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
CLI_NAMES = ("--image-dir", "--out")


def session_host(session: Session) -> BatchHost:
    """The folder batch's runner and saver on a Session (models stay loaded from one input to the next)."""

    def run(references, values: dict[str, Any], progress, should_stop):
        job, _ = session.variations(references, values, progress=progress, should_stop=should_stop, save=False)
        return job

    def save(image: GeneratedImage, folder: Path, stem: str, chunks: dict[str, str]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.png"
        own = own_hash_chunks(image.image, image.infotext)  # the lineage tree's link, as save_png adds it
        path.write_bytes(png_bytes(image.image, image.infotext, {**own, **chunks}))
        return path

    return BatchHost(run, save, session.max_batch)


def run_image_dir(session: Session, image_dir: Path, out_dir: Path, values: dict[str, Any]) -> int:
    """Run the folder batch, print what it made and return the exit code."""
    plan = plan_folder(image_dir, out_dir, values, names=CLI_NAMES)
    with _StopOnCtrlC() as stop, _FolderProgress(len(plan.pending)) as progress:
        summary = run_folder(plan, values, session_host(session), progress=progress, should_stop=stop)
    return report(summary)


def report(summary: BatchSummary) -> int:
    """Saved paths on stdout, failures and the summary line on stderr; the exit code."""
    for path in summary.outputs:
        print(path)
    for name, reason in summary.failed:
        print(f"failed: {name}: {reason}", file=sys.stderr)
    print(summary.line(), file=sys.stderr)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failed else 0


class _StopOnCtrlC:
    """The first Ctrl-C asks the batch to stop after the current step; a second one raises KeyboardInterrupt."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("stopping after the current step (Ctrl-C again to quit now)", file=sys.stderr)

    def __call__(self) -> bool:
        return self.requested

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class _FolderProgress:
    """A tqdm bar over the folder's inputs, with the step of the current one, on a terminal; nothing otherwise."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def __enter__(self):
        if sys.stderr.isatty() and self.total:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="image", file=sys.stderr)
        return self

    def __call__(self, where: BatchProgress) -> None:
        if self.bar is None:
            return
        if where.step == 0:
            self.bar.n = where.image - 1
            self.bar.set_description(f"image {where.image}/{where.images} {where.name}")
        self.bar.set_postfix_str(f"step {where.step}/{where.steps}" if where.steps else "")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.n = self.total
            self.bar.close()
