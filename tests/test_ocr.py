"""OCR with the real rapidocr models (the `ocr` extra) on a few generated images: lines,
boxes and confidences stored beside the asset, found by keyword search; resumable and
never redone by a re-embed; a failure recorded without touching the embedding; new
content drops old lines; a model that cannot load is a clear message, never a lost
ingest. OCR is CPU-heavy: this file reads two images in all."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from assetdb.db.engine import connect
from assetdb.demo.words import WordImage, font_paths, render
from assetdb.ocr import service
from assetdb.search import hybrid
from tests.conftest import run_cli
from tests.images import noise


def kw(settings, query: str) -> list[str]:
    return [Path(h.uri).name for h in hybrid.search(settings, query, mode="keyword").hits]


def rows(settings, sql: str, **params) -> list[dict]:
    with connect(settings) as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    folder = tmp_path / "pics"
    folder.mkdir()
    fonts = font_paths()
    rng = random.Random(3)
    render(WordImage(["QX-4471", "FESTIVAL"], "circle", "blue"), rng,
           font=fonts[0] if fonts else None).save(folder / "label.png")
    render(WordImage([], "square", "red"), rng, font=None).save(folder / "shape.png")
    return folder


def test_ocr_at_ingest_backfill_reembed_and_failures(initialised, pictures, tmp_path):
    settings = initialised
    out = run_cli("ingest", str(pictures), "--ocr", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["ingested"] == 2 and report["ocr"]["done"] == 2
    assert report["ocr"]["with_text"] == 1 and report["ocr"]["model"].startswith("rapidocr")
    lines = rows(settings, "SELECT l.* FROM asset_ocr_lines l JOIN assets a ON a.id = "
                           "l.asset_id WHERE a.uri LIKE '%label.png' ORDER BY line_no")
    assert [ln["text"] for ln in lines] == ["QX-4471", "FESTIVAL"]
    for ln in lines:
        assert len(ln["box"]) == 8 and 0.5 < ln["confidence"] <= 1.0
        xs, ys = ln["box"][0::2], ln["box"][1::2]
        assert 0 <= min(xs) < max(xs) <= 480 and 0 <= min(ys) < max(ys) <= 320
    assert lines[0]["box"][1] < lines[1]["box"][1]  # top to bottom
    assert kw(settings, "festival") == ["label.png"]
    assert kw(settings, "QX-44") == ["label.png"]
    status = rows(settings, "SELECT asset_id, status, updated_at FROM asset_ocr ORDER BY 1")
    assert [s["status"] for s in status] == ["done", "done"]

    # Nothing left to read; a re-embed changes no content and so redoes no OCR.
    again = json.loads(run_cli("ocr", "--json").stdout)
    assert again["pending_before"] == 0 and again["done"] == 0
    done = run_cli("reembed", "--json")
    assert done.exit_code == 0, done.output
    assert rows(settings, "SELECT asset_id, status, updated_at FROM asset_ocr ORDER BY 1"
                ) == status
    assert json.loads(run_cli("ocr", "--json").stdout)["pending_before"] == 0

    # A file that cannot be read: the failure is stored, the embedding stands, and the
    # same content is not tried again.
    broken = tmp_path / "later" / "broken.png"
    noise(broken, seed=4)
    assert run_cli("ingest", str(broken.parent)).exit_code == 0
    broken.write_bytes(broken.read_bytes()[:60])
    out = json.loads(run_cli("ocr", "--json").stdout)
    assert out["failed"] == 1 and out["done"] == 0
    failed = rows(settings, "SELECT o.status, o.error, a.status AS asset_status FROM asset_ocr o "
                            "JOIN assets a ON a.id = o.asset_id WHERE a.uri LIKE '%broken.png'")
    assert failed[0]["status"] == "failed" and failed[0]["error"]
    assert failed[0]["asset_status"] == "ready"
    assert json.loads(run_cli("ocr", "--json").stdout)["pending_before"] == 0

    # New content at the same path: the old lines go, and it needs OCR again.
    noise(pictures / "label.png", seed=9, size=(64, 48))
    assert run_cli("ingest", str(pictures)).exit_code == 0
    assert kw(settings, "festival") == []
    assert rows(settings, "SELECT count(*) AS n FROM asset_ocr_lines")[0]["n"] == 0
    with connect(settings) as conn:
        assert [u for _, u in service.pending(conn)] == [str(pictures / "label.png")]


def test_ocr_that_cannot_load(initialised, pictures, monkeypatch):
    """rapidocr missing: the ingest embeds anyway and says why there is no text; the
    backfill stops with the extra to install; searches go on."""
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # what an absent package looks like
    monkeypatch.setattr(service, "_engine", [])
    out = run_cli("ingest", str(pictures), "--ocr", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["ingested"] == 2 and "assetdb[ocr]" in report["ocr"]["error"]
    text_out = run_cli("ingest", str(pictures / "shape.png"), "--ocr")
    assert text_out.exit_code == 0
    monkeypatch.setenv("ASSETDB_OCR", "1")
    warned = run_cli("ingest", str(pictures))
    assert "Warning: OCR skipped" in warned.stderr and "assetdb[ocr]" in warned.stderr
    bad = run_cli("ocr")
    assert bad.exit_code != 0 and "pip install 'assetdb[ocr]'" in bad.output
    assert rows(initialised, "SELECT count(*) AS n FROM assets WHERE status = 'ready'"
                )[0]["n"] == 2
    found = run_cli("search", "label", "--json")
    assert found.exit_code == 0 and json.loads(found.stdout)[0]["uri"].endswith("label.png")


def test_workers_read_text_when_ocr_is_on(initialised, pictures, monkeypatch):
    monkeypatch.setenv("ASSETDB_OCR", "1")
    (pictures / "shape.png").unlink()  # one image: OCR is slow
    assert run_cli("ingest", str(pictures), "--no-embed", "--no-ocr").exit_code == 0
    assert rows(initialised, "SELECT count(*) AS n FROM asset_ocr")[0]["n"] == 0
    out = run_cli("worker", "--once", "--json")
    assert out.exit_code == 0, out.output
    assert kw(initialised, "festival") == ["label.png"]
