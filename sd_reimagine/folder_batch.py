"""A folder at a time: which images of an input folder a batch runs, which are already done, and the record that
tells. Host-neutral; the hosts (CLI, WebUI tab and API) run the jobs and save the files (`folder_batch_run.py`).

Rules, decided here once:
- Inputs: the files directly in the input folder (subfolders do not count, as in img2img's batch) whose names end
  in .png, .jpg, .jpeg or .webp (any case), sorted by name; hidden files (a leading dot, e.g. macOS `._x.png`) and
  other files are ignored and listed as such. The output folder must not be the input folder, and it is created
  and written to (a probe file) before any model work, so a folder that cannot hold outputs is refused first.
- Links and sizes: a link that loops (a self-link) or leads nowhere is passed over with a reason; where links are
  not followed (`follow_links=False`, the HTTP API) every link is passed over, and the input is opened without
  following one (no check-then-open race). An input over the size limit is passed over from its size, unread.
- One job per input: the input is reference 1 with weight 1, so its own infotext (when it is a Reimagine image)
  makes the outputs generation + 1 with the input as parent (`mixing.lineage_of`).
- Every output carries a `reimagine-source` PNG text chunk (SourceTag): the input's name, the SHA-256 of its file
  bytes, a key of the job's settings (every value but seed and n), the job's seed, the output's index in the job,
  n, and whether it was finished (an image cut short by an interrupt is not).
- Resume reads those text chunks only (never pixels). An input is done when the output folder holds finished
  outputs of indices 0..n-1 for the same name, file bytes and settings key (and the same job seed, when the seed
  is not -1): it is skipped. A partly done input is completed, not redone: the missing indices run with the
  recorded job seed (image i of a job has seed + i and equals a one-image job with that seed, `reimagine_plan`),
  so the folder ends with exactly what one uninterrupted run makes. A changed file, n or setting is new work.
- Output names: `NNNNN-SEED-<input stem>.png`, NNNNN above every number already in the folder: a rerun never
  overwrites a file.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ParamError
from .images import MAX_BYTES
from .png_text import PngTextError, read_png_text
from .schema import MAX_SEED

SOURCE_KEY = "reimagine-source"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_NUMBERED = re.compile(r"^(\d{5,})-")
_UNSAFE = re.compile(r"[^\w.-]+")
STEM_LENGTH = 60


@dataclass(frozen=True)
class SourceTag:
    """What the `reimagine-source` chunk of one output records."""

    input: str  # the input's name in its folder
    sha256: str  # of the input's file bytes
    job: str  # settings key (job_key)
    seed: int  # the job's seed: this output's seed is seed + index
    index: int
    n: int
    complete: bool = True

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> SourceTag | None:
        """The tag in a chunk's text, or None when it is not one."""
        try:
            data = json.loads(text)
            tag = cls(**data)
        except (TypeError, ValueError):
            return None
        return tag if isinstance(tag.index, int) and isinstance(tag.seed, int) else None


@dataclass(frozen=True)
class Run:
    """One job of an input: images `first` .. `first + count - 1` of the input's n, starting at `seed` (-1: random)."""

    first: int
    count: int
    seed: int
    job_seed: int = -1  # the seed of image 0 (known when completing a recorded job)


@dataclass(frozen=True)
class Pending:
    """An input with work left, and the runs that finish it."""

    path: Path
    name: str
    sha256: str
    runs: tuple[Run, ...]

    def jobs(self, max_batch: int = 1, uneven: bool = True) -> int:
        """Sampling batches this input takes, as `reimagine_plan.batched` splits its runs."""
        from .reimagine_plan import batched

        return sum(len(batched(range(run.count), max_batch, uneven)) for run in self.runs)


@dataclass
class FolderPlan:
    """What a batch does over a folder: inputs with work, inputs already done, files ignored."""

    input_dir: Path
    output_dir: Path
    pending: list[Pending] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    tags: dict[str, list[SourceTag]] = field(default_factory=dict)
    follow_links: bool = True  # False: inputs are opened without following a link (the HTTP API)

    def jobs(self, max_batch: int = 1, uneven: bool = True) -> int:
        """Sampling batches over the whole folder (a host's progress total)."""
        return sum(pending.jobs(max_batch, uneven) for pending in self.pending)


def check_folders(input_dir: Path | str, output_dir: Path | str, names: tuple[str, str] = ("input_dir", "output_dir")):
    """(input folder, output folder), resolved; errors name the field (`names`) and say what is allowed."""
    source, target = Path(input_dir).expanduser(), Path(output_dir).expanduser()
    if not str(input_dir).strip():
        raise ParamError(names[0], str(input_dir), "a folder of PNG/JPEG/WebP images")
    if not source.is_dir():
        raise ParamError(names[0], str(input_dir), "an existing folder of PNG/JPEG/WebP images")
    if not str(output_dir).strip():
        raise ParamError(names[1], str(output_dir), "a folder for the outputs")
    if target.exists() and not target.is_dir():
        raise ParamError(names[1], str(output_dir), "a folder (this is a file)")
    if target.resolve() == source.resolve():
        raise ParamError(names[1], str(output_dir), f"a folder other than {names[0]} (outputs would become inputs)")
    check_writable_folder(target, names[1], output_dir)
    return source.resolve(), target.resolve()


