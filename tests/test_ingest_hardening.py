"""Issue 13: one bad file never costs a batch, nothing hangs, every path given or walked is
counted (ingested, unchanged, failed or skipped with its reason), and a re-run writes
nothing. Against real files and the real database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from sqlalchemy import text

from assetdb.db.engine import connect
from assetdb.embedding.images import probe
from assetdb.ingest import ingest_files as service
from assetdb.ingest.ingest_files import ingest
from tests.bad_files import BAD_IMAGES, broken_chunk_png, corrupt_idat_png
from tests.conftest import run_cli
from tests.images import noise

FORMATS = [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("GIF", "gif"),
           ("TIFF", "tiff"), ("BMP", "bmp")]


def state(settings) -> dict[str, tuple]:
    """uri -> (status, error, xmin): xmin changes with every write of the row."""
    with connect(settings) as conn:
        return {r.uri: (r.status, r.error, r.xmin) for r in conn.execute(text(
            "SELECT uri, status, error, xmin::text AS xmin FROM assets"))}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real `assetdb` in its own process: a hang is a timeout, a traceback is seen."""
    return subprocess.run([sys.executable, "-m", "assetdb", *args], capture_output=True,
                          text=True, timeout=timeout, errors="backslashreplace")


def goods(folder: Path, count: int = 3) -> list[Path]:
    return [noise(folder / f"good{i}.png", seed=100 + i) for i in range(count)]


# --- finding 1: a file Pillow chokes on fails alone ---------------------------------------

@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
@pytest.mark.parametrize("embed", [False, True], ids=["no-embed", "embed"])
def test_bad_png_and_webp_fail_alone(initialised, tmp_path, name, embed):
    folder = tmp_path / "mixed"
    good = goods(folder)
    BAD_IMAGES[name](folder / name)
    result = run_cli("ingest", str(folder), "--json", *([] if embed else ["--no-embed"]))
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    rows = state(initialised)
    want = "ready" if embed else "pending"
    assert all(rows[str(p)][0] == want for p in good), rows
    bad = rows[str(folder / name)]
    if not embed and name != "ztxt-bomb.png":
        # Their headers read fine (a garbage EXIF block reads as no EXIF): registered,
        # and a decode decides later.
        assert bad[0] == "pending" and report["failed"] == 0
    elif bad[0] == "failed" or name == "ztxt-bomb.png":
        assert bad[0] == "failed" and bad[1], bad
        assert report["failures"] == [{"uri": str(folder / name), "error": bad[1]}]
    assert report["ingested"] + report["failed"] == 4


# --- finding 4: probe reads headers only ---------------------------------------------------

