"""Raster images through Pillow, the decoder of the still-image kinds (assetdb.kinds.still)
and of query images: open, probe and normalise them. Every Pillow mode becomes RGB, EXIF
orientation is applied, and anything unusable raises ImageError with a message fit for the
asset's row."""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from assetdb.config import max_image_pixels
from assetdb.errors import ImageError
from assetdb.kinds.registry import Probe, Source

# assetdb refuses images above ASSETDB_MAX_IMAGE_PIXELS itself (in open_image, from the header,
# before any pixel is decoded). Pillow's own check (a warning at 89 MP, an error at 179 MP)
# would refuse poster scans far below that ceiling, so it is off.
Image.MAX_IMAGE_PIXELS = None
# Pillow warns about metadata it skipped or repaired ("Tag data larger than file", ...):
# the pixels are still usable, and the warning would only print on the user's terminal.
warnings.filterwarnings("ignore", module=r"PIL\.")

SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}
# Images above this (Pillow's old limit) are reduced strip by strip as they become RGB,
# to no less than REDUCED_MIN_SIDE on their short side; smaller ones decode as before.
LARGE_PIXELS = 89_478_485
REDUCED_MIN_SIDE = 1024
_STRIP_PIXELS = 1 << 23  # source pixels converted at a time
# One large decode at a time per process: each holds the whole decoded image.
_LARGE_DECODES = threading.BoundedSemaphore(1)


