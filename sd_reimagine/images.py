"""Input images: decoded safely, normalised to RGB, hashed for infotext and lineage."""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ReimagineError

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PIXELS = 64 * 1024 * 1024  # 64 MP: far above any model input, far below a decompression bomb
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InputImage:
    """A decoded RGB image, its content hash and the infotext it carried (for lineage)."""

    image: Image.Image
    digest: str
    infotext: str | None

    @property
    def short_hash(self) -> str:
        return self.digest[:10]

    def image_with_infotext(self) -> Image.Image:
        """The RGB image carrying its infotext in `info`, so lineage survives being passed around."""
        image = self.image.copy()
        if self.infotext:
            image.info["parameters"] = self.infotext
        return image


def open_image(source: str | Path | bytes | Image.Image, name: str = "image") -> InputImage:
    """Decode PNG/JPEG/WebP bytes, a path or a PIL image into an RGB InputImage; refuse anything else clearly."""
    if isinstance(source, Image.Image):
        return _normalise(source, name)
    data = read_image_file(Path(source), name) if isinstance(source, (str, Path)) else bytes(source)
    return _normalise(_decode(data, name), name)


def read_image_file(path: Path, name: str, follow_links: bool = True) -> bytes:
    """The bytes of an input file, its size checked (fstat of the open file) before anything is read, so a huge
    file is refused unread; with `follow_links` False a link is refused at the open itself (no check-then-open race).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)  # a FIFO must not block the open
    try:
        handle = os.open(path, flags)
    except OSError as exc:
        if not follow_links and exc.errno == errno.ELOOP:
            raise ReimagineError(f"{name} is a link: links are not followed here") from None
        raise ReimagineError(f"{name}: cannot read {path} ({exc.strerror or exc})") from None
    with os.fdopen(handle, "rb") as file:
        found = os.fstat(file.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise ReimagineError(f"{name} is not a regular file; allowed: PNG, JPEG, WebP files")
        if found.st_size > MAX_BYTES:
            raise ReimagineError(f"{name} is {found.st_size} bytes; at most {MAX_BYTES} are allowed")
        try:
            return file.read(MAX_BYTES + 1)  # a file that grew since the fstat is still refused by `_decode`
        except OSError as exc:
            raise ReimagineError(f"{name}: cannot read {path} ({exc.strerror or exc})") from None


def decode_base64_image(data: str, name: str = "image") -> InputImage:
    """Decode a base64 string (with or without a data: URL prefix) into an InputImage."""
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ReimagineError(f"{name} is not valid base64 image data") from None
    return open_image(raw, name)


def _decode(data: bytes, name: str) -> Image.Image:
    if len(data) > MAX_BYTES:
        raise ReimagineError(f"{name} is {len(data)} bytes; at most {MAX_BYTES} are allowed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise ReimagineError(f"{name} is {image.format or 'not an image'}; allowed: PNG, JPEG, WebP")
            if image.width * image.height > MAX_PIXELS:
                raise ReimagineError(
                    f"{name} is {image.width}x{image.height} pixels; at most {MAX_PIXELS // 1_000_000} MP are allowed"
                )
            image.load()
    except ReimagineError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ReimagineError(f"{name} is too large to decode safely (decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ReimagineError(f"{name} is not an image; allowed: PNG, JPEG, WebP") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ReimagineError(f"{name} is corrupt or truncated ({exc})") from None
    return image


def _normalise(image: Image.Image, name: str) -> InputImage:
    infotext = image.info.get("parameters") if isinstance(image.info.get("parameters"), str) else None
    rgb = to_rgb(ImageOps.exif_transpose(image))
    return InputImage(rgb, image_digest(rgb), infotext)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB of any mode: alpha composited on white, 16-bit scaled to 8-bit, CMYK and palettes converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v * (1 / 257)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def image_digest(image: Image.Image) -> str:
    """SHA-256 of the RGB pixels and size: the same picture gives the same hash whatever its file format."""
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode())
    digest.update(image.convert("RGB").tobytes())
    return digest.hexdigest()


def png_bytes(image: Image.Image, infotext: str | None = None, chunks: dict[str, str] | None = None) -> bytes:
    """PNG bytes with the infotext in the `parameters` text chunk, as the WebUI writes it (`chunks`: more text)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if infotext:
        info.add_text("parameters", infotext)
    for key, text in (chunks or {}).items():
        info.add_text(key, text)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()