def test_probe_never_decodes_pixels(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("RGB", (6000, 4000), (1, 2, 3)).save(big, compress_level=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the displayed size is 4000x6000
    rotated = tmp_path / "rotated.png"
    Image.new("RGB", (60, 40)).save(rotated, exif=exif)

    def no_decoding(self):  # noqa: ANN001, ANN202
        raise AssertionError("probe decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert (probe(big).width, probe(big).height) == (6000, 4000)
    assert (probe(rotated).width, probe(rotated).height) == (40, 60)


def test_probe_takes_a_png_whose_pixels_are_corrupt(tmp_path):
    for path in (corrupt_idat_png(tmp_path / "idat.png"),
                 broken_chunk_png(tmp_path / "chunk.png")):
        assert probe(path).mime == "image/png"


# --- finding 2: a file name that is not UTF-8 ---------------------------------------------

def test_non_utf8_file_name_is_skipped_with_its_reason(initialised, tmp_path):
    folder = tmp_path / "share"
    good = goods(folder, 1)[0]
    raw = os.fsencode(folder) + b"/caf\xe9.png"
    with open(raw, "wb") as fh:
        fh.write(good.read_bytes())
    for extra in ([], ["--json"]):
        result = run_cli("ingest", str(folder), *extra)
        assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["skipped_files"] == [{
        "uri": str(folder) + "/caf\\xe9.png",
        "reason": "file name is not valid UTF-8 (rename it to store it)"}]
    assert list(state(initialised)) == [str(good)]
    # Named on the command line (the shell hands over the raw bytes), the same answer.
    result = run_cli("ingest", os.fsdecode(raw), "--json")
    assert json.loads(result.stdout)["skipped"] == 1


# --- finding 3: nothing hangs, and nothing that cannot be an image is hashed ---------------

def test_fifo_and_dev_zero_are_never_read(initialised, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    os.mkfifo(folder / "y.jpg")
    (folder / "zero.png").symlink_to("/dev/zero")
    args = [str(folder / "y.jpg"), str(folder / "zero.png"), str(folder / "*.jpg"),
            str(folder / "*.png")]
    for extra in ([], ["--follow-symlinks"], ["-r"]):
        result = cli("ingest", *args, str(folder), *extra, "--no-embed", "--json", timeout=60)
        assert "Traceback" not in result.stderr
        report = json.loads(result.stdout)
        assert report["ingested"] == report["failed"] == 0
        reasons = {s["reason"] for s in report["skipped_files"]}
        assert "not a regular file" in reasons or any("outside" in r for r in reasons)
        assert report["skipped"] == 6  # each path given or walked, once
    assert state(initialised) == {}


def test_a_sparse_non_image_is_not_hashed(initialised, tmp_path, monkeypatch):
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as fh:
        fh.truncate(2 << 30)
    good = goods(tmp_path / "g", 1)[0]
    hashed: list[int] = []
    real_hash = service.sha256_fd
    monkeypatch.setattr(service, "sha256_fd", lambda fd: hashed.append(fd) or real_hash(fd))
    start = time.monotonic()
    report = ingest(initialised, [str(huge), str(good)], embed=False)
    assert time.monotonic() - start < 3
    assert (report.ingested, report.failed, len(hashed)) == (1, 1, 1)
    row = state(initialised)[str(huge)]
    assert row[:2] == ("failed", "not an image, or an unsupported image format")


# --- finding 7: every path is counted -----------------------------------------------------

def test_every_path_walked_or_given_is_counted(initialised, tmp_path):
    root = tmp_path / "root"
    a = noise(root / "a.png", 1)
    noise(root / ".hidden.png", 2)
    noise(root / ".thumbs" / "t.png", 3)
    noise(root / "sub" / "s.png", 4)
    (root / "alias.png").symlink_to("a.png")
    (root / "zz-alias.png").symlink_to(a)
    (root / "broken.png").symlink_to(root / "gone.png")
    result = run_cli("ingest", str(root), str(a), "--no-embed", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ingested"] == 1
    assert {Path(s["uri"]).name: s["reason"] for s in report["skipped_files"]} == {
        ".hidden.png": "hidden (name it to ingest it)",
        ".thumbs": "hidden folder (name it to ingest it)",
        "sub": "folder (--recursive descends into it)",
        "alias.png": f"same file as {a}",
        "zz-alias.png": f"same file as {a}",
        "broken.png": "broken symlink",
        "a.png": "named more than once",
    }
    # Hidden paths named on the command line are taken.
    report = json.loads(run_cli("ingest", str(root / ".hidden.png"), str(root / ".thumbs"),
                                "--no-embed", "--json").stdout)
    assert (report["ingested"], report["skipped"]) == (2, 0)
    text_out = run_cli("ingest", str(root), "--no-embed").stdout
    assert "1 unchanged" in text_out and "2 hidden skipped" in text_out


# --- fuzz ---------------------------------------------------------------------------------

def _fuzzed(folder: Path, seed: int = 13, per_format: int = 8) -> tuple[list[Path], list[Path]]:
    """Good files in every format, and copies with a few random bytes changed."""
    rng = np.random.default_rng(seed)
    good, bad = [], []
    for fmt, suffix in FORMATS:
        arr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        buf = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = 1
        extra = {"exif": exif} if fmt in ("PNG", "JPEG", "WEBP", "TIFF") else {}
        Image.fromarray(arr).save(buf, fmt, **extra)
        data = buf.getvalue()
        good.append(folder / f"good.{suffix}")
        good[-1].write_bytes(data)
        for i in range(per_format):
            mutant = bytearray(data)
            # Mostly the first bytes: headers and chunk framing are where parsers break.
            span = min(len(data), 200 if i % 2 else len(data))
            for pos in rng.integers(0, span, int(rng.integers(1, 6))):
                mutant[pos] = int(rng.integers(0, 256))
            bad.append(folder / f"fuzz{i}.{suffix}")
            bad[-1].write_bytes(bytes(mutant))
    return good, bad


def test_fuzzed_files_never_cost_the_batch(initialised, tmp_path):
    folder = tmp_path / "fuzz"
    folder.mkdir()
    good, bad = _fuzzed(folder)
    for extra in (["--no-embed"], []):
        result = run_cli("ingest", str(folder), "--json", *extra)
        assert result.exit_code in (0, 1), result.output
        report = json.loads(result.stdout)
        assert "Traceback" not in result.output
        assert report["skipped"] == 0
    rows = state(initialised)
    assert set(rows) == {str(p) for p in good + bad}  # every file ends in a row
    assert all(rows[str(p)][0] == "ready" for p in good)
    assert all(status in ("ready", "failed") for status, _, _ in rows.values())
    assert all(error for status, error, _ in rows.values() if status == "failed")
    assert run_cli("ingest", str(folder), "--json").exit_code in (0, 1)
    assert state(initialised) == rows  # a re-run writes nothing


# --- acceptance ---------------------------------------------------------------------------

def test_acceptance_mixed_folder(initialised, tmp_path):
    folder = tmp_path / "mixed"
    good = goods(folder, 6)
    for name, make in BAD_IMAGES.items():
        make(folder / name)
    (folder / "truncated.png").write_bytes(good[0].read_bytes()[:100])
    os.mkfifo(folder / "fifo.jpg")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "broken.png").symlink_to(folder / "nothing.png")
    (folder / "alias.png").symlink_to(good[1])
    with open(folder / "sparse.png", "wb") as fh:
        fh.truncate(2 << 30)
    with open(os.fsencode(folder) + b"/caf\xe9.png", "wb") as fh:
        fh.write(good[2].read_bytes())
    noise(folder / ".hidden.png", 9)

    first = cli("ingest", str(folder), "-r")
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr + first.stdout
    rows = state(initialised)
    assert all(rows[str(p)][0] == "ready" for p in good)
    failed = {Path(uri).name: error for uri, (status, error, _) in rows.items()
              if status == "failed"}
    must_fail = {"broken-chunk.png", "ztxt-bomb.png", "truncated.png", "sparse.png"}
    # Garbage EXIF: whether the decode ignores it or fails the file is the decoder's call.
    assert must_fail <= set(failed) <= must_fail | {"garbage-exif.png", "garbage-exif.webp"}
    assert all(failed.values())
    for name in ("fifo.jpg", "zero.png", "broken.png", "alias.png", "caf\\xe9.png",
                 ".hidden.png"):
        assert f"skipped: {folder / name}: " in first.stderr, name
    n = len(failed)
    assert f"{12 - n} ingested, 0 unchanged, {n} failed" in first.stdout

    again = cli("ingest", str(folder), "-r")
    assert again.returncode == 1, again.stderr
    assert f"0 ingested, {12 - n} unchanged, {n} failed" in again.stdout
    assert state(initialised) == rows  # not one row written
