"""The WebUI family (A1111 and Forge): the only package code importing the WebUI's `modules.*` (inside functions).

This package holds what both hosts share and imports only the core and `modules.*` names both have; what differs
lives in one profile per host, `a1111/` (the only code needing A1111-only names) and `forge/` (the only code
importing `modules_forge` / `backend`). Shared modules never import a profile: `scripts/` picks the host's profile
at start and hands its parts (job runner, facts, swap) to the shared code. See docs/architecture.md.
"""
