"""sd-webui-reimagine: Stable unCLIP variations and an SDXL refiner post-step, for the WebUI and standalone."""

__version__ = "0.1.0"
