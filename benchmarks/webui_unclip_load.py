"""The WebUI's own load of a real-size unCLIP checkpoint, beside the standalone's (`benchmarks.single_file`).

`REIMAGINE_WEBUI_DIR=/path/to/webui PYTHONPATH=. .venv/bin/python -m benchmarks.webui_unclip_load FILE
[--rounds 2] [--limit 1]`; FILE is a real-size unCLIP checkpoint (`python -m sd_reimagine.testing.real_size_unclip
OUT.safetensors`, ~3.9 GB float16). Each round starts a fresh WebUI 1.10.1 process (CPU, float32, the user's model
the tiny SD 1.5) and runs one `/reimagine/v1/variations` job on FILE at 64x64, 1 step: the swap loads FILE with the
WebUI's loader and its own config guess, the restore brings the user's model back. The rounds share one data dir,
so the WebUI's SHA-256 of FILE is computed in the first round only (as for a user, whose hash cache keeps it).
Each row: the job's wall time and the swap/restore/sampling timings it reports, the WebUI process's CPU time, RSS
before the job, the job's sampled peak RSS and anonymous RSS, and VmHWM (the process's lifetime peak).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.process_memory import GIB_KIB, PeakSampler, process_cpu_s, status_kib
from tests.webui.conftest import WebUI, build_tiny_models, free_port, make_data_dir, webui_root


def reference_png() -> str:
    """A 64x64 noise image, base64 PNG (any reference will do: the load is measured)."""
    import numpy as np
    from PIL import Image

    pixels = (np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def job_body(model: str) -> dict[str, Any]:
    image = {"image": reference_png(), "weight": 1.0}
    return {"model": model, "seed": 1, "steps": 1, "width": 64, "height": 64, "sampler": "Euler a", "images": [image]}


def one_round(webui: WebUI, model: str) -> dict[str, Any]:
    """Start the WebUI, run the job on `model` with memory sampled, stop it."""
    webui.start()
    try:
        pid = webui.process.pid
        before_kib, cpu, log_start = status_kib(pid, "VmRSS"), process_cpu_s(pid), len(webui.log_text())
        started = time.perf_counter()
        with PeakSampler(pid) as peak:
            response = webui.post("/reimagine/v1/variations", json=job_body(model), timeout=3600)
        wall = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"variations answered {response.status_code}: {response.text[:2000]}")
        log = webui.log_text()[log_start:]
        row = {"startup_s": webui.startup_seconds, "wall_s": wall, "cpu_s": process_cpu_s(pid) - cpu}
        row.update({key: value for key, value in response.json()["timings"].items()})
        row.update(rss_before_gib=before_kib / GIB_KIB, peak_rss_gib=peak.rss_gib, peak_anon_gib=peak.anon_gib)
        row.update(vm_hwm_gib=status_kib(pid, "VmHWM") / GIB_KIB, hashed="Calculating sha256 for" in log)
        return row
    finally:
        webui.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webui_unclip_load", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=1, help="sd_checkpoints_limit (the WebUI's default is 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/webui-unclip-load.json"))
    args = parser.parse_args(argv)
    root = webui_root()
    if root is None:
        parser.error("set REIMAGINE_WEBUI_DIR to a WebUI 1.10.1 root")
    file = args.file.resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-unclip-load-") as scratch:
        tiny = Path(scratch) / "tiny"
        tiny.mkdir()
        build_tiny_models(root, tiny)
        data_dir = make_data_dir(Path(scratch) / "data", tiny, {"sd_checkpoints_limit": args.limit})
        (data_dir / "models" / "Stable-diffusion" / file.name).symlink_to(file)
        for number in range(1, args.rounds + 1):
            webui = WebUI(root, data_dir, tiny, free_port(), data_dir / f"webui-{number}.log")
            rows.append({"round": number, "limit": args.limit, **one_round(webui, file.stem)})
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
