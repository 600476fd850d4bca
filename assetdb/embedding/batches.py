"""Embed asset files in batches (ingest, workers, re-embedding, model evaluation): decode
in a thread pool one batch ahead of the encoder, so that decoding (which releases the GIL)
overlaps with inference. Each file is decoded by its kind (assetdb.kinds). The decode
threads also do the processor's resize (JPEG draft decode, then bicubic to the model's
scale), so the inference thread gets images that are already small (docs/performance.md
has the figures).

Each file is read once, and what is decoded is what was hashed: given the sha256 and size
recorded on the row, a file replaced since then fails instead of lending its vector to the
old content's hash."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from assetdb.embedding.encoder import Encoder
from assetdb.embedding.preprocess import fit_shortest_edge
from assetdb.errors import ImageError
from assetdb.files import open_no_symlinks, sha256_fd
from assetdb.kinds.registry import Moments, has_moments, kind_for_file

Result = tuple[Path, np.ndarray | None, str | None]  # (path, vector, error)
# Called in the decode thread with each decoded image, before it is shrunk for the model
# (perceptual hashes are made here, from the one decode ingest does anyway).
OnDecoded = Callable[[Path, Image.Image], None]
Expected = tuple[str | None, int | None]  # (sha256, size) recorded for the file
CHANGED = "the file changed after it was hashed"


def _read(path: Path, expected: Expected | None) -> bytes:
    """The file's bytes, read once; ImageError if they are not the recorded content."""
    # Stored paths are real paths: a symlink in one was swapped in since it was scanned,
    # and is refused rather than embedded.
    with os.fdopen(open_no_symlinks(str(path)), "rb") as fh:
        sha256, size = expected or (None, None)
        if size is not None and os.fstat(fh.fileno()).st_size != size:
            raise ImageError(f"{CHANGED} (size differs); ingest it again")
        data = fh.read()
    if size is not None and len(data) != size or (
            sha256 and hashlib.sha256(data).hexdigest() != sha256):
        raise ImageError(f"{CHANGED} (content differs); ingest it again")
    return data


@dataclass
class Loaded:
    """What a decode thread hands the encoder for one file: one picture (a still), or the
    moments of a time-based or paged kind (assetdb.kinds.registry.Moments)."""

    images: list[Image.Image]
    moments: Moments | None = None


@dataclass
class Embedded:
    """One file's result. `vector` is the asset's vector (for a kind with moments, the
    normalised mean of its moments' vectors); `moments` holds (seconds, page, vector) of
    each moment, empty for a still."""

    path: Path
    vector: np.ndarray | None
    error: str | None
    moments: list[tuple[float | None, int | None, np.ndarray]] = field(default_factory=list)
    note: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    timed: bool = False  # the kind has moments: its asset_frames rows are replaced

    def result(self) -> Result:
        return (self.path, self.vector, self.error)


def _open_checked(path: Path, expected: Expected | None) -> BinaryIO:
    """The open file, hashed in place (not read into memory: a video may be gigabytes);
    ImageError if it is not the recorded content."""
    fh = os.fdopen(open_no_symlinks(str(path)), "rb")
    try:
        sha256, size = expected or (None, None)
        if size is not None and os.fstat(fh.fileno()).st_size != size:
            raise ImageError(f"{CHANGED} (size differs); ingest it again")
        if sha256 and sha256_fd(fh.fileno()) != sha256:
            raise ImageError(f"{CHANGED} (content differs); ingest it again")
    except BaseException:
        fh.close()
        raise
    return fh


def _decode(path: Path, min_size: int, edge: int | None, resample: int,
            expected: Expected | None, on_decoded: OnDecoded | None = None) -> Loaded:
    kind = kind_for_file(path)
    if has_moments(kind):
        with _open_checked(path, expected) as fh:
            moments = kind.moments(fh, min_size)  # type: ignore[attr-defined]
        images = [fit_shortest_edge(f.image, edge, resample) for f in moments.frames]
        return Loaded(images, moments)
    data = _read(path, expected)
    decoded = kind.decode(io.BytesIO(data), min_size)
    if on_decoded is not None:  # a still's full decode (perceptual hashes: duplicates)
        on_decoded(path, decoded)
    return Loaded([fit_shortest_edge(decoded, edge, resample)])


def decode_file(path: Path, min_size: int,
                expected: Expected | None = None) -> Image.Image | str:
    """Read and decode one still by its kind (RGB, JPEGs drafted to >= min_size a side),
    at full size; a string says why it could not be."""
    got: list[Image.Image] = []
    loaded = _load(path, min_size, None, 0, expected, lambda _p, image: got.append(image))
    if isinstance(loaded, str):
        return loaded
    if not got:
        return "not a still image"
    return got[0]


