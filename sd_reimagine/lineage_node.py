"""One node of the lineage tree, and the formats its values must have before the tree uses them.

Every value here comes from a file someone else may have made (a PNG's text chunks, the folder's cache file), so
nothing is taken as it is: a hash is lowercase hex of its known length (64 for an image's own hash, 10 for a
reference in infotext) before it names a file, a thumbnail path or an HTML element; texts are cut to what the view
shows; a cache record of any other shape is refused as a whole (`CacheShapeError`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SHORT = 10  # hex digits of a reference's hash in infotext (`InputImage.short_hash`)
FULL_HASH = re.compile(r"[0-9a-f]{64}")  # `images.image_digest`: SHA-256 hex
SHORT_HASH = re.compile(r"[0-9a-f]{10}")
PROMPT_KEPT = 300  # the view shows 90 characters; more would only grow the cache
FIELD_KEPT = 40  # seed and noise level: numbers as text
STATUSES = ("node", "none", "corrupt")


def is_full_hash(text: object) -> bool:
    """Whether `text` is an image's own hash: 64 lowercase hex digits."""
    return isinstance(text, str) and FULL_HASH.fullmatch(text) is not None


def is_short_hash(text: object) -> bool:
    """Whether `text` is a reference's short hash: 10 lowercase hex digits."""
    return isinstance(text, str) and SHORT_HASH.fullmatch(text) is not None


def clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


@dataclass(frozen=True)
class Node:
    """One image of the tree; `path` is None for a reference that is not in the folder (a root)."""

    key: str  # the full own hash; a missing reference's 10-hex short hash
    path: str | None = None
    references: tuple[tuple[str, float], ...] = ()
    parents: tuple[str, ...] = ()
    generation: int = 0
    noise_level: str = ""
    seed: str = ""
    prompt: str = ""
    mtime_ns: int = 0

    @property
    def short(self) -> str:
        return self.key[:SHORT]

    @property
    def label(self) -> str:
        return Path(self.path).name if self.path else f"reference {self.short}"

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _NODE_FIELDS}  # dataclasses.asdict deep-copies: 10x slower


_NODE_FIELDS = tuple(f.name for f in fields(Node))
Entry = tuple[int, int, str, Node | None]  # size, mtime_ns, status (STATUSES), node


def checked_references(references: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """The references whose hash has the short format and whose weight is a finite number (others are dropped)."""
    return tuple(
        (digest.lower(), weight)
        for digest, weight in references
        if is_short_hash(digest.lower()) and math.isfinite(weight)
    )


class CacheShapeError(ValueError):
    """A cache file that is not one this code wrote: it is ignored and rebuilt."""


def entry_from_cache(rel: object, record: object, path: str) -> Entry:
    """One cache record, checked field by field; CacheShapeError names the first thing that is wrong."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise CacheShapeError(f"file name {rel!r}")
    if not isinstance(record, list) or len(record) != 4:
        raise CacheShapeError(f"record of {rel!r}")
    size, mtime, status, node = record
    if not (_is_int(size) and _is_int(mtime) and status in STATUSES and (node is None) == (status != "node")):
        raise CacheShapeError(f"record of {rel!r}")
    return size, mtime, status, (node_from_cache(node, path) if node is not None else None)


def node_from_cache(data: object, path: str) -> Node:
    """A node from its cache record (its `path` given by the scan, never by the record)."""
    if not isinstance(data, dict) or not set(data) <= set(_NODE_FIELDS):  # a recorded "path" is not used
        raise CacheShapeError("node record")
    key, texts = data.get("key"), [data.get(name, "") for name in ("noise_level", "seed", "prompt")]
    references, parents = data.get("references", []), data.get("parents", [])
    if not is_full_hash(key) or not all(isinstance(text, str) for text in texts):
        raise CacheShapeError(f"node {key!r}")
    if not isinstance(references, list) or not all(_is_reference(item) for item in references):
        raise CacheShapeError(f"references of node {key}")
    if not isinstance(parents, list) or not all(is_short_hash(parent) for parent in parents):
        raise CacheShapeError(f"parents of node {key}")
    if not (_is_int(data.get("generation", 0)) and _is_int(data.get("mtime_ns", 0))):
        raise CacheShapeError(f"numbers of node {key}")
    noise_level, seed, prompt = texts
    return Node(
        key=key,
        path=path,
        references=tuple((digest, float(weight)) for digest, weight in references),
        parents=tuple(parents),
        generation=data.get("generation", 0),
        noise_level=clipped(noise_level, FIELD_KEPT),
        seed=clipped(seed, FIELD_KEPT),
        prompt=clipped(prompt, PROMPT_KEPT),
        mtime_ns=data.get("mtime_ns", 0),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_reference(item: object) -> bool:
    """[short hash, finite weight], as `Node.to_json` writes a reference."""
    if not isinstance(item, list) or len(item) != 2:
        return False
    digest, weight = item
    number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
    return is_short_hash(digest) and number and math.isfinite(weight)
