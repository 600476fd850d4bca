"""`assetdb ingest` against the real database: formats, idempotence, dedupe, sidecars,
and bad files that are recorded on their rows while the batch goes on."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from assetdb.db.engine import connect
from assetdb.errors import SidecarError
from assetdb.ingest.ingest_files import ingest
from tests.conftest import run_cli
from tests.images import noise, solid


class CountingEncoder:
    """The real tiny encoder, counting how many images reach the model."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.dimension, self.image_size = inner.name, inner.dimension, inner.image_size
        self.towers, self.preprocess, self.scoring = inner.towers, inner.preprocess, inner.scoring
        self.batch_size = inner.batch_size
        self.images = 0

    def encode_texts(self, texts):
        return self.inner.encode_texts(texts)

    def encode_images(self, images):
        self.images += len(images)
        return self.inner.encode_images(images)


def rows(settings, where="true"):
    with connect(settings) as conn:
        return {r.uri.rsplit("/", 1)[-1]: r for r in conn.execute(text(
            f"SELECT * FROM assets WHERE {where} ORDER BY id"))}


def test_mixed_folder_good_and_broken(initialised, tmp_path):
    folder = tmp_path / "mixed"
    for fmt, suffix in [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"),
                        ("BMP", "bmp"), ("TIFF", "tiff")]:
        noise(folder / f"good.{suffix}", seed=len(suffix) + ord(suffix[0]))
        Image.open(folder / f"good.{suffix}").convert("RGB").save(folder / f"good.{suffix}",
                                                                   format=fmt)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    good = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "notes.txt").write_text("skipped: not an image suffix")

    result = run_cli("ingest", str(folder))
    assert result.exit_code == 1, result.output
    assert "6 ingested, 0 unchanged, 3 failed" in result.stdout
    assert "1 non-image files skipped" in result.stdout
    stored = rows(initialised)
    assert sorted(stored) == sorted(["good.jpg", "good.png", "good.webp", "good.gif",
                                     "good.bmp", "good.tiff", "empty.png", "text.jpg",
                                     "truncated.jpg"])
    for name in ("good.jpg", "good.png", "good.webp", "good.gif", "good.bmp", "good.tiff"):
        row = stored[name]
        assert row.status == "ready" and row.error is None
        assert row.embedding is not None and row.embedding_model == initialised.model
        assert (row.width, row.height) == (64, 48) and row.kind == "image"
        assert row.sha256 and row.bytes > 0 and row.title == "good"
    assert stored["empty.png"].error == "empty file"
    assert "not an image" in stored["text.jpg"].error
    assert "truncated" in stored["truncated.jpg"].error
    for name in ("empty.png", "text.jpg", "truncated.jpg"):
        assert stored[name].status == "failed" and stored[name].embedding is None
        assert stored[name].attempts == 1
        assert f"failed: {folder / name}" in result.stderr


def test_second_run_costs_no_model_work_and_changes_are_reembedded(initialised, encoder,
                                                                   tmp_path):
    folder = tmp_path / "imgs"
    for i in range(4):
        noise(folder / f"{i}.png", seed=i)
    counting = CountingEncoder(encoder)
    first = ingest(initialised, [str(folder)], encoder=counting)
    assert (first.ingested, first.unchanged, counting.images) == (4, 0, 4)
    before = rows(initialised)

    second = ingest(initialised, [str(folder)], encoder=counting)
    assert (second.ingested, second.unchanged, counting.images) == (0, 4, 4)

    noise(folder / "2.png", seed=99)  # new content at the same path
    third = ingest(initialised, [str(folder)], encoder=counting)
    assert (third.ingested, third.unchanged, counting.images) == (1, 3, 5)
    after = rows(initialised)
    assert after["2.png"].sha256 != before["2.png"].sha256
    assert not np.allclose(after["2.png"].embedding, before["2.png"].embedding)
    np.testing.assert_allclose(after["1.png"].embedding, before["1.png"].embedding)
    assert after["2.png"].id == before["2.png"].id  # updated in place, not a new asset