def _load(path: Path, min_size: int, edge: int | None, resample: int,
          expected: Expected | None = None, on_decoded: OnDecoded | None = None,
          ) -> Loaded | str:
    try:
        return _decode(path, min_size, edge, resample, expected, on_decoded)
    except ImageError as exc:
        return str(exc)
    except FileNotFoundError:
        return f"file not found: {path}"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    except MemoryError:
        return "image too large to decode in memory"
    except Exception as exc:  # noqa: BLE001 - a decoder's odd failure stays on its row
        return f"cannot decode this file: {type(exc).__name__}: {exc}"


def _encode_batch(encoder: Encoder, images: list[Image.Image]) -> list[np.ndarray | str]:
    try:
        return list(encoder.encode_images(images))
    except Exception:
        if len(images) == 1:
            raise
    # One bad image must not fail its batch: find it by encoding one at a time.
    out: list[np.ndarray | str] = []
    for img in images:
        try:
            out.append(encoder.encode_images([img])[0])
        except Exception as exc:  # noqa: BLE001 - recorded on the asset's row
            out.append(f"the model could not embed this image: {exc}")
    return out


def _batches(paths: Sequence[Path], batch_size: int) -> list[list[Path]]:
    """Files in model batches; a file of a kind with moments (a video: up to hundreds
    of frames) makes a batch of its own, so that at most two are held decoded."""
    batches: list[list[Path]] = []
    current: list[Path] = []
    for path in paths:
        if has_moments(kind_for_file(path)):
            if current:
                batches.append(current)
                current = []
            batches.append([path])
            continue
        current.append(path)
        if len(current) >= batch_size:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


def _mean(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm > 0 else vectors[0]).astype(np.float32)


def embed_assets(
    encoder: Encoder, paths: Sequence[Path], batch_size: int = 32, workers: int = 2,
    expected: Mapping[Path, Expected] | None = None,
    on_decoded: OnDecoded | None = None, min_decode_size: int = 0,
) -> Iterator[list[Embedded]]:
    """Yield one list of results per batch, in input order. `expected` maps a path to
    the (sha256, size) on its row: a file that no longer matches fails with CHANGED.
    `on_decoded(path, image)` sees each full decode (it must not raise); JPEGs are then
    decoded to no less than `min_decode_size` a side (or the model's size, if larger)."""
    expected = expected or {}
    batches = _batches(paths, batch_size)
    # Encoders whose preprocessing does not say how it resizes get full-size images.
    spec = encoder.preprocess
    min_size, edge, resample = spec.image_size, spec.resize_shortest_edge, spec.resample
    min_size = max(min_size, min_decode_size)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:

        def submit(batch: list[Path]) -> list[Future[Loaded | str]]:
            return [pool.submit(_load, p, min_size, edge, resample, expected.get(p),
                                on_decoded) for p in batch]

        ahead = submit(batches[0]) if batches else []
        for i, batch in enumerate(batches):
            current = ahead
            if i + 1 < len(batches):
                ahead = submit(batches[i + 1])
            loaded = [f.result() for f in current]
            images = [img for x in loaded if isinstance(x, Loaded) for img in x.images]
            encoded = iter(_encode_batch(encoder, images) if images else [])
            results: list[Embedded] = []
            for path, item in zip(batch, loaded, strict=True):
                if isinstance(item, str):
                    results.append(Embedded(path, None, item))
                    continue
                vecs = [next(encoded) for _ in item.images]
                for img in item.images:
                    img.close()
                results.append(_result(path, item, vecs))
            yield results


def _result(path: Path, item: Loaded, vecs: list[np.ndarray | str]) -> Embedded:
    bad = next((v for v in vecs if isinstance(v, str)), None)
    if item.moments is None:
        return Embedded(path, None, bad) if bad else Embedded(path, vecs[0], None)
    m = item.moments
    if bad:
        return Embedded(path, None, bad, timed=True, note=m.note, facts=m.facts)
    if not vecs:
        return Embedded(path, None, "nothing to embed: no frame or page", timed=True)
    stacked = np.stack([np.asarray(v, dtype=np.float32) for v in vecs])
    moments = [(f.seconds, f.page, stacked[j]) for j, f in enumerate(m.frames)]
    return Embedded(path, _mean(stacked), None, moments, m.note, m.facts, timed=True)


def embed_paths(
    encoder: Encoder, paths: Sequence[Path], batch_size: int = 32, workers: int = 2,
    expected: Mapping[Path, Expected] | None = None,
    on_decoded: OnDecoded | None = None, min_decode_size: int = 0,
) -> Iterator[list[Result]]:
    """embed_assets without the moments: (path, vector, error) per file."""
    for batch in embed_assets(encoder, paths, batch_size, workers, expected, on_decoded,
                              min_decode_size):
        yield [e.result() for e in batch]
