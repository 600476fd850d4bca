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
from pathlib import Path

import numpy as np
from PIL import Image

from assetdb.embedding.encoder import Encoder
from assetdb.embedding.preprocess import fit_shortest_edge
from assetdb.errors import ImageError
from assetdb.files import open_no_symlinks
from assetdb.kinds.registry import kind_for_file

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


def _load(path: Path, min_size: int, edge: int | None, resample: int,
          expected: Expected | None = None, on_decoded: OnDecoded | None = None,
          ) -> Image.Image | str:
    decoded = decode_file(path, min_size, expected)
    if isinstance(decoded, str):
        return decoded
    if on_decoded is not None:
        on_decoded(path, decoded)
    return fit_shortest_edge(decoded, edge, resample)


def decode_file(path: Path, min_size: int,
                expected: Expected | None = None) -> Image.Image | str:
    """Read and decode one file by its kind (RGB, JPEGs drafted to >= min_size a side);
    a string says why it could not be."""
    try:
        data = _read(path, expected)
        return kind_for_file(path).decode(io.BytesIO(data), min_size)
    except ImageError as exc:
        return str(exc)
    except FileNotFoundError:
        return f"file not found: {path}"
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    except MemoryError:
        return "image too large to decode in memory"


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


def embed_paths(
    encoder: Encoder, paths: Sequence[Path], batch_size: int = 32, workers: int = 2,
    expected: Mapping[Path, Expected] | None = None,
    on_decoded: OnDecoded | None = None, min_decode_size: int = 0,
) -> Iterator[list[Result]]:
    """Yield one list of results per batch, in input order. `expected` maps a path to
    the (sha256, size) on its row: a file that no longer matches fails with CHANGED.
    `on_decoded(path, image)` sees each full decode (it must not raise); JPEGs are then
    decoded to no less than `min_decode_size` a side (or the model's size, if larger)."""
    expected = expected or {}
    batches = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
    # Encoders whose preprocessing does not say how it resizes get full-size images.
    spec = encoder.preprocess
    min_size, edge, resample = spec.image_size, spec.resize_shortest_edge, spec.resample
    min_size = max(min_size, min_decode_size)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:

        def submit(batch: list[Path]) -> list[Future[Image.Image | str]]:
            return [pool.submit(_load, p, min_size, edge, resample, expected.get(p),
                                on_decoded) for p in batch]

        ahead = submit(batches[0]) if batches else []
        for i, batch in enumerate(batches):
            current = ahead
            if i + 1 < len(batches):
                ahead = submit(batches[i + 1])
            loaded = [f.result() for f in current]
            images = [x for x in loaded if isinstance(x, Image.Image)]
            encoded = iter(_encode_batch(encoder, images) if images else [])
            results: list[Result] = []
            for path, item in zip(batch, loaded, strict=True):
                if isinstance(item, str):
                    results.append((path, None, item))
                    continue
                vec = next(encoded)
                item.close()
                results.append((path, None, vec) if isinstance(vec, str) else (path, vec, None))
            yield results