def test_identical_content_is_embedded_once(initialised, encoder, tmp_path):
    a = noise(tmp_path / "a" / "one.png", seed=7)
    (tmp_path / "b").mkdir()
    shutil.copy(a, tmp_path / "b" / "copy.png")
    shutil.copy(a, tmp_path / "b" / "copy2.png")
    counting = CountingEncoder(encoder)
    report = ingest(initialised, [str(tmp_path / "a"), str(tmp_path / "b")], encoder=counting)
    assert counting.images == 1
    assert (report.ingested, report.deduplicated) == (3, 2)
    stored = rows(initialised)
    np.testing.assert_allclose(stored["copy.png"].embedding, stored["one.png"].embedding)
    # a later copy reuses the stored vector too
    shutil.copy(a, tmp_path / "late.png")
    ingest(initialised, [str(tmp_path / "late.png")], encoder=counting)
    assert counting.images == 1
    assert rows(initialised)["late.png"].status == "ready"


def test_vectors_match_the_encoder(initialised, encoder, tmp_path):
    path = solid(tmp_path / "red.png", (220, 30, 30))
    ingest(initialised, [str(path)], encoder=encoder)
    stored = np.asarray(rows(initialised)["red.png"].embedding)
    direct = encoder.encode_images([Image.open(path).convert("RGB")])[0]
    assert float(stored @ direct) > 0.9999


def test_recursive_globs_and_explicit_files(initialised, tmp_path):
    noise(tmp_path / "top" / "a.png", 1)
    noise(tmp_path / "top" / "sub" / "b.png", 2)
    noise(tmp_path / "top" / "sub" / "deeper" / "c.jpg", 3)
    result = run_cli("ingest", str(tmp_path / "top"))
    assert result.exit_code == 0 and "1 ingested" in result.stdout
    result = run_cli("ingest", str(tmp_path / "top"), "--recursive")
    assert "2 ingested, 1 unchanged" in result.stdout
    noise(tmp_path / "glob" / "x1.png", 4)
    noise(tmp_path / "glob" / "x2.png", 5)
    noise(tmp_path / "glob" / "y.png", 6)
    result = run_cli("ingest", str(tmp_path / "glob" / "x*.png"))
    assert "2 ingested" in result.stdout
    assert "y.png" not in rows(initialised)


