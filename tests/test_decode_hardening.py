"""Decoding as real files demand it: transparency keys composited like alpha, poster-sized
images taken up to ASSETDB_MAX_IMAGE_PIXELS, messages that name the real cause, Pillow's
warnings kept off the terminal, no model load when nothing needs it, and a file replaced
after it was hashed never lends its vector to the old hash."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from assetdb.embedding.batches import embed_assets, embed_paths
from assetdb.embedding.images import REDUCED_MIN_SIDE, load_image, probe
from assetdb.errors import ImageError
from assetdb.ingest.ingest_files import ingest
from assetdb.ingest.worker import WorkerOptions, run_worker
from tests.conftest import run_cli
from tests.images import noise


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def flat_png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> Path:
    """A single-colour RGB PNG of any size, written row by row (a few hundred KB)."""
    row = b"\x00" + bytes(rgb) * width
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
                     + _chunk(b"IEND", b""))
    return path


def header_only_png(path: Path, width: int, height: int) -> Path:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b""))
    return path


def _rows(url: str) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT uri, status, error, embedding, sha256, bytes FROM assets")
        return {r[0]: r[1:] for r in rows.fetchall()}


# -- finding 5: transparency keys ---------------------------------------------------------

def _keyed_picture(seed: int) -> np.ndarray:
    """A 300x200 picture with a large block of the key colour (10, 20, 30)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(40, 256, (200, 300, 3), dtype=np.uint8)
    arr[30:170, 60:240] = (10, 20, 30)
    return arr


def _transparent_file(tmp_path: Path, kind: str) -> Path:
    arr = _keyed_picture(len(kind))
    path = tmp_path / f"{kind.replace('+', '_')}.png"
    if kind == "RGB+tRNS":
        Image.fromarray(arr, "RGB").save(path, transparency=(10, 20, 30))
    elif kind == "L+tRNS":
        Image.fromarray(arr[..., 0], "L").save(path, transparency=10)
    elif kind == "P+transparency":
        pal = Image.fromarray(arr, "RGB").quantize(64)
        key = pal.getpixel((100, 100))
        pal.save(path, transparency=key)
    elif kind == "RGBA":
        alpha = np.where(arr[..., 0] == 10, 0, 255).astype(np.uint8)
        Image.fromarray(np.dstack([arr, alpha]), "RGBA").save(path)
    elif kind == "LA":
        alpha = np.where(arr[..., 0] == 10, 0, 200).astype(np.uint8)
        Image.fromarray(np.dstack([arr[..., 0], alpha]), "LA").save(path)
    return path


def _plain(path: Path) -> Image.Image:
    """The plain path: full decode, every transparency to alpha, composited on white."""
    with Image.open(path) as img:
        rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


@pytest.mark.parametrize("kind", ["RGB+tRNS", "L+tRNS", "P+transparency", "RGBA", "LA"])
def test_fast_path_composites_every_transparency_on_white(encoder, tmp_path, kind):
    path = _transparent_file(tmp_path, kind)
    with Image.open(path) as img:
        assert img.mode == kind.split("+")[0]
        assert "+" not in kind or "transparency" in img.info
    (_, fast, error), = next(embed_paths(encoder, [path]))
    assert error is None
    plain = encoder.encode_images([_plain(path)])[0]
    assert cosine(fast, plain) >= 0.999
    # The key colour's block is white after decoding, not (10, 20, 30).
    assert load_image(path, 0).getpixel((150, 100)) == (255, 255, 255)


# -- finding 6: large images up to a ceiling ----------------------------------------------

