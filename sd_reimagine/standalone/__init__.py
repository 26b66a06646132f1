"""The standalone host: the core's features on diffusers, as a CLI and a Gradio app (no WebUI needed)."""
