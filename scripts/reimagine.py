"""Registration glue: the Reimagine tab, settings, API routes and send-to buttons (logic: sd_reimagine.webui, on the
host's profile: sd_reimagine.webui.forge in Forge, recognised by its `backend` and `modules_forge` packages, else
sd_reimagine.webui.a1111)."""

import importlib.util

from modules import script_callbacks

from sd_reimagine.webui import api, lineage_save, send_to, settings, tab

if importlib.util.find_spec("backend") and importlib.util.find_spec("modules_forge"):
    from sd_reimagine.webui.forge.profile import ForgeProfile as Profile
else:
    from sd_reimagine.webui.a1111.profile import A1111Profile as Profile

PROFILE = Profile()


def on_ui_tabs():
    blocks = tab.build_tab(run=PROFILE.run_in_tab, group=PROFILE.host_group())
    send_to.register_bindings()
    return [(blocks, "Reimagine", "reimagine")]


def on_app_started(demo, app):
    api.register(app, PROFILE.api_host())


script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_ui_settings(settings.on_ui_settings)
script_callbacks.on_app_started(on_app_started)
script_callbacks.on_before_image_saved(lineage_save.add_own_hash)
script_callbacks.on_before_ui(send_to.reset)
script_callbacks.on_after_component(send_to.on_after_component)
