"""Each Reimagine output saved by the WebUI gets its own pixel hash in a `reimagine-hash` PNG text chunk, so the
lineage tree links children to it without decoding (`images.save_image` writes `params.pnginfo` as text chunks)."""

from __future__ import annotations

from typing import Any

from ..lineage_tree import own_hash_chunks


def add_own_hash(params: Any) -> None:
    """on_before_image_saved: add the hash to PNGs whose `parameters` carry the Reimagine fields."""
    if not str(getattr(params, "filename", "")).lower().endswith(".png") or params.pnginfo is None:
        return
    params.pnginfo.update(own_hash_chunks(params.image, params.pnginfo.get("parameters")))
