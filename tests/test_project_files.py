"""The files a new user meets first: licence, changelog, version in one place, WebUI metadata, dependency pins."""

from __future__ import annotations

import configparser
import importlib.metadata
import re
from pathlib import Path

import tomllib

from sd_reimagine import __version__

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_declared_once_and_read_by_the_package_metadata():
    project = pyproject()
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sd_reimagine.__version__"}
    assert importlib.metadata.version("sd-webui-reimagine") == __version__


def test_the_changelog_opens_with_the_current_version():
    first = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert first is not None and first.group(1) == __version__


def test_the_licence_is_the_whole_agpl_3_text():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith(" " * 20 + "GNU AFFERO GENERAL PUBLIC LICENSE\n" + " " * 23 + "Version 3, 19 November 2007")
    sections = re.findall(r"^  (\d+)\. [A-Z]", text, re.MULTILINE)
    assert sections == [str(n) for n in range(18)]  # 0. Definitions ... 17. Interpretation of Sections 15 and 16
    assert "END OF TERMS AND CONDITIONS" in text and "13. Remote Network Interaction" in text
    assert len(text.splitlines()) == 661 and "\r" not in text
    assert pyproject()["project"]["license"] == {"text": "AGPL-3.0-only"}


def test_metadata_ini_names_the_extension_as_the_webui_reads_it():
    config = configparser.ConfigParser()  # what modules/extensions.py ExtensionMetadata uses
    assert config.read(ROOT / "metadata.ini")
    assert config.get("Extension", "Name") == "sd-webui-reimagine"
    assert not [s for s in config.sections() if s != "Extension"]  # no script ordering: see the file's comment


def test_users_get_any_torch_from_2_1_and_only_the_project_setup_pins_it():
    standalone = pyproject()["project"]["optional-dependencies"]["standalone"]
    assert "torch>=2.1" in standalone and not [d for d in standalone if "==" in d]
    assert "torch==2.13.0" in (ROOT / "dev" / "constraints.txt").read_text().splitlines()
    assert "-c dev/constraints.txt" in (ROOT / "dev" / "setup.sh").read_text()


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_short_and_its_links_and_the_docs_links_resolve():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) < 200
    for page in [readme, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name} links to missing {target}"
            if fragment:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
                assert fragment in {anchor(h) for h in headings}, f"{page.name}: no heading for #{fragment}"
            if linked.suffix == ".png":
                assert linked.stat().st_size < 150_000, f"{linked.name} is over 150 KB"
