"""`python -m benchmarks.gpu --tiny`: the GPU benchmark's own code at tiny size on the CPU (no CUDA call), writing
its JSON and Markdown table. Structure only, never speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[1]
# UNet calls per run at tiny size (4 steps): the handoff at 0.8 gives the base 3 steps and the refiner 1
UNET_CALLS = {"Reimagine unCLIP-H": 4, "SDXL base + refiner": 4, "Reimagine XL": 4}


def test_tiny_run_writes_both_sides_of_every_job_with_and_without_offload(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--tiny", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((tmp_path / "gpu-tiny.json").read_text())
    assert doc["settings"]["device"] == "cpu" and doc["machine"]["gpu"] is None
    rows = doc["rows"]
    assert [r["offload"] for r in rows] == ["none"] * 3 + ["model (no-op on cpu)"] * 3
    for r in rows:
        calls = next(n for prefix, n in UNET_CALLS.items() if r["job"].startswith(prefix))
        for side in (r["ours"], r["reference"]):
            assert side["wall_s"] > 0 and side["cpu_s"] > 0 and side["n"] == 1
            assert 0 < side["step_s"] < side["wall_s"] and side["unet_calls"] == calls
            assert side["peak_mib"] > 50  # the peak RSS of a process holding torch and the models
        assert r["ratios"]["wall_s"] == pytest.approx(r["ours"]["wall_s"] / r["reference"]["wall_s"])
    table = (tmp_path / "gpu-tiny.md").read_text()
    assert "| Job | Offload | Ours wall" in table and "peak RSS" in table
    assert table.count("\n| Re") + table.count("\n| SD") == 6


def test_without_a_gpu_the_real_run_says_how_to_run_on_the_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the real run would start")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "a CUDA GPU is needed" in done.stderr and "--tiny" in done.stderr
    assert not list(tmp_path.iterdir())


def test_materialize_fills_a_meta_module_as_a_checkpoint_would():
    """The real-size builder's fill, on a tiny text tower: position ids counted, norm scales 1, biases 0, seeded."""
    import torch
    from transformers import CLIPTextModel

    from benchmarks.gpu.models import _on_meta, _text_config, materialize

    def build(seed: int):
        return materialize(
            _on_meta(lambda: CLIPTextModel(_text_config(32, 2, 4, 32, "gelu"))), "cpu", torch.float32, seed
        )

    model = build(3)
    buffers = dict(model.named_buffers())
    position_ids = next(value for name, value in buffers.items() if name.endswith("position_ids"))
    assert torch.equal(position_ids[0], torch.arange(77))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(torch.equal(n.weight, torch.ones(32)) and torch.equal(n.bias, torch.zeros(32)) for n in norms)
    weight = model.get_input_embeddings().weight
    assert weight.device.type == "cpu" and 0.015 < float(weight.std()) < 0.025
    ids = torch.tensor([[512, 40, 41, 513] + [513] * 73])
    out = model(ids).last_hidden_state
    assert torch.isfinite(out).all() and torch.equal(out, build(3)(ids).last_hidden_state)
    assert not torch.equal(out, build(4)(ids).last_hidden_state)
