"""The WebUI host: the only package code that imports the AUTOMATIC1111 WebUI's `modules.*` (inside functions)."""
