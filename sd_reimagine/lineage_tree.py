"""The variation tree of an output folder, built from PNG text chunks alone (pixels are never decoded for it).

A node is one Reimagine output: its own hash (the `reimagine-hash` text chunk, the full `image_digest`), its
references with weights, parents and generation, noise level, seed and prompt (from its infotext). A child links to
every reference it names: a reference's 10-hex short hash matches a node's own hash prefix. References that are not in
the folder (the uploaded originals, or files moved away) become root nodes without a file: "reference <hash>".
A file with the Reimagine fields but no `reimagine-hash` chunk (saved before the chunk existed) is decoded once for
its hash, and that is cached like the rest.

Cache: per file, keyed by (relative path, size, mtime_ns), in memory per folder and in the folder's
`.reimagine-lineage-cache.json` (`lineage_cache`). PNG only: other formats carry no text chunks the WebUI's way.
Files without Reimagine fields are ignored; unreadable or corrupt ones are skipped and counted.

Untrusted files: every value is checked before use (`lineage_node`): a `reimagine-hash` chunk that is not a 64-hex
hash is treated as absent (the file is decoded for its true hash), references that are not 10-hex hashes are
dropped. A link whose target lies outside the scanned folder is never followed, and one that loops is skipped.
Nodes that no missing reference leads to (their own parent, or parents in a cycle) become roots, marked with why
(`LineageTree.marks`), so they are shown, and every walk visits a node once.
"""

from __future__ import annotations

import os
import stat as stat_mode
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import ParamError, ReimagineError
from .images import image_digest, open_image, to_rgb
from .infotext import NOISE_LEVEL, Lineage, parse_infotext
from .lineage_cache import CACHE_FILE, load_disk_cache, save_disk_cache
from .lineage_node import (
    FIELD_KEPT,
    PROMPT_KEPT,
    SHORT,
    Entry,
    Node,
    checked_references,
    clipped,
    is_full_hash,
    is_short_hash,
)
from .png_text import PngTextError, read_png_text

__all__ = ["CACHE_FILE", "HASH_CHUNK", "LineageScanner", "LineageTree", "Node", "own_hash_chunks"]
HASH_CHUNK = "reimagine-hash"


def is_reimagine_infotext(infotext: str | None) -> bool:
    """Whether infotext carries the Reimagine lineage fields (only those outputs get a `reimagine-hash`)."""
    return bool(infotext) and Lineage.from_fields(parse_infotext(infotext)[2]) is not None


def own_hash_chunks(image: Image.Image, infotext: str | None) -> dict[str, str]:
    """The extra PNG text chunk of a Reimagine output: its own pixel digest, as `open_image` will compute it."""
    return {HASH_CHUNK: image_digest(to_rgb(image))} if is_reimagine_infotext(infotext) else {}


@dataclass
class ScanStats:
    """What one scan found and how it got there."""

    files: int = 0  # PNG files seen
    nodes: int = 0  # Reimagine outputs among them
    ignored: int = 0  # PNGs without Reimagine fields
    skipped: int = 0  # unreadable or corrupt
    cached: int = 0  # answered from the cache (memory or disk)
    read: int = 0  # text chunks read this time
    decoded: int = 0  # decoded for their hash (no `reimagine-hash` chunk)
    seconds: float = 0.0


