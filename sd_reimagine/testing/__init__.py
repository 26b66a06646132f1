"""Builders of tiny random-weight test models (never downloaded): diffusers folders and WebUI checkpoints."""
