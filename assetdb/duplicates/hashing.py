"""Perceptual hashes (imagehash's pHash and dHash, 64 bits each) of decoded images, and
the distances between them.

A pHash keeps the signs of an image's lowest 8x8 DCT frequencies of a 32x32 grey copy, a
dHash the signs of horizontal gradients of a 9x8 grey copy: a resize, a recompression, a
re-save or a colour shift moves few of their bits; two different photos differ in about
half. The distance of two images is the sum of both Hamming distances (0..128 bits): on
real photographs it separates crops and logos from different photos of the same subject
better than either hash alone (docs/duplicates.md has the figures).

Hashes are made from the decode ingest does for the model (assetdb.embedding.batches'
on_decoded), never from a second decode; the backfill decodes older assets the same way
(JPEG draft decode to HASH_EDGE a side).

Hashes are stored as signed 64-bit integers (PostgreSQL bigint)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assetdb.errors import AssetdbError

if TYPE_CHECKING:
    from PIL import Image

BITS = 64  # per hash
TOTAL_BITS = 2 * BITS  # pHash + dHash
HASH_EDGE = 224  # decoded no smaller than this a side (JPEG draft), at ingest and backfill
_MASK = (1 << BITS) - 1
EXTRA_HINT = "pip install -e '.[duplicates]' (or pip install imagehash)"


class HashingUnavailable(AssetdbError):
    """imagehash is not installed."""


@dataclass(frozen=True)
class ImageHashes:
    phash: int  # signed 64-bit, as stored
    dhash: int


def _signed(value: int) -> int:
    return value - (1 << BITS) if value >= 1 << (BITS - 1) else value


def _as_int(bits: object) -> int:
    # imagehash's ImageHash.hash is an 8x8 bool array, most significant bit first.
    out = 0
    for bit in bits.flatten():  # type: ignore[attr-defined]
        out = (out << 1) | int(bool(bit))
    return _signed(out)


def _imagehash():  # noqa: ANN202 - the module
    try:
        import imagehash
    except ImportError:
        raise HashingUnavailable(
            f"near-duplicate detection needs the imagehash package: {EXTRA_HINT}") from None
    return imagehash


def available() -> bool:
    try:
        _imagehash()
    except HashingUnavailable:
        return False
    return True


def hash_image(image: Image.Image) -> ImageHashes:
    """pHash and dHash of an RGB image."""
    imagehash = _imagehash()
    grey = image.convert("L")  # both hashes work on grey; convert once
    return ImageHashes(_as_int(imagehash.phash(grey).hash), _as_int(imagehash.dhash(grey).hash))


def hamming(a: int, b: int) -> int:
    """Hamming distance between two stored 64-bit hashes."""
    return ((a ^ b) & _MASK).bit_count()


def distance(a: ImageHashes, b: ImageHashes) -> int:
    """pHash bits + dHash bits that differ (0..128)."""
    return hamming(a.phash, b.phash) + hamming(a.dhash, b.dhash)


def similarity(bits: int) -> float:
    """1 - bits/128: 1.0 for identical hashes, about 0.5 for unrelated images."""
    return 1.0 - bits / TOTAL_BITS


def bits_for(threshold: float) -> int:
    """The largest distance whose similarity reaches `threshold`."""
    return int((1.0 - threshold) * TOTAL_BITS + 1e-9)


class HashCollector:
    """An on_decoded callback for embed_paths: hashes each decoded image (in the decode
    thread) and keeps them by path. A failure only leaves that hash out: the backfill
    makes it later; the embedding goes on."""

    def __init__(self) -> None:
        self.hashes: dict[Path, ImageHashes] = {}
        _imagehash()  # fail early, before the model work, if the package is missing

    def __call__(self, path: Path, image: Image.Image) -> None:
        try:
            self.hashes[path] = hash_image(image)
        except Exception:  # noqa: BLE001 - a hash is never worth a failed embedding
            return


def collector_or_none() -> Callable[[Path, Image.Image], None] | None:
    """A HashCollector when imagehash is installed, else None (ingest goes on without)."""
    return HashCollector() if available() else None
