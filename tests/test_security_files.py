"""Security issue 12, findings 2 and 3, against real files, the real database and the API:
no file outside the roots given to ingest is registered (unless --follow-symlinks), no file
outside the catalogue is served (symlinks, swapped or changed files), non-images are never
assets, and what is served cannot run as a page on the API's origin."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from assetdb.api.app import create_app
from assetdb.api.deps import ApiConfig
from assetdb.db.engine import connect
from assetdb.ingest.ingest_files import ingest
from tests.api_support import running_server
from tests.conftest import run_cli
from tests.images import noise, solid
from tests.test_api import BASE_URL, raw_get

CONFIG = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)
SCRIPT = b"<script>fetch('/api/assets').then(r => r.text()).then(alert)</script>"
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" onload="fetch(\'/api/assets\')">'
       b"<script>alert(document.domain)</script></svg>")
OUTSIDE = "symlink to a path outside"


def stored(settings) -> dict[str, int]:
    """uri -> id of every row."""
    with connect(settings) as conn:
        return {r.uri: r.id for r in conn.execute(text("SELECT id, uri FROM assets"))}


def ingest_json(*args: str) -> dict:
    result = run_cli("ingest", *args, "--json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def reasons(report: dict) -> dict[str, str]:
    return {Path(s["uri"]).name: s["reason"] for s in report["skipped_files"]}


@pytest.fixture
def client(initialised, encoder):
    with TestClient(create_app(initialised, encoder, CONFIG), base_url=BASE_URL) as c:
        yield c


def assert_refused(response, *forbidden: bytes) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    for data in forbidden:
        assert data not in response.content


# --- ingest: symlinks -------------------------------------------------------------------

def test_symlink_to_etc_passwd_is_skipped_and_never_served(initialised, encoder, tmp_path):
    folder = tmp_path / "shoot"
    noise(folder / "good.png", 1)
    os.symlink("/etc/passwd", folder / "passwd.png")
    for args in ([str(folder)], [str(folder), "--recursive"], [str(folder / "passwd.png")],
                 [str(folder / "*.png")]):
        report = ingest_json(*args)
        assert report["failed"] == 0, args
        assert reasons(report)["passwd.png"].startswith(OUTSIDE), args
    assert list(stored(initialised)) == [str((folder / "good.png").resolve())]
    # The summary says so too.
    result = run_cli("ingest", str(folder))
    assert "1 symlinks out of the folder skipped" in result.stdout
    assert f"skipped: {folder / 'passwd.png'}: {OUTSIDE}" in result.stderr
    # Over a real server: no asset id reaches /etc/passwd.
    with running_server(create_app(initialised, encoder, CONFIG)) as base:
        for asset_id in [*stored(initialised).values(), 2, 3]:
            for suffix in ("original", "thumbnail"):
                status, body = raw_get(base, f"/api/assets/{asset_id}/{suffix}")
                assert b"root:" not in body and status in (200, 404)


def test_symlinks_out_of_the_folder_need_follow_symlinks(initialised, tmp_path):
    outside = tmp_path / "outside"
    a = noise(outside / "a.png", 1)
    b = noise(outside / "deep" / "b.png", 2)
    folder = tmp_path / "shoot"
    noise(folder / "own.png", 3)
    os.symlink(a, folder / "link-a.png")
    os.symlink(outside / "deep", folder / "linked-dir")
    os.symlink("/etc/passwd", folder / "passwd.png")

    report = ingest_json(str(folder), "--recursive")
    assert report["ingested"] == 1 and report["skipped"] == 3
    got = reasons(report)
    assert all(got[n].startswith(OUTSIDE) for n in ("link-a.png", "linked-dir", "passwd.png"))
    # A symlink named on the command line is judged against its own folder.
    report = ingest_json(str(folder / "linked-dir"), str(folder / "link-a.png"))
    assert report["ingested"] == 0 and set(reasons(report)) == {"linked-dir", "link-a.png"}
    # A glob wildcard that matches a symlinked folder does not lead out of it either.
    report = ingest_json(str(folder / "*" / "b.png"))
    assert report["ingested"] == 0 and reasons(report)["b.png"].startswith(OUTSIDE)
    assert list(stored(initialised)) == [str(folder / "own.png")]

    report = ingest_json(str(folder), "--recursive", "--follow-symlinks")
    assert report["ingested"] == 2 and report["unchanged"] == 1
    # Followed: stored by real path. /etc/passwd is still no image, so still no row.
    assert sorted(stored(initialised)) == sorted([str(folder / "own.png"), str(a), str(b)])
    assert reasons(report) == {"passwd.png": "not an image: unknown type"}


def test_symlinks_inside_the_folder_are_stored_by_real_path(initialised, tmp_path):
    folder = tmp_path / "shoot"
    real = noise(folder / "real.png", 1)
    inner = noise(folder / "inner" / "c.png", 2)
    os.symlink("real.png", folder / "alias.png")
    os.symlink(folder / "inner", folder / "alias-dir")
    report = ingest_json(str(folder), "--recursive")
    assert (report["ingested"], report["skipped"], report["failed"]) == (2, 2, 0)
    # The links are counted, not silently folded into their targets' rows (issue 13).
    assert reasons(report) == {"alias.png": f"same file as {real}",
                               "alias-dir": f"same folder as {inner.parent}"}
    assert sorted(stored(initialised)) == sorted([str(real), str(inner)])


# --- ingest: non-images -----------------------------------------------------------------

@pytest.mark.parametrize("how", ["direct", "glob", "folder"])
def test_html_and_text_are_never_registered(initialised, tmp_path, how):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "page.html").write_bytes(b"<html>" + SCRIPT)
    (folder / "notes.txt").write_text("hello")
    noise(folder / "photo.png", 1)
    names = ["page.html", "notes.txt", "photo.png"]
    args = {"direct": [str(folder / n) for n in names], "glob": [str(folder / "*")],
            "folder": [str(folder)]}[how]
    report = ingest_json(*args)
    assert (report["ingested"], report["failed"], report["skipped"]) == (1, 0, 2)
    assert reasons(report) == {"page.html": "not an image: text/html",
                               "notes.txt": "not an image: text/plain"}
    assert list(stored(initialised)) == [str(folder / "photo.png")]
    summary = run_cli("ingest", *args)
    assert summary.exit_code == 0 and "2 non-image files skipped" in summary.stdout


def test_an_svg_with_script_is_an_asset_rasterised_without_it(initialised, client, tmp_path):
    """SVG is an asset kind since issue 17: its script and handlers are removed before it
    is rasterised, and its original is still only ever a download."""
    pytest.importorskip("resvg_py")
    path = tmp_path / "logo.svg"
    path.write_bytes(SVG)
    report = ingest_json(str(path))
    assert report["ingested"] == 1, report
    asset_id = stored(initialised)[str(path)]
    r = client.get(f"/api/assets/{asset_id}/original")
    assert r.status_code == 200 and r.content == SVG
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")
    thumb = client.get(f"/api/assets/{asset_id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_broken_images_stay_failed_rows(initialised, tmp_path):
    """Files named as images that do not decode keep their row and error, as before."""
    (tmp_path / "fake.jpg").write_bytes(b"<html>" + SCRIPT)
    good = noise(tmp_path / "good.jpg", 1).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    report = ingest(initialised, [str(tmp_path / "fake.jpg"), str(tmp_path / "cut.jpg")],
                    embed=False)
    errors = {Path(f["uri"]).name: f["error"] for f in report.failures}
    assert "not an image" in errors["fake.jpg"] and report.skipped == 0
    assert len(stored(initialised)) == 2  # cut.jpg is pending: its header reads fine


# --- API: originals and thumbnails ------------------------------------------------------

@pytest.fixture
def one_asset(initialised, encoder, tmp_path) -> tuple[Path, int]:
    path = noise(tmp_path / "shoot" / "a.png", 1, size=(80, 60))
    report = ingest(initialised, [str(path)], encoder=encoder)
    assert report.ingested == 1
    return path, stored(initialised)[str(path)]


def test_file_replaced_by_symlink_is_not_served(client, one_asset, tmp_path):
    path, asset_id = one_asset
    secret = solid(tmp_path / "private" / "secret.png", (1, 2, 3))
    assert client.get(f"/api/assets/{asset_id}/thumbnail").status_code == 200  # cached now
    original = path.read_bytes()
    path.unlink()
    os.symlink(secret, path)
    for suffix in ("original", "thumbnail"):
        assert_refused(client.get(f"/api/assets/{asset_id}/{suffix}"), secret.read_bytes())
    # Even a symlink to a copy of the very same bytes is refused.
    (tmp_path / "private" / "same.png").write_bytes(original)
    path.unlink()
    os.symlink(tmp_path / "private" / "same.png", path)
    assert_refused(client.get(f"/api/assets/{asset_id}/original"))
    # Back to a plain file with the ingested bytes: served again.
    path.unlink()
    path.write_bytes(original)
    r = client.get(f"/api/assets/{asset_id}/original")
    assert r.status_code == 200 and r.content == original


def test_symlinked_folder_in_the_stored_path_is_refused(client, one_asset, tmp_path):
    path, asset_id = one_asset
    moved = tmp_path / "moved"
    path.parent.rename(moved)
    os.symlink(moved, path.parent)  # same bytes, reached through a symlinked folder
    assert path.read_bytes() == (moved / "a.png").read_bytes()
    for suffix in ("original", "thumbnail"):
        assert_refused(client.get(f"/api/assets/{asset_id}/{suffix}"))


def test_changed_content_is_not_served(client, one_asset, tmp_path):
    path, asset_id = one_asset
    original = path.read_bytes()
    assert client.get(f"/api/assets/{asset_id}/original").content == original
    flipped = original[:-1] + bytes([original[-1] ^ 0xFF])  # same size, other bytes
    path.write_bytes(flipped)
    for suffix in ("original", "thumbnail"):
        assert_refused(client.get(f"/api/assets/{asset_id}/{suffix}"), flipped)
    noise(path, 9, size=(80, 60))  # a different image at the same path
    assert_refused(client.get(f"/api/assets/{asset_id}/original"))
    path.unlink()
    os.mkfifo(path)  # not a regular file: refused without blocking
    assert_refused(client.get(f"/api/assets/{asset_id}/original"))


def test_verified_hash_cache_notices_an_in_place_change(tmp_path, monkeypatch):
    """A cached verification is keyed by inode, size and times: rewriting the file in
    place with the same size is hashed again."""
    from assetdb import files

    monkeypatch.setattr(files, "_RACY_NS", 50_000_000)
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    time.sleep(0.1)
    fd = files.open_no_symlinks(str(path))
    try:
        first = files.content_sha256(fd)
        assert files._identity(os.fstat(fd)) in files._verified
        with path.open("r+b") as fh:
            fh.write(b"b")
        assert files.content_sha256(fd) != first
    finally:
        os.close(fd)


def test_original_and_thumbnail_headers(client, one_asset):
    path, asset_id = one_asset
    for suffix in ("original", "thumbnail"):
        r = client.get(f"/api/assets/{asset_id}/{suffix}")
        assert r.status_code == 200
        assert r.headers["x-content-type-options"] == "nosniff"
        csp = r.headers["content-security-policy"]
        assert "sandbox" in csp and "default-src 'none'" in csp
        assert r.headers["etag"] and "max-age" in r.headers["cache-control"]
        cached = client.get(f"/api/assets/{asset_id}/{suffix}",
                            headers={"If-None-Match": r.headers["etag"]})
        assert cached.status_code == 304 and "sandbox" in cached.headers["content-security-policy"]
    r = client.get(f"/api/assets/{asset_id}/original")
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'inline; filename="a.png"'
    head = client.head(f"/api/assets/{asset_id}/original")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(path.stat().st_size)


def _legacy_row(settings, path: Path, mime: str | None, kind: str | None) -> int:
    """A row as an older version stored it (a failed .svg or .html), file and all."""
    data = path.read_bytes()
    with connect(settings) as conn:
        return conn.execute(
            text("INSERT INTO assets (uri, sha256, kind, mime, bytes, status, error) "
                 "VALUES (:uri, :sha, :kind, :mime, :n, 'failed', 'not an image') "
                 "RETURNING id"),
            {"uri": str(path), "sha": hashlib.sha256(data).hexdigest(), "kind": kind,
             "mime": mime, "n": len(data)},
        ).scalar_one()


@pytest.mark.parametrize("name, content, mime, kind", [
    ("logo.svg", SVG, "image/svg+xml", None),
    ("page.html", b"<html>" + SCRIPT, "text/html", None),
    ("fake.jpg", b"<html>" + SCRIPT, "image/jpeg", None),  # named as an image, isn't one
    ("odd.png", b"<html>" + SCRIPT, "text/html", "image"),
])
def test_non_images_are_downloads_never_pages(initialised, client, tmp_path, name, content,
                                              mime, kind):
    path = tmp_path / name
    path.write_bytes(content)
    asset_id = _legacy_row(initialised, path, mime, kind)
    r = client.get(f"/api/assets/{asset_id}/original")
    assert r.status_code == 200 and r.content == content
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    # No thumbnail either: it would have to decode as an image (an SVG is rasterised
    # without its script, test_an_svg_with_script_is_an_asset_rasterised_without_it).
    thumb = client.get(f"/api/assets/{asset_id}/thumbnail")
    assert thumb.status_code in (400, 404) or (
        name.endswith(".svg") and thumb.headers["content-type"] == "image/jpeg")


def test_odd_file_names_cannot_inject_headers(initialised, client, tmp_path):
    path = tmp_path / 'x";\r\nSet-Cookie: a=b.svg'
    path.write_bytes(SVG)
    asset_id = _legacy_row(initialised, path, "image/svg+xml", None)
    r = client.get(f"/api/assets/{asset_id}/original")
    assert r.status_code == 200 and "set-cookie" not in r.headers
    assert r.headers["content-disposition"].startswith("attachment; filename*=utf-8''x%22")