def _size(source: Source) -> int:
    if isinstance(source, Path):
        return source.stat().st_size if source.exists() else 0
    if isinstance(source, io.BytesIO):
        return source.getbuffer().nbytes
    try:  # an open file (ingest reads through a descriptor opened without symlinks)
        return os.fstat(source.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return 1


def _corrupt(exc: BaseException) -> str:
    # Pillow says "image file is truncated" of the image data, not of a failed read.
    return f"image data is truncated or corrupt ({exc})"


@contextmanager
def decode_errors() -> Iterator[None]:
    """Turn what Pillow raises on bad image data into an ImageError for the row."""
    try:
        yield
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(_corrupt(exc)) from None
    except MemoryError:
        raise ImageError("image too large to decode in memory") from None


def _check_ceiling(img: Image.Image) -> None:
    ceiling = max_image_pixels()
    width, height = img.size
    if width * height > ceiling:
        img.close()
        raise ImageError(
            f"image too large: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
            f"above the ceiling of {ceiling / 1e6:g} megapixels (ASSETDB_MAX_IMAGE_PIXELS)"
        )


def open_image(path: Source, formats: frozenset[str] | set[str] = SUPPORTED_FORMATS
               ) -> Image.Image:
    """Open an image of one of `formats` (Pillow's names; other kinds pass their own,
    assetdb.kinds.photos) for probing or decoding; ImageError otherwise."""
    try:
        img = Image.open(path)
    except FileNotFoundError:
        raise ImageError(f"file not found: {path}") from None
    except UnidentifiedImageError:
        what = "empty file" if _size(path) == 0 else "not an image, or an unsupported image format"
        raise ImageError(what) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(_corrupt(exc)) from None
    if img.format not in formats:
        img.close()
        raise ImageError(f"unsupported image format {img.format}")
    _check_ceiling(img)
    if img.format == "PNG":
        # EXIF in a PNG precedes its pixels in practice; without this, Pillow's getexif
        # decodes the whole image looking for an eXIf chunk after them (a 150 MP poster
        # took 9 s and 600 MB to probe).
        img.info.setdefault("exif", b"")
    return img


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


def probe(path: Source, formats: frozenset[str] | set[str] = SUPPORTED_FORMATS) -> Probe:
    """Identify the image from its headers, without decoding its pixels. Anything Pillow
    raises on a damaged header becomes ImageError, so it fails this file alone."""
    try:
        return _probe(path, formats)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (decompression-bomb limit): {exc}") from None
    except MemoryError:
        raise ImageError("image headers too large to read in memory") from None
    except Exception as exc:  # noqa: BLE001 - SyntaxError, ValueError, struct.error, ...
        raise ImageError(f"corrupt image header: {exc or type(exc).__name__}") from None


def _probe(path: Source, formats: frozenset[str] | set[str] = SUPPORTED_FORMATS) -> Probe:
    with open_image(path, formats) as img:
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


def _has_transparency(img: Image.Image) -> bool:
    # A transparency key (tRNS of an RGB, L or P PNG; a GIF's transparent index) counts
    # as much as an alpha channel.
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _scaled_to_l(img: Image.Image) -> Image.Image:
    """16-bit and float modes: stretched to 8 bits (16-bit over its whole range)."""
    arr = np.asarray(img, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if img.mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0
    scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
    out = np.clip(scaled, 0, 255).astype(np.uint8)
    key = img.info.get("transparency")
    if isinstance(key, int | float):
        out[np.asarray(img) == key] = 255  # the key colour becomes white, as on white
    return Image.fromarray(out, "L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _scaled_to_l(img).convert("RGB")
    if _has_transparency(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    return img.convert("RGB")


def _reduce_to_rgb(img: Image.Image, factor: int) -> Image.Image:
    """to_rgb(img).reduce(factor), a strip at a time: transparency is composited at full
    resolution (a key colour is exact only there), and only one strip is ever copied."""
    if img.mode in ("I", "F"):  # stretched over the whole image's range, not a strip's
        img = _scaled_to_l(img)
    width, height = img.size
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, _STRIP_PIXELS // (width * factor))
    for top in range(0, height, rows):
        strip = to_rgb(img.crop((0, top, width, min(height, top + rows))))
        out.paste(strip.reduce(factor), (0, top // factor))
    return out


def _load_large(img: Image.Image, min_size: int) -> Image.Image:
    """Decode a poster-sized image and reduce it; see LARGE_PIXELS."""
    with _LARGE_DECODES:
        img.load()
        orientation = img.getexif().get(_ORIENTATION)
        factor = max(1, min(img.size) // max(min_size, REDUCED_MIN_SIDE))
        out = _reduce_to_rgb(img, factor)
        img.close()  # frees the full-size pixels before the next large decode starts
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return out.transpose(method) if method is not None else out


def load_image(path: Source, min_size: int = 224, max_pixels: int | None = None) -> Image.Image:
    """Decode an image for the encoder: first frame, EXIF orientation, RGB.

    JPEGs are decoded with Pillow's draft mode (DCT scaling) to no less than
    `min_size` on each side, which makes camera-sized files several times cheaper.
    Images above LARGE_PIXELS are reduced as they are converted (no less than
    REDUCED_MIN_SIDE a side); above ASSETDB_MAX_IMAGE_PIXELS they are refused.
    `max_pixels` refuses a larger image from its header, before decoding it (uploads:
    a few KB of PNG can claim tens of megapixels).
    """
    return decode_opened(open_image(path), min_size, max_pixels)


def decode_opened(img: Image.Image, min_size: int = 224,
                  max_pixels: int | None = None) -> Image.Image:
    """load_image of an image open_image returned."""
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        img.close()
        raise ImageError(f"image too large: {width}x{height} pixels "
                         f"(at most {max_pixels} pixels)")
    with decode_errors():
        if img.format in ("JPEG", "MPO") and min_size > 0:
            img.draft("RGB", (min_size, min_size))
        img.seek(0)
        if img.size[0] * img.size[1] > LARGE_PIXELS:
            return _load_large(img, min_size)
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return to_rgb(img)


def load_image_bytes(
    data: bytes, min_size: int = 224, max_pixels: int | None = None
) -> Image.Image:
    """load_image for uploads: the same checks, from memory."""
    if not data:
        raise ImageError("empty file")
    return load_image(io.BytesIO(data), min_size, max_pixels)


def now_utc() -> datetime:
    return datetime.now(UTC)
