"""Seconds-long smoke of the benchmark harness (not a timed test: it checks structure, never speed)."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

from benchmarks import harness  # noqa: E402
from benchmarks.report import WEBUI_PLACEHOLDER, document, table  # noqa: E402

ROW_KEYS = {
    "item",
    "size",
    "name",
    "unit",
    "ours",
    "reference_name",
    "reference",
    "ratio",
    "overhead",
    "target",
    "note",
    "ours_cpu",
    "reference_cpu",
    "cpu_ratio",
}


@pytest.fixture
def one_thread():
    """One torch thread, as `python -m benchmarks` runs (2 threads on a busy 2-core machine are far slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_reimagine_row_structure(monkeypatch, one_thread):
    from benchmarks.reimagine import bench_generate_again, bench_reimagine

    monkeypatch.setitem(harness.SIZES, "smoke", {"scale": 1, "side": 64, "steps": 2})
    settings = harness.Settings(reps=1, warmup=0)
    pipe = harness.unclip_pipe(1)
    rows = bench_reimagine("smoke", settings, pipe)[:1] + bench_generate_again("smoke", settings, pipe)
    for row in rows:
        assert ROW_KEYS <= set(row)
        assert row["ours"]["n"] == 1 and row["ours"]["min"] <= row["ours"]["median"] <= row["ours"]["max"]
        assert row["ratio"] > 0
        assert row["ours_cpu"]["n"] == row["reference_cpu"]["n"] == 1 and row["cpu_ratio"] > 0
        assert row["cpu_ratio"] == row["ours_cpu"]["median"] / row["reference_cpu"]["median"]
    assert rows[0]["overhead"] >= 1.0  # total time includes the time inside model calls
    text = table(document([*rows, WEBUI_PLACEHOLDER], {"reps": 1}))
    assert text.count("\n| ") == 3 + 1  # header + rows
    assert "tests/webui" in text
    assert "| CPU ours / ref | CPU ratio |" in text
    first = next(line for line in text.splitlines() if line.startswith(f"| {rows[0]['item']}"))
    assert f"{rows[0]['ours_cpu']['median'] * 1000:.1f} ms / " in first and f"| {rows[0]['cpu_ratio']:.3f} |" in first


def test_cpu_time_leaves_out_waiting_and_counts_work():
    """CPU time is the figure that survives a busy machine: a sleep costs wall time only, a busy loop both."""
    import time

    slept = harness.measure(lambda: time.sleep(0.3), None)
    assert slept.total >= 0.3 and slept.cpu < 0.1

    def spin():
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass

    spun = harness.measure(spin, None)
    assert spun.cpu >= 0.2 and spun.total >= 0.2 * 0.9


def test_rows_without_cpu_time_say_so():
    samples = [harness.Sample(1.0, 0.0), harness.Sample(2.0, 0.0)]
    row = harness.row("x", "tiny", "log-timed switch", samples, samples, "ref")
    assert row["ours_cpu"] is None and row["cpu_ratio"] is None and row["ratio"] == 1.0
    line = table(document([row], {}))
    assert "| — | — |" in line


def test_model_timer_counts_nested_calls_once():
    import torch

    inner = torch.nn.Linear(2, 2)
    outer = torch.nn.Sequential(inner)
    timer = harness.ModelTimer().attach(outer, inner)
    outer(torch.zeros(1, 2))
    assert timer.total > 0 and timer._depth == 0
    timer.detach()
    before = timer.total
    outer(torch.zeros(1, 2))
    assert timer.total == before
