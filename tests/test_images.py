"""Input images of any mode are normalised; bad files are refused with a clear message."""

import io

import pytest
from PIL import Image

from sd_reimagine.errors import ReimagineError
from sd_reimagine.images import MAX_PIXELS, decode_base64_image, open_image

from .conftest import noise_image


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("RGBA", "PNG"), ("P", "PNG"), ("L", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG"), ("RGB", "WEBP"), ("LA", "PNG")],
)
def test_every_mode_becomes_rgb(mode, fmt):
    source = noise_image(0).convert(mode) if mode != "I;16" else Image.new("I;16", (32, 32), 40000)
    result = open_image(_encode(source, fmt))
    assert result.image.mode == "RGB" and result.image.size == source.size
    if mode == "I;16":
        assert result.image.getpixel((0, 0)) == (155, 155, 155)  # 40000 / 257


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert open_image(_encode(image, "PNG")).image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    assert open_image(_encode(image, "JPEG", exif=exif)).image.size == (20, 40)


def test_same_pixels_same_hash_across_formats():
    image = noise_image(5)
    assert open_image(_encode(image, "PNG")).digest == open_image(_encode(image, "WEBP", lossless=True)).digest


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"not an image at all", "not an image"),
        (_encode(noise_image(0), "PNG")[:200], "corrupt or truncated"),
        (_encode(noise_image(0), "GIF"), "GIF; allowed: PNG, JPEG, WebP"),
    ],
)
def test_bad_files_are_refused(data, fragment):
    with pytest.raises(ReimagineError, match=fragment):
        open_image(data, name="upload.png")


def test_decompression_bomb_is_refused():
    side = int(MAX_PIXELS**0.5) + 64
    bomb = _encode(Image.new("1", (side, side)), "PNG")  # small file, huge image
    assert len(bomb) < 2_000_000
    with pytest.raises(ReimagineError, match="pixels|decompression bomb"):
        open_image(bomb)


def test_base64_input():
    import base64

    data = base64.b64encode(_encode(noise_image(1), "PNG")).decode()
    assert decode_base64_image("data:image/png;base64," + data).image.size == (64, 64)
    with pytest.raises(ReimagineError, match="not valid base64"):
        decode_base64_image("%%%")
