"""Open, probe and normalise images: every Pillow mode becomes RGB, EXIF orientation is
applied, and anything unusable raises ImageError with a message fit for the asset's row."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from assetdb.errors import ImageError

# Pillow's decompression-bomb limit (about 89 MP, error at twice that) is kept on purpose.
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_IFD = 0x8769


@dataclass(frozen=True)
class Probe:
    kind: str  # 'image' or 'animation'
    mime: str
    width: int
    height: int
    captured_at: datetime | None


Source = Path | BinaryIO


def _size(source: Source) -> int:
    if isinstance(source, Path):
        return source.stat().st_size if source.exists() else 0
    if isinstance(source, io.BytesIO):
        return source.getbuffer().nbytes
    try:  # an open file (ingest reads through a descriptor opened without symlinks)
        return os.fstat(source.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return 1


def _open(path: Source) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # DecompressionBombWarning (between 1x and 2x the limit) becomes an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except FileNotFoundError:
        raise ImageError(f"file not found: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (decompression-bomb limit): {exc}") from None
    except UnidentifiedImageError:
        what = "empty file" if _size(path) == 0 else "not an image, or an unsupported image format"
        raise ImageError(what) from None
    except OSError as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None
    if img.format not in SUPPORTED_FORMATS:
        img.close()
        raise ImageError(f"unsupported image format {img.format}")
    return img


# The first bytes of each supported format (MPO is a JPEG): what may be worth hashing.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
          b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
MAGIC_BYTES = 12


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first MAGIC_BYTES bytes start a supported format; a file that
    does not is refused without reading (or hashing) the rest of it."""
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _header_exif(img: Image.Image) -> Image.Exif:
    """The EXIF read while opening, never the pixels: PngImageFile.getexif decodes the
    whole image to look for an eXIf chunk after the pixel data, which the PNG spec does
    not allow anyway. Malformed EXIF (common in the wild) reads as none."""
    try:
        return Image.Image.getexif(img)
    except Exception:  # noqa: BLE001 - SyntaxError, struct.error, ValueError, ...
        return Image.Exif()


def _captured_at(exif: Image.Exif) -> datetime | None:
    try:
        raw = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL)
        if not raw:
            return None
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC)
    except Exception:  # EXIF in the wild is often malformed; a missing date is fine
        return None


def probe(path: Source) -> Probe:
    """Identify the image from its headers, without decoding its pixels. Anything Pillow
    raises on a damaged header becomes ImageError, so it fails this file alone."""
    try:
        return _probe(path)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (decompression-bomb limit): {exc}") from None
    except MemoryError:
        raise ImageError("image headers too large to read in memory") from None
    except Exception as exc:  # noqa: BLE001 - SyntaxError, ValueError, struct.error, ...
        raise ImageError(f"corrupt image header: {exc or type(exc).__name__}") from None


def _probe(path: Source) -> Probe:
    with _open(path) as img:
        width, height = img.size
        exif = _header_exif(img)
        if exif.get(0x0112) in (5, 6, 7, 8):  # rotated 90 degrees: report displayed size
            width, height = height, width
        return Probe(
            kind="animation" if getattr(img, "is_animated", False) else "image",
            mime=Image.MIME.get(img.format or "", "application/octet-stream"),
            width=width,
            height=height,
            captured_at=_captured_at(exif),
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if img.mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: Source, min_size: int = 224, max_pixels: int | None = None) -> Image.Image:
    """Decode an image for the encoder: first frame, EXIF orientation, RGB.

    JPEGs are decoded with Pillow's draft mode (DCT scaling) to no less than
    `min_size` on each side, which makes camera-sized files several times cheaper.
    `max_pixels` refuses a larger image from its header, before decoding it (uploads:
    a few KB of PNG can claim tens of megapixels).
    """
    img = _open(path)
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        img.close()
        raise ImageError(f"image too large: {width}x{height} pixels "
                         f"(at most {max_pixels} pixels)")
    try:
        if img.format in ("JPEG", "MPO") and min_size > 0:
            img.draft("RGB", (min_size, min_size))
        img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return to_rgb(img)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large (decompression-bomb limit): {exc}") from None


def load_image_bytes(
    data: bytes, min_size: int = 224, max_pixels: int | None = None
) -> Image.Image:
    """load_image for uploads: the same checks, from memory."""
    if not data:
        raise ImageError("empty file")
    return load_image(io.BytesIO(data), min_size, max_pixels)


def now_utc() -> datetime:
    return datetime.now(UTC)
