"""Asset kinds: which code takes, probes, decodes and thumbnails a given file.

A kind claims file suffixes, recognises its files by their first bytes, probes them (kind,
MIME type, size, capture time) without decoding pixels, decodes them to an RGB picture for
the encoder, makes thumbnails and, for time-based media, samples timestamped frames. The
names it records in `assets.kind` are the choices of the kinds filter. Scanning, ingest,
embedding, the thumbnail route and the rule for serving originals inline all ask here.

Packages add kinds through the entry-point group `assetdb.kinds`, as backends do
(assetdb.embedding.registry): each entry point is a function that returns a Kind (or a
list of them)::

    [project.entry-points."assetdb.kinds"]
    my-kind = "my_package.assetdb_kind:kind"

Kinds are asked in order: registered from code, plugins, then the built-in still-image
kinds (assetdb.kinds.still), so a plugin may claim a suffix a built-in kind also claims.
This module imports no kind, no model and no database code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from PIL import Image

from assetdb.errors import AssetdbError
from assetdb.plugins import Registry

ENTRY_POINT_GROUP = "assetdb.kinds"

Source = Path | BinaryIO  # ingest and the API read through descriptors, not paths


@dataclass(frozen=True)
class Probe:
    """What ingest records about a file, read from its headers."""

    kind: str  # one of its Kind's `names`: 'image' or 'animation' for the built-in kinds
    mime: str
    width: int
    height: int
    captured_at: datetime | None
    # Kind-specific facts (a video's duration, codec and frame rate; a PDF's page count),
    # kept in asset_media.facts: JSON values only.
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """A picture of an asset; `seconds` is where it lies in time-based media, None for a
    still image."""

    image: Image.Image
    seconds: float | None = None
    page: int | None = None  # the page (from 1) of a paged document


@dataclass
class Moments:
    """What a time-based or paged kind gives the encoder: the frames (or pages) to embed,
    each searchable on its own, and a note for the asset's row when the sampling was
    bounded (a frame cap, a decode time limit). The asset's own vector is their mean."""

    frames: list[Frame]
    note: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class MomentsKind(Protocol):
    """A kind whose assets are searched by moment (video frames, document pages): ingest
    embeds each of `moments` and stores them in asset_frames beside the asset's vector."""

    def moments(self, source: Source, min_size: int) -> Moments:
        """The frames to embed, already no smaller than `min_size` a side. Bounded in
        count and time by the kind's settings; ImageError when nothing could be read."""
        ...


def has_moments(kind: object) -> bool:
    return callable(getattr(kind, "moments", None))


@runtime_checkable
class Kind(Protocol):
    """One kind of asset file. A source is a real path or a file open at its start
    (ingest reads through a descriptor opened without following symlinks). Errors a user
    should see on the asset's row are raised as assetdb.errors.ImageError."""

    names: tuple[str, ...]  # the values it records in assets.kind (the filter's choices)
    suffixes: frozenset[str]  # lower-case, with the dot: which files a scan takes
    # MIME types it records whose bytes may be shown inline by a browser (script-free
    # raster images only; everything else is served as a download, see inline_types()).
    inline_types: frozenset[str]
    magic_bytes: int  # how many leading bytes `sniff` needs

    def sniff(self, head: bytes) -> bool:
        """Whether a file's first bytes start this kind: a file that does not is refused
        before it is hashed or read further."""
        ...

    def probe(self, source: Source) -> Probe:
        """Kind, MIME type, displayed size and capture time, without decoding pixels."""
        ...

    def decode(self, source: Source, min_size: int) -> Image.Image:
        """The RGB picture the encoder embeds (no smaller than `min_size` a side, when
        the kind can decode reduced)."""
        ...

    def thumbnail(self, source: Source, size: int) -> Image.Image:
        """An RGB picture whose longest side is at most `size`."""
        ...

    def frames(self, source: Source, min_size: int) -> Iterator[Frame]:
        """Timestamped frames for time-based media; a still image yields one, at None."""
        ...


