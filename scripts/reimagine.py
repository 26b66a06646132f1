"""Registration glue for the Reimagine tab, its settings and its API routes (logic: sd_reimagine.webui)."""

from modules import script_callbacks

from sd_reimagine.webui import settings
from sd_reimagine.webui.api import register
from sd_reimagine.webui.tab import build_tab


def on_ui_tabs():
    return [(build_tab(), "Reimagine", "reimagine")]


def on_app_started(demo, app):
    register(app)


script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_ui_settings(settings.on_ui_settings)
script_callbacks.on_app_started(on_app_started)