def check_writable_folder(folder: Path, name: str, value: object = None) -> None:
    """Create `folder` and write a probe file in it; refused naming `name` when either fails (before model work)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".reimagine-probe-"):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        shown = str(folder if value is None else value)
        raise ParamError(name, shown, f"a folder that can be created and written to ({why})") from None


def list_folder(folder: Path, follow_links: bool = True) -> tuple[list[Path], list[str], list[tuple[str, str]]]:
    """(input images sorted by name, names of ignored files, (name, reason) of links passed over) of a folder;
    subfolders do not count."""
    images, ignored, passed = [], [], []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        is_input = path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
        if is_input and path.is_symlink() and (reason := link_problem(path, follow_links)):
            passed.append((path.name, reason))
        elif not path.is_file():
            continue
        elif is_input:
            images.append(path)
        else:
            ignored.append(path.name)
    return images, ignored, passed


def link_problem(path: Path, follow_links: bool) -> str | None:
    """Why the link `path` is passed over (None: it is followed)."""
    if not follow_links:
        return f"{path.name} is a link: links in the input folder are not followed here"
    try:
        path.resolve(strict=True)
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError on a loop
        return f"{path.name} is a link that loops or leads nowhere"
    return None


def job_key(values: dict[str, Any]) -> str:
    """A short key of a job's settings: every checked value except seed and n (those are tracked per output)."""
    kept = {k: v for k, v in values.items() if k not in ("seed", "n")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def runs_to_do(name: str, sha256: str, values: dict[str, Any], tags: list[SourceTag]) -> tuple[Run, ...]:
    """The runs that finish one input (empty: already done); see the module's resume rule."""
    n, seed, key = values["n"], values["seed"], job_key(values)
    same = [t for t in tags if t.input == name and t.sha256 == sha256 and t.job == key and t.complete]
    if seed != -1:
        same = [t for t in same if t.seed == seed]
    if not same:
        return (Run(0, n, seed, seed),)
    by_seed: dict[int, set[int]] = {}
    for tag in same:
        by_seed.setdefault(tag.seed, set()).add(tag.index)
    job_seed = max(by_seed, key=lambda s: len(by_seed[s] & set(range(n))))
    missing = [i for i in range(n) if i not in by_seed[job_seed]]
    return tuple(Run(first, count, seed_at(job_seed, first), job_seed) for first, count in spans(missing))


def seed_at(job_seed: int, index: int) -> int:
    """Seed of image `index` of a job (the WebUI's 32-bit wrap)."""
    return (job_seed + index) % (MAX_SEED + 1)


def spans(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted indices as (first, count) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


def finished_flags(count: int, interrupted: bool, max_batch: int) -> list[bool]:
    """Which of a job's `count` images are finished: after an interrupt, the last batch's may be cut short."""
    if not interrupted or count == 0:
        return [True] * count
    last_batch_start = (count - 1) // max(1, max_batch) * max(1, max_batch)
    return [i < last_batch_start for i in range(count)]


def plan_folder(
    input_dir: Path | str,
    output_dir: Path | str,
    values: dict[str, Any],
    names: tuple[str, str] = ("input_dir", "output_dir"),
    follow_links: bool = True,
) -> FolderPlan:
    """Check the folders, list the inputs, read the outputs' tags and decide each input's runs.

    `values`: the job's checked values (the host's parameter group). An unreadable, oversized or linked input
    (see the module's rule on links) is recorded as failed, with its reason.
    """
    source, target = check_folders(input_dir, output_dir, names)
    images, ignored, passed = list_folder(source, follow_links)
    plan = FolderPlan(source, target, failed=passed, ignored=ignored, tags=read_tags(target), follow_links=follow_links)
    for path in images:
        try:
            size = path.stat().st_size
            digest = file_sha256(path) if size <= MAX_BYTES else ""
        except OSError as exc:
            plan.failed.append((path.name, f"cannot read {path.name} ({exc.strerror or exc})"))
            continue
        if size > MAX_BYTES:  # known from its size: never read, not even for its hash
            plan.failed.append((path.name, f"{path.name} is {size} bytes; at most {MAX_BYTES} are allowed"))
            continue
        runs = runs_to_do(path.name, digest, values, plan.tags.get(path.name, []))
        if runs:
            plan.pending.append(Pending(path, path.name, digest, runs))
        else:
            plan.skipped.append(path.name)
    return plan


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_tags(folder: Path) -> dict[str, list[SourceTag]]:
    """The source tags of the PNGs in an output folder, by input name (text chunks only; no pixels decoded)."""
    tags: dict[str, list[SourceTag]] = {}
    if not folder.is_dir():
        return tags
    for path in folder.glob("*.png"):
        try:
            text = read_png_text(path).get(SOURCE_KEY)
        except (OSError, PngTextError):
            continue  # not one of ours, or broken: it records nothing
        tag = SourceTag.parse(text) if text else None
        if tag is not None:
            tags.setdefault(tag.input, []).append(tag)
    return tags


def next_number(folder: Path) -> int:
    """The first file number above every `NNNNN-` number in a folder (any extension)."""
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))] if folder.is_dir() else []
    return max(numbers, default=-1) + 1


def output_stem(number: int, seed: int, input_name: str) -> str:
    """An output's file name without extension: `NNNNN-SEED-<input stem>` (the stem made safe, at most 60 chars)."""
    stem = _UNSAFE.sub("_", Path(input_name).stem).strip("._")[:STEM_LENGTH] or "image"
    return f"{number:05d}-{seed}-{stem}"
