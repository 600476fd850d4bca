"""Thumbnails, made on first request and cached on disk under ASSETDB_HOME/thumbnails,
keyed by the asset's sha256 and the size, so identical content shares one file and a
changed file (new sha256 after re-ingest) gets a new thumbnail. A thumbnail is made from,
and served for, an original that opens as the catalogue's own file (assetdb.files): one
replaced by a symlink or other content since ingest gets none."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from assetdb.catalog.assets import AssetDetail, AssetNotFound, open_original
from assetdb.config import Settings
from assetdb.errors import FilterError
from assetdb.kinds.registry import Kind, kind_for_file

SIZES = (256, 512)  # longest side in pixels; a fixed set keeps the cache bounded
DEFAULT_SIZE = 256
QUALITY = 82
_SHA = re.compile(r"^[0-9a-f]{64}$")


def cache_dir(settings: Settings) -> Path:
    return settings.home / "thumbnails"


def thumbnail_path(settings: Settings, sha256: str, size: int) -> Path:
    # The key comes from the database, but check its shape anyway: it becomes a file name.
    if not _SHA.match(sha256) or size not in SIZES:
        raise ValueError("bad thumbnail key")
    return cache_dir(settings) / sha256[:2] / f"{sha256}-{size}.jpg"


def make_thumbnail(source: Path | BinaryIO, target: Path, size: int,
                   kind: Kind | None = None) -> None:
    """Write the JPEG thumbnail of `source`, made by its kind (by default the kind that
    takes a source path, else the still-image kind)."""
    kind = kind or kind_for_file(source if isinstance(source, Path) else "")
    img = kind.thumbnail(source, size)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a reader never sees half a file, two writers do not clash.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            img.save(out, "JPEG", quality=QUALITY, optimize=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def thumbnail(
    settings: Settings, asset_id: int, size: int = DEFAULT_SIZE, *, include_hidden: bool = True
) -> tuple[Path, AssetDetail]:
    """The cached thumbnail file of an asset (made now if missing) and the asset."""
    if size not in SIZES:
        raise FilterError(f"thumbnail size must be one of {', '.join(map(str, SIZES))}")
    fd, asset = open_original(settings, asset_id, include_hidden=include_hidden)
    with os.fdopen(fd, "rb") as source:  # the verified file itself, not its path again
        if not asset.sha256:
            raise AssetNotFound(f"asset {asset_id} has no content hash yet")
        target = thumbnail_path(settings, asset.sha256, size)
        if not target.is_file():
            make_thumbnail(source, target, size, kind_for_file(asset.uri, asset.kind))
    return target, asset
