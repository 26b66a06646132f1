"""Run by the WebUI on every launch: check what the extension needs; install only what is missing, never upgrade.

The WebUI path needs nothing beyond the WebUI's own packages (torch, numpy, Pillow, safetensors, gradio, fastapi,
pydantic), so this normally installs nothing and prints nothing. `--skip-install` is honoured.
"""

import launch

# Modules the WebUI adapter imports -> the exact pin to install if (and only if) the module is missing.
REQUIRED = {
    "numpy": "numpy==1.26.2",
    "PIL": "Pillow==9.5.0",
    "safetensors": "safetensors==0.4.2",
}


def skip_install() -> bool:
    args = getattr(launch, "args", None)
    return bool(getattr(args, "skip_install", False))


def main() -> None:
    if skip_install():
        return
    for module, pin in REQUIRED.items():
        if not launch.is_installed(module):
            launch.run_pip(f"install {pin}", f"sd-webui-reimagine requirement: {pin}")


main()
