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


# --- layering: which package may import which (static, from the AST of every module; no host needed) -------------

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sd_reimagine"
HOST_PACKAGES = {"modules", "modules_forge", "backend", "ldm", "sgm"}
WEBUI, A1111, FORGE, STANDALONE = (
    "sd_reimagine.webui",
    "sd_reimagine.webui.a1111",
    "sd_reimagine.webui.forge",
    "sd_reimagine.standalone",
)
# The `modules.*` names the shared WebUI code may import: each is in A1111 1.10 and in Forge (checked against both
# trees by test_shared_webui_modules_exist_in_both_hosts when they are installed). Add one only after checking.
BOTH_HOSTS_MODULES = {
    "call_queue",
    "devices",
    "extra_networks",
    "images",
    "infotext_utils",
    "paths",
    "paths_internal",
    "processing",
    "progress",
    "prompt_parser",
    "rng",
    "safe",
    "scripts",
    "sd_models",
    "sd_samplers",
    "sd_samplers_common",
    "sd_samplers_kdiffusion",
    "sd_schedulers",
    "shared",
    "ui_common",
    "ui_components",
    "ui_toprow",
}
# The Forge profile's diffusers fallback (a file Forge's engines cannot run) uses the standalone host's single-file
# loader and unCLIP runner; nothing else crosses between the two hosts.
FORGE_USES_STANDALONE = {"sd_reimagine.standalone.single_file", "sd_reimagine.standalone.unclip"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports too), as absolute names; `from X import y`
    counts as X.y when that is a module of the package."""
    import ast

    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if target.startswith("sd_reimagine") and is_package_module(child) else target)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def host_module(name: str) -> str | None:
    """The `modules.X` a name refers to (X), or None."""
    parts = name.split(".")
    return parts[1] if parts[0] == "modules" and len(parts) > 1 else None


def test_core_imports_no_host():
    graph = import_graph()
    hosts_and_entry = (WEBUI, STANDALONE, "sd_reimagine.testing", "sd_reimagine.__main__")  # __main__: the commands
    core = {m for m in graph if not any(under(m, p) for p in hosts_and_entry)}
    wrong = {
        m: sorted(i for i in graph[m] if i.split(".")[0] in HOST_PACKAGES or under(i, WEBUI) or under(i, STANDALONE))
        for m in core
    }
    assert {m: i for m, i in wrong.items() if i} == {}
    assert "sd_reimagine.reimagine_plan" in core  # the walk sees the core


def test_shared_webui_imports_neither_profile_nor_host_only_names():
    graph = import_graph()
    shared = [m for m in graph if under(m, WEBUI) and not under(m, A1111) and not under(m, FORGE)]
    problems = {}
    for name in shared:
        bad = [i for i in graph[name] if under(i, A1111) or under(i, FORGE) or under(i, STANDALONE)]
        bad += [i for i in graph[name] if i.split(".")[0] in HOST_PACKAGES - {"modules"}]
        bad += [i for i in graph[name] if host_module(i) and host_module(i) not in BOTH_HOSTS_MODULES]
        if bad:
            problems[name] = sorted(bad)
    assert problems == {}
    assert "sd_reimagine.webui.refiner_step" in shared and "sd_reimagine.webui.api" in shared


def test_a1111_and_forge_profiles_never_import_each_other():
    graph = import_graph()
    problems = {}
    for name, imported in graph.items():
        if under(name, A1111):
            bad = [i for i in imported if under(i, FORGE) or i.split(".")[0] in {"modules_forge", "backend"}]
            bad += [i for i in imported if under(i, STANDALONE)]
        elif under(name, FORGE):
            bad = [i for i in imported if under(i, A1111) or i.split(".")[0] in {"ldm", "sgm"}]
            bad += [i for i in imported if under(i, STANDALONE) and i not in FORGE_USES_STANDALONE]
        elif under(name, STANDALONE):
            bad = [i for i in imported if under(i, WEBUI) or i.split(".")[0] in HOST_PACKAGES]
        else:
            continue
        if bad:
            problems[name] = sorted(bad)
    assert problems == {}
    assert any(under(m, A1111) for m in graph) and any(under(m, FORGE) for m in graph)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (or a module importing itself), Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles_among_package_modules():
    assert import_cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_the_walk_resolves_relative_imports():
    imported = imports_of(PACKAGE / "webui" / "forge" / "swap.py")
    assert {"sd_reimagine.errors", "sd_reimagine.webui.checkpoint_lookup", "modules_forge"} <= imported


def test_shared_webui_modules_exist_in_both_hosts():
    import os

    import pytest

    roots = [os.environ.get("REIMAGINE_WEBUI_DIR"), os.environ.get("REIMAGINE_FORGE_DIR")]
    if not all(roots):
        pytest.skip("REIMAGINE_WEBUI_DIR and REIMAGINE_FORGE_DIR (A1111 and Forge trees) are not both set")
    for root in roots:
        missing = [m for m in BOTH_HOSTS_MODULES if not (Path(root, "modules", m + ".py").is_file())]
        assert missing == [], root