@dataclass
class LineageTree:
    """Nodes by key, children by parent key (oldest first), roots (missing references, newest activity first)."""

    folder: str
    nodes: dict[str, Node]
    children: dict[str, list[str]]
    roots: list[str]
    stats: ScanStats = field(default_factory=ScanStats)
    marks: dict[str, str] = field(default_factory=dict)  # roots that are in the folder: why they are roots

    def subtree(self, root: str) -> list[tuple[Node, int]]:
        """(node, depth) of `root` and everything below it, depth first, each node once (at its first path)."""
        rows, seen, stack = [], set(), [(root, 0)]
        while stack:
            key, depth = stack.pop()
            if key in seen or key not in self.nodes:
                continue
            seen.add(key)
            rows.append((self.nodes[key], depth))
            stack.extend((child, depth + 1) for child in reversed(self.children.get(key, ())))
        return rows

    def find(self, text: str) -> Node:
        """The node whose key starts with `text` (a full or short hash); refused clearly otherwise."""
        text = text.strip().lower()
        matches = [node for key, node in self.nodes.items() if text and key.startswith(text)]
        if len(matches) != 1:
            allowed = "the hash of one node shown in the tree" + (" (several match)" if matches else "")
            raise ParamError("node", text, allowed)
        return matches[0]


class LineageScanner:
    """Builds trees of folders, caching each file's record in memory and in the folder's cache file."""

    def __init__(self, disk_cache: bool = True):
        self.disk_cache = disk_cache
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, Entry]] = {}
        self._trees: dict[tuple[str, bool], tuple[Any, LineageTree]] = {}  # the last tree and the files it had

    def tree(self, folder: str | Path, recursive: bool = True) -> LineageTree:
        """The tree of `folder` now (files changed since the last scan are read again)."""
        with self._lock:  # UI events run in threads: one scan at a time writes the caches
            return self._scan(folder, recursive)

    def _scan(self, folder: str | Path, recursive: bool) -> LineageTree:
        started = time.perf_counter()
        root = check_folder(folder)
        known = self._memory.get(str(root))
        if known is None:
            known = load_disk_cache(root) if self.disk_cache else {}
        stats, entries = ScanStats(), {}
        for rel, stat in png_files(root, recursive):
            entries[rel] = self._entry(root, rel, stat, known.get(rel), stats)
        self._memory[str(root)] = entries
        if self.disk_cache and stats.read:
            save_disk_cache(root, entries)
        previous = self._trees.get((str(root), recursive))
        if previous and not stats.read and previous[0] == entries.keys():  # nothing changed: same links
            last = previous[1]
            tree = LineageTree(str(root), last.nodes, last.children, last.roots, stats, last.marks)
        else:
            tree = build_tree(str(root), [e[3] for e in entries.values() if e[3] is not None], stats)
        self._trees[(str(root), recursive)] = (entries.keys(), tree)
        stats.seconds = time.perf_counter() - started
        return tree

    def _entry(
        self, root: Path, rel: str, stat: os.stat_result | None, cached: Entry | None, stats: ScanStats
    ) -> Entry:
        stats.files += 1
        if stat is None:  # a link out of the folder or in a loop, or a file gone since the listing
            entry = UNREADABLE
        elif cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            stats.cached += 1
            entry = cached
        else:
            stats.read += 1
            entry = read_entry(root / rel, stat, stats)
        status = entry[2]
        stats.nodes += status == "node"
        stats.ignored += status == "none"
        stats.skipped += status == "corrupt"
        return entry


def check_folder(folder: str | Path) -> Path:
    """The folder as an absolute path; refused with the value named when it is no folder."""
    path = Path(str(folder or "")).expanduser()
    if not str(folder or "").strip() or not path.is_dir():
        raise ParamError("folder", str(folder), "an existing folder of images")
    return path.resolve()


UNREADABLE: Entry = (-1, -1, "corrupt", None)


def png_files(root: Path, recursive: bool) -> Iterator[tuple[str, os.stat_result | None]]:
    """(relative path, stat) of the PNG files in `root`, sorted; hidden folders (caches) are passed over, linked
    folders are not entered, and the stat is None for a file that cannot be read here (see `contained_stat`)."""
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    stack.append((entry.path, prefix + entry.name + os.sep))
            elif entry.name.lower().endswith(".png"):
                yield prefix + entry.name, contained_stat(entry, root)


