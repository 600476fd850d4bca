"""The built-in kinds: still images ('image') and animated GIF/WebP/PNG ('animation'),
decoded by Pillow (assetdb.kinds.raster). One kind object records both names: only the
probe can tell an animated file from a still one. An animation is embedded and
thumbnailed by its first frame; `frames` walks its frames with their times."""

from __future__ import annotations

from collections.abc import Iterator

from PIL import Image

from assetdb.kinds import raster
from assetdb.kinds.registry import Frame, Probe, Source

# The first bytes of each supported format (MPO is a JPEG): what may be worth hashing.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
          b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
MAX_FRAMES = 64  # frames() of an animation stops here


class StillImages:
    names = ("image", "animation")
    suffixes = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif",
                          ".tiff"})
    # What the probe records (Pillow's names for the supported formats); none of these
    # can carry script.
    inline_types = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp",
                              "image/bmp", "image/tiff", "image/mpo"})
    magic_bytes = 12

    def sniff(self, head: bytes) -> bool:
        return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")

    def probe(self, source: Source) -> Probe:
        return raster.probe(source)

    def decode(self, source: Source, min_size: int) -> Image.Image:
        return raster.load_image(source, min_size=min_size)

    def thumbnail(self, source: Source, size: int) -> Image.Image:
        img = raster.load_image(source, min_size=size)  # JPEG draft decode, EXIF, RGB
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        return img

    def frames(self, source: Source, min_size: int) -> Iterator[Frame]:
        img = raster.open_image(source)
        if not getattr(img, "is_animated", False):
            yield Frame(raster.decode_opened(img, min_size), None)
            return
        with img, raster.decode_errors():
            elapsed = 0.0
            for index in range(min(img.n_frames, MAX_FRAMES)):
                img.seek(index)
                yield Frame(raster.to_rgb(img.convert("RGBA")), elapsed)
                elapsed += img.info.get("duration", 0) / 1000

STILL = StillImages()
