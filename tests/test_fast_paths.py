"""The ingest fast paths (JPEG draft decode, resize in the decode threads, batched writes)
give the vectors of the plain path: full decode, the processor's own resize, row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from assetdb.db.engine import connect
from assetdb.embedding.batches import embed_paths
from assetdb.embedding.images import load_image
from assetdb.embedding.preprocess import fit_shortest_edge, shortest_edge_size
from assetdb.ingest.ingest_files import ingest

# Landscape, portrait, square, odd ratios, and one already smaller than the model input.
SIZES = [(640, 480), (480, 640), (300, 300), (1001, 333), (333, 1001), (24, 20)]


def photo_like(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A smooth picture with detail (closer to a photo than noise), saved as JPEG."""
    rng = np.random.default_rng(seed)
    w, h = size
    low = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h))
    arr = np.asarray(low, dtype=np.int16) + rng.integers(-20, 21, (h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (1001, 333), (333, 1001), (7, 5)])
def test_shortest_edge_size_is_transformers_arithmetic(size):
    from transformers.image_transforms import get_resize_output_image_size

    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    th, tw = get_resize_output_image_size(arr, 224, default_to_square=False)
    assert shortest_edge_size(w, h, 224) == (tw, th)


def test_encoder_reports_its_processor_resize(encoder):
    assert encoder.preprocess.resize_shortest_edge == encoder.image_size == 32
    assert encoder.preprocess.resample == Image.Resampling.BICUBIC


def test_pre_resized_pixels_equal_the_processors(encoder, tmp_path):
    proc = encoder._clip.processor.image_processor
    for i, size in enumerate(SIZES):
        img = load_image(photo_like(tmp_path / f"p{i}.jpg", size, i), encoder.image_size)
        plain = proc(images=[img.copy()], return_tensors="np")["pixel_values"]
        small = fit_shortest_edge(img.copy(), encoder.preprocess.resize_shortest_edge)
        assert min(small.size) == min(32, min(img.size))
        fast = proc(images=[small], return_tensors="np")["pixel_values"]
        assert fast.shape == plain.shape
        np.testing.assert_allclose(fast, plain, atol=1e-5)


def test_embed_paths_vectors_equal_the_plain_path(encoder, tmp_path):
    paths = [photo_like(tmp_path / f"p{i}.jpg", size, i) for i, size in enumerate(SIZES)]
    paths.append(tmp_path / "missing.jpg")
    fast = [r for batch in embed_paths(encoder, paths, batch_size=4, workers=2) for r in batch]
    assert [r[0] for r in fast] == paths
    assert fast[-1][1] is None and "not found" in (fast[-1][2] or "")
    for path, vector, error in fast[:-1]:
        assert error is None
        # Same decode (draft), processor resize on the inference thread: identical.
        same_decode = encoder.encode_images([load_image(path, encoder.image_size)])[0]
        assert cosine(vector, same_decode) >= 0.9999
        # Full decode without draft mode: DCT scaling differs slightly from bicubic.
        full = encoder.encode_images([load_image(path, 0)])[0]
        assert cosine(vector, full) >= 0.99


def test_ingest_batched_writes_store_every_row(initialised, encoder, tmp_path):
    folder = tmp_path / "imgs"
    paths = [photo_like(folder / f"p{i}.jpg", size, i) for i, size in enumerate(SIZES)]
    (folder / "broken.jpg").write_bytes(paths[0].read_bytes()[:300])
    twin = folder / "twin.jpg"
    twin.write_bytes(paths[1].read_bytes())
    report = ingest(initialised, [str(folder)], encoder=encoder)
    assert (report.ingested, report.deduplicated, report.failed) == (len(SIZES) + 1, 1, 1)
    with connect(initialised) as conn:
        rows = {r.uri: r for r in conn.execute(
            text("SELECT uri, status, error, embedding, attempts FROM assets")).all()}
    assert len(rows) == len(SIZES) + 2
    broken = rows[str(folder / "broken.jpg")]
    assert broken.status == "failed" and broken.error and broken.embedding is None
    assert broken.attempts == 1
    for path in [*paths, twin]:
        row = rows[str(path)]
        assert row.status == "ready" and row.error is None
        plain = encoder.encode_images([load_image(path, encoder.image_size)])[0]
        assert cosine(np.asarray(row.embedding), plain) >= 0.9999
