"""A real WebUI 1.10.1 for the benchmarks, started with the helpers of tests/webui/conftest.py (no pytest fixtures).

REIMAGINE_WEBUI_DIR names the WebUI root (as for tests/webui); unset, item 4 is not measured.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.webui.conftest import ENV_DIR, WebUI, build_tiny_models, free_port, make_data_dir, webui_root

__all__ = ["ENV_DIR", "WebUI", "running_webui", "webui_root"]


@contextmanager
def running_webui(options: dict | None = None) -> Iterator[WebUI]:
    """Build the tiny checkpoints, start a WebUI on them with this extension linked in, stop it afterwards."""
    root = webui_root()
    if root is None:
        raise RuntimeError(f"set {ENV_DIR} to a WebUI 1.10.1 root")
    with tempfile.TemporaryDirectory(prefix="bench-webui-") as scratch:
        tiny_dir = Path(scratch) / "tiny-models"
        tiny_dir.mkdir()
        build_tiny_models(root, tiny_dir)
        data_dir = make_data_dir(Path(scratch) / "data", tiny_dir, options)
        server = WebUI(root, data_dir, tiny_dir, free_port(), data_dir / "webui.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()
