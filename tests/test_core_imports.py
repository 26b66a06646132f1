"""The core imports with no WebUI, no diffusers, no transformers and no gradio present."""

import subprocess
import sys
from pathlib import Path

CORE_MODULES = [
    "sd_reimagine",
    "sd_reimagine.errors",
    "sd_reimagine.schema",
    "sd_reimagine.samplers",
    "sd_reimagine.images",
    "sd_reimagine.infotext",
    "sd_reimagine.mixing",
    "sd_reimagine.schedule",
    "sd_reimagine.checkpoints",
    "sd_reimagine.model_size",
    "sd_reimagine.ui",
    "sd_reimagine.api_request",
    "sd_reimagine.refiner_plan",
    "sd_reimagine.reimagine_plan",
    "sd_reimagine.folder_batch",
    "sd_reimagine.folder_batch_run",
    "sd_reimagine.folder_batch_api",
    "sd_reimagine.webui.host",
    "sd_reimagine.webui.refiner_job",
    "sd_reimagine.png_text",
    "sd_reimagine.lineage_tree",
    "sd_reimagine.lineage_view",
    "sd_reimagine.lineage_ui",
    "sd_reimagine.webui.lineage_save",
    "sd_reimagine.webui.tab_lineage",
]
BLOCKED = ["diffusers", "transformers", "gradio", "modules", "ldm", "sgm", "open_clip"]

PROBE = """
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
for name in {modules!r}:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {blocked!r})
print('LOADED', loaded)
"""


def test_core_imports_without_hosts():
    code = PROBE.format(blocked=BLOCKED, modules=CORE_MODULES)
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_blocker_really_blocks():
    code = PROBE.format(blocked=BLOCKED, modules=["diffusers"])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "blocked for this test" in result.stderr
