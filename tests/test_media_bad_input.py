"""Bad media (issue 17, item 4): a truncated MP4, a video with no video stream, a 10-hour
video, a zero-length file, an encrypted PDF, a 20,000-page PDF, an SVG with an external
entity or a billion laughs, a RAW file with no preview. One ingest takes them all: each
ends as a failed row with a clear error or a bounded ready row with a note, the good
file beside them is ingested, and nothing hangs."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from assetdb.db.engine import connect
from tests import bad_media
from tests.conftest import run_cli

pytest.importorskip("av")
pytest.importorskip("pypdfium2")
pytest.importorskip("defusedxml")
pytest.importorskip("rawpy")

FAILED = {
    "truncated": "truncated or corrupt",
    "no_video": "no video stream in this file (streams: audio)",
    "empty": "empty file",
    "encrypted": "encrypted PDF",
    "xxe": "unsafe SVG refused",
    "laughs": "unsafe SVG refused",
    "raw": "not a camera RAW file",
}


def test_every_bad_input_is_a_failed_or_bounded_row(initialised, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETDB_VIDEO_MAX_FRAMES", "20")
    files = bad_media.write_all(tmp_path / "bad")
    started = time.monotonic()
    result = run_cli("ingest", str(tmp_path / "bad"), "--json")
    elapsed = time.monotonic() - started
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["ingested"] + report["failed"] == len(files)  # every path accounted for
    assert elapsed < 60
    with connect(initialised) as conn:
        rows = {r.uri: r for r in conn.execute(text(
            "SELECT a.uri, a.status, a.error, m.note, m.facts, m.frames FROM assets a "
            "LEFT JOIN asset_media m ON m.asset_id = a.id")).all()}
    for name, expected in FAILED.items():
        row = rows[str(files[name])]
        assert row.status == "failed" and expected in row.error, (name, row.error)
    good = rows[str(files["good"])]
    assert good.status == "ready" and good.frames >= 2
    # Ten hours: bounded by the frame cap, sampled by seeking, the row says so.
    long = rows[str(files["ten_hours"])]
    assert long.status == "ready" and "long video" in long.note
    assert "ASSETDB_VIDEO_MAX_FRAMES" in long.note and long.facts["duration_s"] >= 36_000
    # 20,000 pages: the count is probed, only the first page is rendered.
    pages = rows[str(files["many_pages"])]
    assert pages.status == "ready" and pages.facts["pages"] == 20_000 and pages.frames == 1


def test_a_decode_time_bound_keeps_what_was_decoded(tmp_path, monkeypatch):
    from assetdb.demo import media
    from assetdb.kinds.video import VIDEO

    path = media.write_video(tmp_path / "v.mp4", media.scene_plan(3, 3, 12.0), fps=4, side=32)
    monkeypatch.setenv("ASSETDB_VIDEO_DECODE_SECONDS", "0.1")
    monkeypatch.setenv("ASSETDB_VIDEO_MIN_FPM", "600")  # a frame a tenth of a second
    monkeypatch.setenv("ASSETDB_VIDEO_MAX_FPM", "600")
    import assetdb.kinds.video as video

    real = video._signature

    def slow(frame):  # a decoder that crawls, as on a pathological file
        time.sleep(0.03)
        return real(frame)

    monkeypatch.setattr(video, "_signature", slow)
    with path.open("rb") as fh:
        moments = VIDEO.moments(fh, 32)
    assert 1 <= len(moments.frames) < 48
    assert "ASSETDB_VIDEO_DECODE_SECONDS" in moments.note


def test_a_missing_library_names_its_extra(monkeypatch, tmp_path):
    import sys

    from assetdb.errors import ImageError
    from assetdb.kinds.documents import PDF

    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # as if not installed
    pdf = bad_media.many_page_pdf(tmp_path / "p.pdf", pages=1)
    with pytest.raises(ImageError, match=r"optional extra 'pdf': pip install 'assetdb\[pdf\]'"):
        PDF.probe(pdf)
