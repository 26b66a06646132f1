"""PNG text chunks read without decoding pixels: the chunk walk stops at the first IDAT.

Reads tEXt (Latin-1), zTXt and iTXt (UTF-8, optionally zlib-compressed), as Pillow's PngInfo writes them and the
WebUI's `images.save_image` stores `parameters`. Any structural fault before the first IDAT (bad signature, short
chunk, CRC mismatch of a text chunk, oversized chunk) raises `PngTextError`; what follows the IDAT is never read, so a
file truncated inside its pixel data still gives its text.

Bounds are per file, not only per chunk: the text chunks of one file may take at most MAX_TEXT bytes as stored and
MAX_TEXT bytes once inflated, all chunks together (a file of many compressed chunks, each below the per-chunk cap,
stops there instead of inflating to gigabytes).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
MAX_CHUNK = 16 * 1024 * 1024  # a text chunk this large is no infotext: refuse instead of reading it
MAX_TEXT = 4 * 1024 * 1024  # cap on one file's text, as stored and as inflated (infotext is a few KB)


class PngTextError(ValueError):
    """The file is no PNG, or its chunks before the pixel data are broken."""


def read_png_text(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG file before its first IDAT, keyword -> text (the first of a repeated keyword)."""
    with open(path, "rb") as file:
        return read_png_text_stream(file)


def read_png_text_stream(file: BinaryIO) -> dict[str, str]:
    """`read_png_text` on an open binary stream positioned at the signature."""
    if file.read(8) != SIGNATURE:
        raise PngTextError("not a PNG file (bad signature)")
    texts: dict[str, str] = {}
    budget = _Budget()
    while True:
        header = file.read(8)
        if len(header) < 8:
            raise PngTextError("truncated before the image data")
        length, kind = struct.unpack(">I4s", header)
        if kind in (b"IDAT", b"IEND"):
            return texts
        if length > MAX_CHUNK:
            raise PngTextError(f"chunk {kind!r} is {length} bytes long")
        if kind not in TEXT_TYPES:
            file.seek(length + 4, 1)  # skip data and CRC unread
            continue
        budget.take_stored(length)
        data, crc = file.read(length), file.read(4)
        if len(data) < length or len(crc) < 4 or zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
            raise PngTextError(f"chunk {kind.decode()} is truncated or fails its CRC")
        keyword, text = _decode_text(kind, data, budget)
        texts.setdefault(keyword, text)


class _Budget:
    """What is left of one file's text allowance, as stored and as inflated."""

    def __init__(self, limit: int = MAX_TEXT):
        self.stored = self.inflated = limit

    def take_stored(self, length: int) -> None:
        """Count a text chunk's stored bytes before reading them."""
        self.stored -= length
        if self.stored < 0:
            raise PngTextError(f"text chunks exceed {MAX_TEXT} bytes in one file")

    def take_inflated(self, length: int) -> None:
        self.inflated -= length
        if self.inflated < 0:
            raise PngTextError(f"text chunks inflate beyond {MAX_TEXT} bytes in one file")


def _decode_text(kind: bytes, data: bytes, budget: _Budget) -> tuple[str, str]:
    """(keyword, text) of one tEXt, zTXt or iTXt chunk."""
    keyword, sep, rest = data.partition(b"\0")
    if not sep:
        raise PngTextError(f"chunk {kind.decode()} has no keyword separator")
    name = keyword.decode("latin-1")
    if kind == b"tEXt":
        return name, rest.decode("latin-1")
    if kind == b"zTXt":
        return name, _inflate(rest[1:], budget).decode("latin-1")
    if len(rest) < 2:
        raise PngTextError("chunk iTXt is too short")
    compressed, fields = rest[0], rest[2:]
    _language, _, fields = fields.partition(b"\0")
    _translated, _, text = fields.partition(b"\0")
    return name, (_inflate(text, budget) if compressed else text).decode("utf-8", errors="replace")


def _inflate(data: bytes, budget: _Budget) -> bytes:
    """Inflate at most what the file's budget has left (a zlib bomb stops there)."""
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(data, budget.inflated + 1)
    except zlib.error as exc:
        raise PngTextError(f"compressed text chunk is corrupt ({exc})") from None
    budget.take_inflated(len(text))
    if inflater.unconsumed_tail:
        raise PngTextError(f"text chunks inflate beyond {MAX_TEXT} bytes in one file")
    return text
