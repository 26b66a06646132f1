"""`python -m benchmarks [--quick] [--sizes tiny,medium] [--out benchmarks/results/latest.json] [--threads 1]`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .harness import SIZES, Settings, quiet, sdxl_pair, unclip_pipe
from .report import WEBUI_ENV, WEBUI_PLACEHOLDER, document, table

ITEMS = ("reimagine", "again", "sdxl", "webui", "memory")
ITEM_NUMBERS = {str(number): name for number, name in enumerate(ITEMS, 1)}  # the item numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 repetitions, 10 growth jobs (a rough look)")
    parser.add_argument("--sizes", default="tiny,medium", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument(
        "--items", default=",".join(ITEMS), help=f"comma-separated, of {', '.join(ITEMS)} (or their issue numbers 1-5)"
    )
    parser.add_argument("--reps", type=int, default=None, help="repetitions after the warm-up (default 5; quick 2)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 avoids oversubscription on a shared machine)"
    )
    parser.add_argument("--out", default="benchmarks/results/latest.json", help="where to write the JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    sizes = [s for s in args.sizes.split(",") if s]
    items = [ITEM_NUMBERS.get(i, i) for i in args.items.split(",") if i]
    for name in sizes:
        if name not in SIZES:
            parser.error(f"unknown size {name!r}; known: {', '.join(SIZES)}")
    settings = Settings(reps=args.reps or (2 if args.quick else 5), growth_jobs=10 if args.quick else 100)

    from .memory import bench_memory
    from .reimagine import bench_generate_again, bench_reimagine
    from .sdxl import bench_sdxl

    rows = []
    with quiet():
        for size in sizes:
            scale = SIZES[size]["scale"]
            if "reimagine" in items or "again" in items:
                pipe = unclip_pipe(scale)
                if "reimagine" in items:
                    rows += bench_reimagine(size, settings, pipe)
                if "again" in items:
                    rows += bench_generate_again(size, settings, pipe)
                del pipe
            if "sdxl" in items:
                rows += bench_sdxl(size, settings, sdxl_pair(scale))
    webui_rows, webui_facts = bench_webui_item(items, settings)
    rows += webui_rows
    if "memory" in items:
        for size in sizes:
            rows += bench_memory(size, settings.growth_jobs, args.threads)
    run_settings = {"reps": settings.reps, "warmup": settings.warmup, "sizes": {s: SIZES[s] for s in sizes}}
    if webui_facts:
        run_settings["webui"] = webui_facts
    doc = document(rows, run_settings)
    print(table(doc))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2))
        print(f"\nWrote {out}")
    return 0


def bench_webui_item(items: list[str], settings: Settings) -> tuple[list[dict], dict]:
    """Item 4 against a real WebUI when REIMAGINE_WEBUI_DIR is set and the item is selected, else the placeholder."""
    if "webui" not in items:
        return [WEBUI_PLACEHOLDER], {}
    if not os.environ.get(WEBUI_ENV, "").strip():
        note = f"not measured: {WEBUI_ENV} is not set; {WEBUI_PLACEHOLDER['note']}"
        return [{**WEBUI_PLACEHOLDER, "note": note}], {}
    from .webui import bench_webui

    return bench_webui(settings)


if __name__ == "__main__":
    raise SystemExit(main())