def contained_stat(entry: os.DirEntry, root: Path) -> os.stat_result | None:
    """The entry's stat when it is a regular file in `root`; None for a link leading out of it or looping, or a
    file that vanished (a crafted folder must not make the scan read elsewhere or fail)."""
    try:
        if entry.is_symlink() and not Path(os.path.realpath(entry.path)).is_relative_to(root):
            return None
        found = entry.stat()
    except OSError:
        return None
    return found if stat_mode.S_ISREG(found.st_mode) else None


def read_entry(path: Path, stat: os.stat_result, stats: ScanStats) -> Entry:
    """The cache entry of one file: its node, "none" without Reimagine fields, "corrupt" when unreadable."""
    try:
        node = node_of_file(path, stat.st_mtime_ns, stats)
    except (OSError, PngTextError, ValueError, ReimagineError):
        return stat.st_size, stat.st_mtime_ns, "corrupt", None
    return stat.st_size, stat.st_mtime_ns, ("node" if node else "none"), node


def node_of_file(path: Path, mtime_ns: int, stats: ScanStats) -> Node | None:
    """The node of a PNG from its text chunks (None without Reimagine fields); decoded only when it has no hash."""
    texts = read_png_text(path)
    prompt, _negative, fields = parse_infotext(texts.get("parameters", ""))
    lineage = Lineage.from_fields(fields)
    if lineage is None:
        return None
    digest = texts.get(HASH_CHUNK, "").strip().lower()
    if not is_full_hash(digest):  # absent (an older file) or not a hash at all: the pixels tell the true one
        stats.decoded += 1
        digest = open_image(path).digest
    return Node(
        key=digest,
        path=str(path),
        references=checked_references(lineage.references),
        parents=tuple(parent.lower() for parent in lineage.parents if is_short_hash(parent.lower())),
        generation=lineage.generation,
        noise_level=clipped(fields.get(NOISE_LEVEL, ""), FIELD_KEPT),
        seed=clipped(fields.get("Seed", ""), FIELD_KEPT),
        prompt=clipped(prompt, PROMPT_KEPT),
        mtime_ns=mtime_ns,
    )


def build_tree(folder: str, nodes: list[Node], stats: ScanStats | None = None) -> LineageTree:
    """Link nodes to the nodes their references name; references not among them become roots."""
    by_key = {}
    for node in sorted(nodes, key=lambda n: (n.mtime_ns, n.path or "")):
        by_key.setdefault(node.key, node)  # the same picture saved twice is one node (its oldest file)
    by_short = {key[:SHORT]: key for key in by_key}
    children: dict[str, list[str]] = {}
    newest: dict[str, int] = {}
    for node in list(by_key.values()):
        for short in dict.fromkeys(short.lower() for short, _weight in node.references):
            parent = by_short.get(short)
            if parent is None:
                parent = short
                newest[parent] = max(newest.get(parent, 0), node.mtime_ns)
                by_key.setdefault(parent, Node(key=parent))
            if parent != node.key:
                children.setdefault(parent, []).append(node.key)
    roots = sorted(newest, key=lambda key: -newest[key])
    marks = loop_roots(by_key, children, roots)
    return LineageTree(folder, by_key, children, roots + list(marks), stats or ScanStats(), marks)


def loop_roots(by_key: dict[str, Node], children: dict[str, list[str]], roots: list[str]) -> dict[str, str]:
    """The nodes no root leads to, each made a root (the oldest of a cycle leads it), with why; in node order."""
    reached: set[str] = set()

    def walk(start: str) -> None:
        stack = [start]
        while stack:
            key = stack.pop()
            if key not in reached:
                reached.add(key)
                stack.extend(children.get(key, ()))

    for root in roots:
        walk(root)
    marks = {}
    for key, node in by_key.items():  # oldest first (build_tree's order)
        if key in reached:
            continue
        shorts = {short for short, _weight in node.references}
        if not shorts:
            marks[key] = "no readable reference"
        elif shorts == {node.short}:
            marks[key] = "its own parent"
        else:
            marks[key] = "in a cycle of parents"
        walk(key)
    return marks