def test_missing_path_and_unknown_file_type(initialised, tmp_path):
    noise(tmp_path / "ok.png", 1)
    (tmp_path / "doc.txt").write_bytes(b"notes\n")
    result = run_cli("ingest", str(tmp_path / "ok.png"), str(tmp_path / "doc.txt"),
                     str(tmp_path / "nope.png"), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ingested"] == 1 and report["failed"] == 1
    errors = {f["uri"].rsplit("/", 1)[-1]: f["error"] for f in report["failures"]}
    assert errors == {"nope.png": "no such file or folder"}
    # A file that is not an image is never registered, even when named explicitly.
    assert report["skipped"] == 1
    assert report["skipped_files"] == [{"uri": str(tmp_path / "doc.txt"),
                                        "reason": "not an image: text/plain"}]
    assert sorted(rows(initialised)) == ["ok.png"]


@pytest.mark.parametrize("kind", ["json-list", "json-map", "jsonl", "csv"])
def test_sidecar_metadata(initialised, tmp_path, kind):
    folder = tmp_path / "shoot"
    noise(folder / "a.png", 1)
    noise(folder / "b.png", 2)
    a = {"image_path": "a.png", "title": "Alpha", "description": "a red bus",
         "tags": ["street", "bus"], "captured_at": "2023-04-05T06:07:08Z", "sku": "00123",
         "price": 12}
    b = {"image_path": str(folder / "b.png"), "description": "a green tree", "tags": "tree, park",
         "photographer": "Kim"}
    if kind == "json-list":
        sidecar = tmp_path / "meta.json"
        sidecar.write_text(json.dumps([a, b]))
    elif kind == "json-map":
        sidecar = tmp_path / "meta.json"
        sidecar.write_text(json.dumps({x.pop("image_path"): x for x in (dict(a), dict(b))}))
    elif kind == "jsonl":
        sidecar = tmp_path / "meta.jsonl"
        sidecar.write_text(json.dumps(a) + "\n\n" + json.dumps(b) + "\n")
    else:
        sidecar = tmp_path / "meta.csv"
        sidecar.write_text(
            "image_path,title,description,tags,captured_at,sku,price,photographer\n"
            f'a.png,Alpha,a red bus,"street,bus",2023-04-05T06:07:08Z,00123,12,\n'
            f"{folder / 'b.png'},,a green tree,\"tree, park\",,,,Kim\n")
    # relative paths resolve against the sidecar's folder
    if kind in ("json-list", "jsonl", "csv"):
        text_ = sidecar.read_text().replace("a.png", "shoot/a.png")
        sidecar.write_text(text_)
    else:
        sidecar.write_text(sidecar.read_text().replace('"a.png"', '"shoot/a.png"'))
    result = run_cli("ingest", str(folder), "--metadata", str(sidecar))
    assert result.exit_code == 0, result.output
    stored = rows(initialised)
    ra, rb = stored["a.png"], stored["b.png"]
    assert (ra.title, ra.description, ra.tags) == ("Alpha", "a red bus", ["street", "bus"])
    assert ra.captured_at.isoformat() == "2023-04-05T06:07:08+00:00"
    assert ra.metadata == {"sku": "00123", "price": 12}
    assert (rb.title, rb.description, rb.tags) == ("b", "a green tree", ["tree", "park"])
    assert rb.metadata == {"photographer": "Kim"}


def test_new_sidecar_on_unchanged_files_updates_fields_without_model_work(
        initialised, encoder, tmp_path):
    noise(tmp_path / "a.png", 1)
    counting = CountingEncoder(encoder)
    ingest(initialised, [str(tmp_path)], encoder=counting)
    sidecar = tmp_path / "m.jsonl"
    sidecar.write_text(json.dumps({"path": "a.png", "tags": ["late"], "brand": "acme"}))
    report = ingest(initialised, [str(tmp_path)], metadata_file=sidecar, encoder=counting)
    assert counting.images == 1 and report.unchanged == 1
    row = rows(initialised)["a.png"]
    assert row.tags == ["late"] and row.metadata == {"brand": "acme"}


@pytest.mark.parametrize("name, content, message", [
    ("bad.json", "[{\"image_path\": \"a.png\",}]", "invalid JSON"),
    ("bad.json", "42", "expected a list of objects"),
    ("bad.jsonl", "{\"path\": \"a.png\"}\n{oops", "bad.jsonl:2: invalid JSON"),
    ("bad.csv", "title,description\nx,y\n", "no image path"),
    ("bad.csv", "image_path,title\na.png,x,extra\n", "more cells than header"),
    ("bad.json", "[{\"image_path\": \"a.png\", \"captured_at\": \"yesterday\"}]",
     "cannot read date"),
    ("bad.json", "[{\"image_path\": \"a.png\", \"tags\": 5}]", "tags must be a list"),
    ("bad.xml", "<x/>", "unknown metadata format"),
])
def test_malformed_sidecar_is_an_error_and_writes_nothing(initialised, tmp_path, name,
                                                          content, message):
    noise(tmp_path / "a.png", 1)
    sidecar = tmp_path / name
    sidecar.write_text(content)
    result = run_cli("ingest", str(tmp_path / "a.png"), "--metadata", str(sidecar))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert rows(initialised) == {}


def test_missing_sidecar_file(initialised, tmp_path):
    with pytest.raises(SidecarError, match="metadata file not found"):
        ingest(initialised, [str(tmp_path)], metadata_file=tmp_path / "none.csv", embed=False)


def test_no_embed_registers_pending_without_model(initialised, tmp_path):
    noise(tmp_path / "a.png", 1)
    result = run_cli("ingest", "--no-embed", str(tmp_path))
    assert result.exit_code == 0 and "1 registered" in result.stdout
    row = rows(initialised)["a.png"]
    assert row.status == "pending" and row.embedding is None and row.sha256
    assert "1 unchanged" in run_cli("ingest", "--no-embed", str(tmp_path)).stdout
    # a later ingest with the model embeds what is still pending
    result = run_cli("ingest", str(tmp_path))
    assert "1 ingested" in result.stdout
    assert rows(initialised)["a.png"].status == "ready"


def test_empty_folder_says_so(initialised, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("ingest", str(tmp_path / "empty"))
    assert result.exit_code == 0
    assert "No image files found" in result.stderr
    assert "0 ingested, 0 unchanged, 0 failed" in result.stdout