class DecodedKind:
    """Defaults for a kind that only knows how to decode: the thumbnail is the decoded
    picture scaled down, and its one frame is that picture at time None."""

    def decode(self, source: Source, min_size: int) -> Image.Image:  # pragma: no cover
        raise NotImplementedError

    def thumbnail(self, source: Source, size: int) -> Image.Image:
        img = self.decode(source, size)
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        return img

    def frames(self, source: Source, min_size: int) -> Iterator[Frame]:
        yield Frame(self.decode(source, min_size), None)


_REGISTRY: Registry[Kind] = Registry(ENTRY_POINT_GROUP, "asset kind", AssetdbError)
register = _REGISTRY.register  # from code (tests, notebooks); entry points need no call
unregister = _REGISTRY.unregister
reload_plugins = _REGISTRY.reload_plugins


def _builtin() -> list[Kind]:
    # Here, so that the kind modules may import this one. The still-image kind comes
    # first: kind_for_file falls back to it. The others import their libraries only
    # when they decode (assetdb/kinds/extras.py names the extra that is missing).
    from assetdb.kinds.documents import PDF, SVG
    from assetdb.kinds.photos import HEIF, RAW
    from assetdb.kinds.still import STILL
    from assetdb.kinds.video import VIDEO

    return [STILL, VIDEO, HEIF, RAW, PDF, SVG]


def kinds() -> list[Kind]:
    """Every kind, in the order they are asked: registered, plugins, built-in."""
    return [*_REGISTRY.registered, *_REGISTRY.plugins(), *_builtin()]


def kind_for_path(path: str | Path) -> Kind | None:
    """The kind that takes a file with this name (by suffix), or None."""
    suffix = Path(path).suffix.lower()
    return next((k for k in kinds() if suffix in k.suffixes), None)


def kind_for_name(name: str) -> Kind | None:
    """The kind that records `name` in assets.kind, or None."""
    return next((k for k in kinds() if name in k.names), None)


def kind_for_file(path: str | Path, recorded: str | None = None) -> Kind:
    """The kind that decodes a catalogued file: the one that recorded its row's kind,
    else the one its suffix names, else the still-image kind (whose decoder explains,
    on the row, why such a file is not an image)."""
    by_suffix = kind_for_path(path)
    # Several kinds record 'image' (Pillow's formats, HEIF, RAW, SVG): the suffix tells
    # them apart whenever its kind records that name.
    if by_suffix is not None and (recorded is None or recorded in by_suffix.names):
        return by_suffix
    found = kind_for_name(recorded) if recorded else None
    return found or by_suffix or _builtin()[0]


def kind_names() -> tuple[str, ...]:
    """The kinds filter's choices: built-in names first, then those plugins add."""
    names: dict[str, None] = {}
    for kind in [*_builtin(), *_REGISTRY.plugins(), *reversed(_REGISTRY.registered)]:
        names.update(dict.fromkeys(kind.names))
    return tuple(names)


class KindNames(Sequence[str]):
    """kind_names() read at each use, for a module-level constant that must see kinds
    registered or installed after it was imported."""

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return kind_names()[index]

    def __len__(self) -> int:
        return len(kind_names())

    def __repr__(self) -> str:
        return repr(kind_names())


KIND_NAMES = KindNames()


# Video containers a browser plays in a <video> element and never runs as a document
# (served with nosniff, a sandbox CSP and Range support; docs/security.md).
PLAYABLE_VIDEO = frozenset({"video/mp4", "video/webm", "video/quicktime"})


def inline_types() -> frozenset[str]:
    """MIME types an original may be served inline with. Only image types and the
    playable video types count, and never SVG (it carries script), whatever a kind
    declares."""
    return frozenset(t for k in kinds() for t in k.inline_types
                     if (t.startswith("image/") and "svg" not in t) or t in PLAYABLE_VIDEO)
