"""Benchmarks of sd-webui-reimagine against diffusers' reference pipelines, side by side in one process.

Run `python -m benchmarks [--quick] [--sizes tiny,medium] [--out benchmarks/results/latest.json]`. Benchmarks are not
tests: CI runs only `tests/test_benchmarks_smoke.py`, a seconds-long smoke of this harness.
"""
