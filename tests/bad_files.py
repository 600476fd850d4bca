"""Files that once cost a whole ingest batch (issue 13): each is made with Pillow and then
damaged the way real files were."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(size: int = 32, seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr, "RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()


def _after_ihdr(png: bytes, extra: bytes) -> bytes:
    return png[:33] + extra + png[33:]  # 8-byte signature + 25-byte IHDR chunk


def broken_chunk_png(path: Path) -> Path:
    """A valid header, then an IDAT chunk whose type bytes are garbage: SyntaxError
    "broken PNG file" once the pixels are read."""
    png = _png(256)  # Pillow writes several 64 KiB IDAT chunks for this one
    second = png.index(b"IDAT", 40)
    path.write_bytes(png[:second] + b"\x00abc" + png[second + 4:])
    return path


def ztxt_bomb_png(path: Path) -> Path:
    """A zTXt chunk that inflates past Pillow's MAX_TEXT_CHUNK: ValueError at open."""
    text = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a" * (8 << 20)))
    path.write_bytes(_after_ihdr(_png(), text))
    return path


def garbage_exif_png(path: Path) -> Path:
    """An eXIf chunk that is not TIFF data: SyntaxError "not a TIFF file" from getexif."""
    path.write_bytes(_after_ihdr(_png(), _chunk(b"eXIf", b"\x01\x02garbage" * 4)))
    return path


def garbage_exif_webp(path: Path) -> Path:
    Image.new("RGB", (32, 32), (10, 200, 10)).save(path, "WEBP", exif=b"garbagegarbage")
    return path


def corrupt_idat_png(path: Path, size: int = 64) -> Path:
    """Header and chunk framing valid, compressed pixel data garbage: only a decode fails."""
    png = _png(size)
    start = png.index(b"IDAT") + 4
    length = struct.unpack(">I", png[start - 8 : start - 4])[0]
    data = bytes(b ^ 0x5A for b in png[start : start + length])
    path.write_bytes(png[: start - 8] + _chunk(b"IDAT", data) + png[start + length + 4 :])
    return path


BAD_IMAGES: dict[str, Callable[[Path], Path]] = {
    "broken-chunk.png": broken_chunk_png,
    "ztxt-bomb.png": ztxt_bomb_png,
    "garbage-exif.png": garbage_exif_png,
    "garbage-exif.webp": garbage_exif_webp,
}
