"""The Reimagine tab in A1111: the shared tab (`webui.tab`) with A1111's job runner and the post-step accordion."""

from __future__ import annotations


def build_tab():
    """The Blocks of the tab (for on_ui_tabs)."""
    from ..reimagine import host_group
    from ..tab import build_tab as build_webui_tab
    from .reimagine import run_reimagine

    return build_webui_tab(run=run_reimagine, group=host_group())
