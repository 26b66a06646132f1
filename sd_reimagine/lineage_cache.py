"""The lineage scan's cache file, `.reimagine-lineage-cache.json` in the scanned folder.

The file is read as untrusted input (anyone who can drop files into the folder can drop this one): its size is
checked from `stat` before it is read, and every record must have the shape `save_disk_cache` writes. A cache that
is too big or of any other shape (`[]`, `1e999`, wrong types, a path for a name) is ignored as a whole, with one log
line, and the scan rebuilds it from the PNGs. An absent cache or one of another version is simply rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .lineage_node import CacheShapeError, Entry, entry_from_cache

CACHE_FILE = ".reimagine-lineage-cache.json"
CACHE_VERSION = 1
MAX_CACHE_BYTES = 64 * 1024 * 1024  # ~100,000 images at their largest records (prompts are cut to 300 chars)

log = logging.getLogger("sd_reimagine")


def load_disk_cache(root: Path) -> dict[str, Entry]:
    """Entries from the folder's cache file; an absent, old, too big or malformed cache is an empty one."""
    path = root / CACHE_FILE
    try:
        size = path.stat().st_size
    except OSError:
        return {}
    try:
        if size > MAX_CACHE_BYTES:
            raise CacheShapeError(f"{size} bytes, more than {MAX_CACHE_BYTES}")
        data = json.loads(path.read_bytes(), parse_constant=_refuse_constant)
        if isinstance(data, dict) and data.get("version") != CACHE_VERSION and "files" in data:
            return {}  # written by another version of the extension: rebuilt quietly
        return entries_of(root, data)
    except (OSError, ValueError, RecursionError) as exc:  # CacheShapeError and JSON errors are ValueErrors
        log.warning("Reimagine lineage: the cache file %s is ignored and rebuilt (%s)", path, _reason(exc))
        return {}


def entries_of(root: Path, data: object) -> dict[str, Entry]:
    """The entries of a parsed cache file; CacheShapeError when anything in it has another shape."""
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("files"), dict):
        raise CacheShapeError("not a cache object of version 1")
    return {rel: entry_from_cache(rel, record, os.path.join(root, rel)) for rel, record in data["files"].items()}


def save_disk_cache(root: Path, entries: dict[str, Entry]) -> bool:
    """Write the cache file atomically; False when the folder is read-only (the tree works without it)."""
    files = {
        rel: [size, mtime, status, node.to_json() if node else None]
        for rel, (size, mtime, status, node) in entries.items()
    }
    temporary = root / f"{CACHE_FILE}.{os.getpid()}.tmp"
    try:
        temporary.write_text(json.dumps({"version": CACHE_VERSION, "files": files}), encoding="utf-8")
        os.replace(temporary, root / CACHE_FILE)
    except OSError:
        temporary.unlink(missing_ok=True)
        return False
    return True


def _refuse_constant(name: str) -> float:
    raise CacheShapeError(f"the number {name}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CacheShapeError):
        return f"unexpected {exc}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
