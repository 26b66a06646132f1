"""Lineage tree of a 5,000-image folder: cold scan, warm rescan (in memory), reopen (disk cache), first page.

`python -m benchmarks.lineage_tree [--count 5000] [--reps 3] [--folder DIR]`: writes `count` small PNGs with realistic
Reimagine infotext (a few generations deep, some with two parents; `sd_reimagine.testing.lineage_folder`), then
times each step with wall time and this process's CPU time (medians of `reps`). Cold = a new scanner and no cache
file (text chunks of every file read, the cache file written); warm = the same scanner again (every file stat'ed,
nothing read); reopen = a new scanner, as after a restart (the folder's cache file read). The files were just
written, so they are in the OS page cache: a cold disk is slower.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sd_reimagine.lineage_tree import CACHE_FILE, LineageScanner
from sd_reimagine.lineage_view import Thumbnails, page_of, render_page
from sd_reimagine.testing.lineage_folder import write_synthetic_folder


def timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, process CPU s, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def median_timing(work: Callable[[], Any], reps: int, before: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Medians of `reps` timed calls, `before` run untimed ahead of each; the last result's stats."""
    walls, cpus, result = [], [], None
    for _ in range(reps):
        before()
        wall, cpu, result = timed(work)
        walls.append(wall)
        cpus.append(cpu)
    return {"wall_s": round(statistics.median(walls), 4), "cpu_s": round(statistics.median(cpus), 4), "last": result}


def bench(folder: Path, count: int, reps: int) -> dict[str, Any]:
    """Write the folder, then time cold, warm, reopened and the first page (cold and warm thumbnails)."""
    wall, cpu, _ = timed(lambda: write_synthetic_folder(folder, count, roots=max(1, count // 50)))
    rows: dict[str, Any] = {"files": count, "write_folder": {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}}
    no_cache_file = lambda: (folder / CACHE_FILE).unlink(missing_ok=True)  # noqa: E731
    rows["cold"] = median_timing(lambda: LineageScanner().tree(folder), reps, no_cache_file)
    scanner = LineageScanner()
    scanner.tree(folder)
    rows["warm"] = median_timing(lambda: scanner.tree(folder), reps)
    rows["reopen"] = median_timing(lambda: LineageScanner().tree(folder), reps)
    tree = rows["warm"]["last"]
    biggest = max(tree.roots, key=lambda root: len(tree.subtree(root)))
    page = page_of(tree, biggest, 1)
    for key in ("first_page_new_thumbnails", "first_page_cached_thumbnails"):  # the second finds the files
        wall, cpu, _ = timed(lambda: render_page(page, Thumbnails(), "b"))
        rows[key] = {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4)}
    stats = tree.stats
    rows["tree"] = {
        "nodes": stats.nodes,
        "roots": len(tree.roots),
        "deepest_generation": max(n.generation for n in tree.nodes.values()),
        "biggest_subtree": page.total,
        "page_nodes": len(page.rows),
        "cache_file_kb": round((folder / CACHE_FILE).stat().st_size / 1024),
    }
    for key in ("cold", "warm", "reopen"):
        result = rows[key].pop("last").stats
        rows[key].update(read=result.read, cached=result.cached)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lineage_tree", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="PNG files to write (default 5000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (medians)")
    parser.add_argument("--folder", type=Path, default=None, help="where to write them (default: a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lineage-bench-") as temporary:
        folder = args.folder or Path(temporary)
        rows = bench(folder, args.count, args.reps)
    for key, value in rows.items():
        if isinstance(value, dict) and "wall_s" in value:
            print(f"{key:30s} wall {value['wall_s'] * 1000:8.1f} ms   cpu {value['cpu_s'] * 1000:8.1f} ms")
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
