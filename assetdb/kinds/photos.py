"""Photos beyond Pillow's default formats.

- HEIC/HEIF (iPhone photos) through pillow-heif, the optional extra 'heif'; AVIF through
  Pillow itself (Pillow 11.2+ wheels carry libavif), else pillow-heif's AVIF reader where
  its version has one. Probed and decoded by the still-image code (assetdb.kinds.raster):
  EXIF capture time and orientation as for a JPEG.
- Camera RAW (CR2, CR3, NEF, ARW, DNG, ORF, RW2, RAF) through rawpy (LibRaw), the extra
  'raw': the embedded preview when it is large enough for the model, else a demosaic at
  half size. A file LibRaw cannot read fails its row with the reason.
"""

from __future__ import annotations

import io
import threading
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image, ImageOps, features

from assetdb.errors import ImageError
from assetdb.kinds import raster
from assetdb.kinds.extras import need
from assetdb.kinds.registry import DecodedKind, Probe, Source

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
                b"avif", b"avis", b"mif2")
_registered = threading.Lock()
_opener_ready = False


def _brand(source: Source) -> bytes:
    if hasattr(source, "read"):
        at = source.tell()
        head = source.read(12)
        source.seek(at)
    else:
        with open(source, "rb") as fh:
            head = fh.read(12)
    return head[8:12]


def _heif_opener(source: Source) -> None:
    """Let Pillow open HEIF through pillow-heif. AVIF needs it only where Pillow has no
    AVIF reader of its own (Pillow 11.2+ wheels have one)."""
    global _opener_ready
    if _opener_ready or (_brand(source) in (b"avif", b"avis") and features.check("avif")):
        return
    with _registered:
        if not _opener_ready:
            need("pillow_heif").register_heif_opener()
            _opener_ready = True


class HeifImages(DecodedKind):
    names = ("image",)
    suffixes = frozenset({".heic", ".heif", ".hif", ".avif"})
    # Served as downloads: few browsers show HEIC, and AVIF is shown from the thumbnail.
    inline_types: frozenset[str] = frozenset()
    magic_bytes = 12
    formats = frozenset({"HEIF", "AVIF"})

    def sniff(self, head: bytes) -> bool:
        return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS

    def _ready(self, source: Source) -> None:
        _heif_opener(source)

    def probe(self, source: Source) -> Probe:
        self._ready(source)
        found = raster.probe(source, self.formats)
        mime = "image/avif" if found.mime == "image/avif" else "image/heic"
        return Probe("image", mime, found.width, found.height, found.captured_at)

    def decode(self, source: Source, min_size: int) -> Image.Image:
        self._ready(source)
        return raster.decode_opened(raster.open_image(source, self.formats), min_size)


# RAW suffixes LibRaw reads; the preview is used when its short side reaches this.
RAW_SUFFIXES = frozenset({".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng",
                          ".orf", ".rw2", ".raf", ".pef", ".srw"})
_RAW_MAGIC = (b"II*\x00", b"MM\x00*", b"IIRO", b"IIU\x00", b"FUJIFILM")


def _read_raw(source: Source) -> Any:  # noqa: ANN401 - a rawpy.RawPy
    rawpy = need("rawpy")
    data = source.read() if hasattr(source, "read") else None
    try:
        return rawpy.imread(io.BytesIO(data) if data is not None else str(source))
    except (rawpy.LibRawError, ValueError, OSError) as exc:
        what = "empty file" if data == b"" else (
            f"not a camera RAW file LibRaw can read ({type(exc).__name__}: {exc})")
        raise ImageError(what) from None


def _preview(raw: Any) -> Image.Image | None:  # noqa: ANN401
    rawpy = need("rawpy")
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, ValueError):
        return None  # no embedded preview (LibRawNoThumbnailError) or one of an odd format
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            img = Image.open(io.BytesIO(thumb.data))
            img.load()
        except (OSError, SyntaxError, ValueError):
            return None
        return ImageOps.exif_transpose(img) or img
    return Image.fromarray(np.asarray(thumb.data, dtype=np.uint8))


def _exif_time(img: Image.Image | None) -> datetime | None:
    if img is None:
        return None
    return raster._captured_at(raster._header_exif(img))  # noqa: SLF001 - one EXIF rule


class RawImages(DecodedKind):
    names = ("image",)
    suffixes = RAW_SUFFIXES
    inline_types: frozenset[str] = frozenset()  # downloads: browsers cannot show RAW
    magic_bytes = 8

    def sniff(self, head: bytes) -> bool:
        return head.startswith(_RAW_MAGIC) or head[4:8] == b"ftyp"  # CR3 is ISO-BMFF

    def probe(self, source: Source) -> Probe:
        raw = _read_raw(source)
        with raw:
            sizes = raw.sizes
            width, height = int(sizes.width), int(sizes.height)
            if sizes.flip in (5, 6):
                width, height = height, width
            preview = _preview(raw)
        facts: dict[str, Any] = {"preview": f"{preview.width}x{preview.height}"
                                 if preview is not None else None}
        return Probe("image", "image/x-raw", width, height, _exif_time(preview), facts)

    def decode(self, source: Source, min_size: int) -> Image.Image:
        rawpy = need("rawpy")
        raw = _read_raw(source)
        with raw:
            preview = _preview(raw)
            if preview is not None and min(preview.size) >= min_size:
                return raster.to_rgb(preview)
            try:  # no usable preview: demosaic (half size is ample for the model)
                rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            except (rawpy.LibRawError, ValueError, MemoryError) as exc:
                raise ImageError(f"the RAW file has no usable preview and its sensor data "
                                 f"cannot be demosaiced ({type(exc).__name__}: {exc})"
                                 ) from None
        return Image.fromarray(rgb).convert("RGB")


HEIF = HeifImages()
RAW = RawImages()
