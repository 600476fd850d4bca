"""Image loading: formats, modes, EXIF orientation, and every kind of bad file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assetdb.embedding.images import load_image, load_image_bytes, probe, to_rgb
from assetdb.errors import ImageError


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"),
                                         ("GIF", ".gif"), ("BMP", ".bmp"), ("TIFF", ".tif")])
def test_every_supported_format_loads_as_rgb(tmp_path, fmt, suffix):
    path = tmp_path / f"img{suffix}"
    Image.new("RGB", (40, 30), (200, 20, 20)).save(path, format=fmt)
    img = load_image(path, min_size=64)
    assert img.mode == "RGB" and img.size == (40, 30)
    r, g, b = img.getpixel((20, 15))
    assert r > 150 and g < 80 and b < 80
    info = probe(path)
    assert (info.width, info.height, info.kind) == (40, 30, "image")
    assert info.mime.startswith("image/")


def test_large_jpeg_is_decoded_in_draft_mode_but_not_below_min_size(tmp_path):
    path = tmp_path / "camera.jpg"
    Image.new("RGB", (1600, 1200), (20, 200, 20)).save(path)
    img = load_image(path, min_size=224)
    assert 224 <= min(img.size) < 1200
    assert img.size[0] * 3 == img.size[1] * 4  # aspect ratio kept
    assert img.getpixel((10, 10))[1] > 150


def test_gif_uses_first_frame_and_is_an_animation(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert probe(path).kind == "animation"
    assert load_image(path).getpixel((10, 10))[0] > 200


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(path, exif=exif, quality=95)
    loaded = load_image(path, min_size=0)
    assert loaded.size == (20, 40)
    top, bottom = loaded.getpixel((10, 5)), loaded.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    info = probe(path)
    assert (info.width, info.height) == (20, 40)


def test_exif_capture_date_is_read(tmp_path):
    path = tmp_path / "dated.jpg"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2021:06:15 08:30:00"
    Image.new("RGB", (10, 10)).save(path, exif=exif)
    assert probe(path).captured_at.isoformat() == "2021-06-15T08:30:00+00:00"


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    la = Image.new("LA", (4, 4), (0, 255))  # opaque black
    assert to_rgb(la).getpixel((0, 0)) == (0, 0, 0)
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert to_rgb(pal).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_16bit_float_and_bilevel_become_rgb(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red in CMYK
    r, g, b = to_rgb(cmyk).getpixel((0, 0))
    assert r > 200 and g < 50 and b < 50
    arr = np.array([[0, 65535], [32768, 65535]], dtype=np.uint16)
    sixteen = Image.fromarray(arr)
    assert sixteen.mode.startswith("I;16")
    out = to_rgb(sixteen)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("F", (2, 2), 3.5)).mode == "RGB"
    assert to_rgb(Image.new("1", (2, 2), 1)).getpixel((0, 0)) == (255, 255, 255)
    # a 16-bit PNG on disk goes through the same path
    path = tmp_path / "sixteen.png"
    sixteen.save(path)
    assert load_image(path).mode == "RGB"


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(
            ">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_pixel_ceiling_refuses_a_bomb_from_its_header(tmp_path):
    bomb = _png_header_only(tmp_path / "bomb.png", 30000, 30000)  # 900 MP > 700 MP default
    with pytest.raises(ImageError, match="ASSETDB_MAX_IMAGE_PIXELS"):
        load_image(bomb)
    with pytest.raises(ImageError, match="ASSETDB_MAX_IMAGE_PIXELS"):
        probe(bomb)


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"hello, I am text", "not an image"),
    (b"%PDF-1.4 not an image", "not an image"),
])
def test_non_images_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path)
    if content:
        with pytest.raises(ImageError, match=message):
            load_image_bytes(content)


def test_truncated_jpeg_is_a_clear_error(tmp_path):
    full = tmp_path / "full.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(cut)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_unsupported_format_is_refused(tmp_path):
    path = tmp_path / "icon.ico"
    Image.new("RGB", (16, 16)).save(path, format="ICO")
    with pytest.raises(ImageError, match="unsupported image format ICO"):
        load_image(path)
