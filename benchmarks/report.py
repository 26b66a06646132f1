"""The markdown table and the JSON document of a benchmark run."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Any

WEBUI_ENV = "REIMAGINE_WEBUI_DIR"
WEBUI_PLACEHOLDER = {
    "item": "4 WebUI",
    "size": "real",
    "name": "Reimagine vs native img2img-unCLIP; post-step vs built-in refiner; swap times",
    "unit": "s",
    "ours": None,
    "reference_name": "WebUI native paths",
    "reference": None,
    "ratio": None,
    "overhead": None,
    "ours_cpu": None,
    "reference_cpu": None,
    "cpu_ratio": None,
    "target": "ratio <= 1.02",
    "note": f"needs a WebUI 1.10.1: set {WEBUI_ENV} to its root (as for tests/webui) and run --items webui",
}


def machine() -> dict[str, Any]:
    import diffusers
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "platform": platform.platform(),
    }


def document(rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "settings": settings,
        "rows": rows,
    }


def _cell(stat: dict[str, float] | None, unit: str) -> str:
    if not stat:
        return "—"
    if unit == "s":
        return f"{stat['median'] * 1000:.1f} ({stat['min'] * 1000:.1f}–{stat['max'] * 1000:.1f}) ms"
    if stat["min"] == stat["max"]:
        return f"{stat['median']:.1f} {unit}"
    return f"{stat['median']:.1f} ({stat['min']:.1f}–{stat['max']:.1f}) {unit}"


def _cpu_cell(r: dict[str, Any]) -> str:
    """Median process CPU time of ours / the reference (CPU time holds on a busy machine; wall time does not)."""
    mine, theirs = r.get("ours_cpu"), r.get("reference_cpu")
    if not mine:
        return "—"
    text = f"{mine['median'] * 1000:.1f} ms"
    return text + (f" / {theirs['median'] * 1000:.1f} ms" if theirs else "")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _overhead(r: dict[str, Any]) -> str:
    if r.get("reference_overhead") is None:
        return _number(r["overhead"])
    return f"{_number(r['overhead'])} (ref {_number(r['reference_overhead'])})"


def table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, GPU {m['gpu'] or 'none'}; "
        f"torch {m['torch']}, diffusers {m['diffusers']}, Python {m['python']}",
        f"Date: {doc['date']}  ",
        f"Command: `{doc['command']}`  ",
        f"Settings: {doc['settings']}  ",
        "Ratio: ours / reference, medians of wall time; CPU: process CPU time (all threads), the ratio to trust on a "
        "busy machine.",
        "",
        "| Item | Size | Measurement | Ours median (min–max) | Reference | Reference median (min–max) "
        "| Ratio | CPU ours / ref | CPU ratio | Overhead ours (ref) | Target | Note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['item']} | {r['size']} | {r['name']} | {_cell(r['ours'], r['unit'])} | {r['reference_name']} "
            f"| {_cell(r['reference'], r['unit'])} | {_number(r['ratio'])} | {_cpu_cell(r)} "
            f"| {_number(r.get('cpu_ratio'))} | {_overhead(r)} "
            f"| {r['target']} | {r['note']} |"
        )
    return "\n".join(lines)