def test_poster_above_pillows_limits_is_decoded_reduced(tmp_path):
    # 144 MP: Pillow's warning (89 MP) used to be an error; its own error is at 179 MP.
    path = flat_png(tmp_path / "poster.png", 12000, 12000, (200, 40, 40))
    img = load_image(path, 224)
    assert img.mode == "RGB" and img.size[0] == img.size[1]
    assert REDUCED_MIN_SIDE <= img.size[0] < 12000
    assert img.getpixel((img.size[0] // 2, 7)) == (200, 40, 40)
    # 200 MP, read from its header only (as scanning does).
    assert probe(header_only_png(tmp_path / "wide.png", 20000, 10000)).width == 20000


def test_ceiling_is_a_setting_and_the_refusal_names_it(tmp_path, monkeypatch):
    path = flat_png(tmp_path / "square.png", 1000, 1000, (0, 90, 0))
    monkeypatch.setenv("ASSETDB_MAX_IMAGE_PIXELS", "999999")
    for read in (load_image, probe):
        with pytest.raises(ImageError, match=r"1000x1000 .*ASSETDB_MAX_IMAGE_PIXELS"):
            read(path)
    monkeypatch.setenv("ASSETDB_MAX_IMAGE_PIXELS", "1000000")
    assert load_image(path, 0).size == (1000, 1000)
    assert probe(path).height == 1000


def test_ingest_takes_a_poster_and_fails_only_above_the_ceiling(
        initialised, database_url, tmp_path, monkeypatch):
    folder = tmp_path / "scans"
    folder.mkdir()
    poster = flat_png(folder / "poster.png", 12000, 12000, (30, 60, 200))
    small = noise(folder / "small.png", seed=3)
    giant = header_only_png(folder / "giant.png", 30000, 30000)  # 900 MP > 700 MP default
    result = run_cli("ingest", str(folder))
    assert result.exit_code == 1, result.output
    rows = _rows(database_url)
    assert rows[str(poster)][0] == "ready" and rows[str(small)][0] == "ready"
    status, error = rows[str(giant)][:2]
    assert status == "failed" and "ASSETDB_MAX_IMAGE_PIXELS" in error
    assert "Traceback" not in result.output
    # A lowered ceiling refuses the poster too, at re-ingest of changed content.
    monkeypatch.setenv("ASSETDB_MAX_IMAGE_PIXELS", "100000000")
    flat_png(poster, 12000, 12000, (30, 60, 201))
    run_cli("ingest", str(poster))
    status, error = _rows(database_url)[str(poster)][:2]
    assert status == "failed" and "12000x12000" in error and "ASSETDB_MAX_IMAGE_PIXELS" in error


def test_bad_ceiling_setting_is_a_clear_error(initialised, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETDB_MAX_IMAGE_PIXELS", "lots")
    result = run_cli("ingest", str(noise(tmp_path / "a.png", seed=1)))
    assert result.exit_code == 1
    assert "ASSETDB_MAX_IMAGE_PIXELS must be an integer" in result.output


# -- finding 8: messages, warnings, no model load for nothing ------------------------------

def _truncated(path: Path) -> Path:
    """The first half of a noise image in the format of path's suffix."""
    full = noise(path.with_name("full-" + path.name), seed=9, size=(200, 150))
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_image_data_is_called_that_and_twins_get_the_real_cause(
        initialised, database_url, tmp_path, encoder):
    folder = tmp_path / "bad"
    folder.mkdir()
    png = _truncated(folder / "cut.png")
    jpg = _truncated(folder / "cut.jpg")
    twin = folder / "twin.jpg"
    twin.write_bytes(jpg.read_bytes())
    report = ingest(initialised, [str(folder)], encoder=encoder)
    assert report.failed == 3
    rows = _rows(database_url)
    for path in (png, jpg, twin):
        status, error = rows[str(path)][:2]
        assert status == "failed"
        assert error.startswith("image data is truncated or corrupt"), error
    assert rows[str(twin)][1] == rows[str(jpg)][1]


def _apng_with_bad_actl(path: Path) -> Path:
    """A valid PNG with an acTL chunk claiming 0 frames: Pillow warns, then decodes it."""
    noise(path, seed=5)
    data = path.read_bytes()
    at = data.index(b"IDAT") - 4
    path.write_bytes(data[:at] + _chunk(b"acTL", bytes(8)) + data[at:])
    return path


def test_pillow_warnings_do_not_reach_the_terminal(initialised, tmp_path):
    path = _apng_with_bad_actl(tmp_path / "odd.png")
    with pytest.warns(UserWarning, match="Invalid APNG"):  # Pillow does warn about it
        Image.open(path).close()
    env = {**os.environ, "PYTHONWARNINGS": ""}
    proc = subprocess.run([sys.executable, "-m", "assetdb", "ingest", str(path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 ingested" in proc.stdout
    assert "Warning" not in proc.stderr and "APNG" not in proc.stderr


def test_no_model_load_when_nothing_needs_embedding(initialised, tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    for i in range(2):
        noise(folder / f"n{i}.png", seed=i)
    first = run_cli("ingest", str(folder))
    assert first.exit_code == 0 and "Loading model" in first.stderr
    again = run_cli("ingest", str(folder))
    assert again.exit_code == 0 and "2 unchanged" in again.output
    assert "Loading model" not in again.stderr
    # A model that cannot load is never asked for: unchanged files, and files that fail
    # while scanned (before any pixel is decoded), need none.
    monkeypatch.setenv("ASSETDB_MODEL", str(tmp_path / "no-such-model"))
    assert run_cli("ingest", str(folder)).exit_code == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    header_only_png(bad / "giant.png", 30000, 30000)
    (bad / "notes.jpg").write_text("not an image")
    result = run_cli("ingest", str(bad))
    assert result.exit_code == 1 and "0 ingested, 0 unchanged, 3 failed" in result.output
    assert "Loading model" not in result.stderr and "Traceback" not in result.output


# -- finding 9: a file replaced between hashing and embedding -----------------------------

def test_worker_never_stores_a_replaced_files_vector_under_the_old_hash(
        initialised, database_url, tmp_path, encoder):
    path = noise(tmp_path / "imgs" / "a.png", seed=1)
    assert run_cli("ingest", str(path), "--no-embed").exit_code == 0
    _, _, _, sha_before, size_before = _rows(database_url)[str(path)]
    noise(path, seed=2, size=(64, 48))  # replaced: same size, other pixels
    assert path.stat().st_size == size_before
    report = run_worker(initialised, lambda name: encoder,
                        WorkerOptions(once=True, retry_delay=0, max_attempts=1))
    assert report.embedded == 0 and report.failed == 1
    status, error, embedding, sha, size = _rows(database_url)[str(path)]
    assert (status, embedding, sha, size) == ("failed", None, sha_before, size_before)
    assert "changed after it was hashed" in error and "ingest it again" in error
    # Ingesting it again records the new content and embeds it.
    assert run_cli("ingest", str(path)).exit_code == 0
    status, error, embedding, sha, _ = _rows(database_url)[str(path)]
    assert status == "ready" and error is None and sha != sha_before
    want = encoder.encode_images([load_image(path, encoder.image_size)])[0]
    assert cosine(np.asarray(json.loads(embedding)), want) >= 0.9999


def test_ingest_fails_a_file_replaced_after_hashing(
        initialised, database_url, tmp_path, encoder, monkeypatch):
    import assetdb.ingest.ingest_files as service

    path = noise(tmp_path / "imgs" / "a.png", seed=1)
    keep = noise(tmp_path / "imgs" / "b.png", seed=3)

    def replace_then_embed(*args, **kwargs):  # the file changes after it was hashed
        noise(path, seed=2)
        return embed_assets(*args, **kwargs)

    monkeypatch.setattr(service, "embed_assets", replace_then_embed)
    report = ingest(initialised, [str(tmp_path / "imgs")], encoder=encoder)
    assert (report.ingested, report.failed) == (1, 1)
    rows = _rows(database_url)
    status, error, embedding = rows[str(path)][:3]
    assert status == "failed" and embedding is None and "changed after it was hashed" in error
    assert rows[str(keep)][0] == "ready"


def test_embed_paths_checks_size_and_hash_when_given(encoder, tmp_path):
    path = noise(tmp_path / "a.png", seed=1)
    import hashlib

    sha, size = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    ok = next(embed_paths(encoder, [path], expected={path: (sha, size)}))[0]
    assert ok[1] is not None and ok[2] is None
    for wrong in ((sha, size + 1), ("0" * 64, size)):
        (_, vector, error), = next(embed_paths(encoder, [path], expected={path: wrong}))
        assert vector is None and "changed after it was hashed" in error


def test_png_probe_reads_exif_from_the_header_without_decoding(tmp_path):
    path = tmp_path / "dated.png"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2021:06:15 08:30:00"
    exif[0x0112] = 6
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    info = probe(path)
    assert info.captured_at.isoformat() == "2021-06-15T08:30:00+00:00"
    assert (info.width, info.height) == (20, 40)
    assert load_image(path, 0).size == (20, 40)
