"""An asset kind registered from outside the package, through the `assetdb.kinds`
entry-point group (issue 14, item 4): scanning takes its files, ingest probes and embeds
them, the kinds filter offers it, and the API thumbnails it, while the serving rules stay
(a type no kind vouches for as a script-free raster image is a download)."""

from __future__ import annotations

import io
import json
import textwrap

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from assetdb.api.app import create_app
from assetdb.api.deps import ApiConfig
from assetdb.api.file_responses import serving_type
from assetdb.db.engine import connect
from assetdb.embedding.batches import embed_paths
from assetdb.errors import AssetdbError
from assetdb.kinds import registry
from assetdb.search.filters import build_filters
from tests.conftest import run_cli
from tests.images import noise
from tests.plugin_support import install_plugin

PLUGIN = textwrap.dedent('''
    """A toy kind: a .swatch file names a colour ("SWATCH red") and shows as a square of it."""
    from PIL import Image, ImageColor

    from assetdb.errors import ImageError
    from assetdb.kinds.registry import DecodedKind, Probe

    SIDE = 64


    class Swatch(DecodedKind):
        names = ("swatch",)
        suffixes = frozenset({".swatch"})
        inline_types = frozenset()  # text: never shown inline
        magic_bytes = 7

        def sniff(self, head):
            return head.startswith(b"SWATCH ")

        @staticmethod
        def _colour(source):
            data = source.read_bytes() if hasattr(source, "read_bytes") else source.read()
            name = data[7:].decode("ascii", "replace").strip()
            try:
                return ImageColor.getrgb(name)
            except ValueError:
                raise ImageError(f"unknown colour {name!r}") from None

        def probe(self, source):
            self._colour(source)
            return Probe("swatch", "text/x-swatch", SIDE, SIDE, None)

        def decode(self, source, min_size):
            return Image.new("RGB", (max(SIDE, min_size),) * 2, self._colour(source))


    def kind():
        return Swatch()
''')
BASE_URL = "http://127.0.0.1:8000"  # the API answers loopback Host names only


@pytest.fixture
def swatch_plugin(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", monkeypatch, dist="assetdb-swatch-kind",
                   group="assetdb.kinds", entry="swatch = assetdb_swatch_kind:kind",
                   module="assetdb_swatch_kind", source=PLUGIN)
    registry.reload_plugins()
    yield
    registry.reload_plugins()


def _uris(result) -> set[str]:
    hits = json.loads(result.stdout)
    hits = hits["results"] if isinstance(hits, dict) else hits
    return {h["uri"].rsplit("/", 1)[-1] for h in hits}


def test_plugin_kind_is_scanned_ingested_filtered_and_thumbnailed(
        swatch_plugin, initialised, encoder, tmp_path):
    assert registry.kind_names() == ("image", "animation", "video", "document", "swatch")
    assert build_filters(kinds=["swatch"]).kinds == ["swatch"]
    folder = tmp_path / "board"
    folder.mkdir()
    (folder / "red.swatch").write_text("SWATCH red\n")
    (folder / "teal.swatch").write_text("SWATCH #008080\n")
    (folder / "bad.swatch").write_text("SWATCH no-such-colour\n")
    (folder / "notes.txt").write_text("not an asset\n")
    noise(folder / "photo.png", seed=1)

    result = run_cli("ingest", str(folder), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1, result.output  # bad.swatch failed; the rest went on
    assert (report["ingested"], report["failed"], report["skipped"]) == (3, 1, 1)
    assert report["skipped_files"][0]["reason"] == "not an image: text/plain"
    assert "unknown colour 'no-such-colour'" in report["failures"][0]["error"]
    with connect(initialised) as conn:
        rows = {r.uri.rsplit("/", 1)[-1]: r for r in conn.execute(text(
            "SELECT id, uri, kind, mime, width, status FROM assets"))}
    red = rows["red.swatch"]
    assert (red.kind, red.mime, red.width, red.status) == ("swatch", "text/x-swatch", 64,
                                                           "ready")
    assert rows["photo.png"].kind == "image"

    found = run_cli("search", "a red square", "--kind", "swatch", "--json")
    assert found.exit_code == 0, found.output
    assert _uris(found) == {"red.swatch", "teal.swatch"}
    assert _uris(run_cli("search", "a red square", "--kind", "image", "--json")) == {
        "photo.png"}
    wrong = run_cli("search", "red", "--kind", "hologram")
    assert wrong.exit_code != 0 and "image, animation, video, document, swatch" in wrong.output

    # Workers and re-embedding decode through the same kind.
    (path, vector, error), = next(embed_paths(encoder, [tmp_path / "board" / "red.swatch"]))
    assert error is None and vector is not None

    cfg = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)
    with TestClient(create_app(initialised, encoder, cfg), base_url=BASE_URL) as client:
        thumb = client.get(f"/api/assets/{red.id}/thumbnail")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        img = Image.open(io.BytesIO(thumb.content))
        assert img.size[0] == img.size[1] <= 256
        r, g, b = img.convert("RGB").getpixel((10, 10))
        assert r > 240 and g < 15 and b < 15
        original = client.get(f"/api/assets/{red.id}/original")
        assert original.status_code == 200
        assert original.headers["content-type"] == "application/octet-stream"
        assert original.headers["content-disposition"].startswith("attachment")
        assert original.headers["x-content-type-options"] == "nosniff"
        assert original.content == b"SWATCH red\n"


class _Claims:
    """A kind that vouches for types no kind may serve inline."""

    names = ("claims",)
    suffixes = frozenset({".claims"})
    inline_types = frozenset({"text/html", "image/svg+xml", "image/x-toy"})
    magic_bytes = 0


def test_inline_serving_stays_raster_only_whatever_a_kind_declares():
    kind = _Claims()
    registry.register(kind)  # type: ignore[arg-type]
    try:
        assert "image/x-toy" in registry.inline_types()
        assert serving_type("image/x-toy", probed=True) == ("image/x-toy", "inline")
        for mime in ("text/html", "image/svg+xml"):
            assert serving_type(mime, probed=True) == ("application/octet-stream",
                                                       "attachment")
    finally:
        registry.unregister(kind)  # type: ignore[arg-type]
    assert "image/x-toy" not in registry.inline_types()


def test_broken_kind_plugin_is_a_clear_error(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_plugin(site, monkeypatch, dist="broken", group="assetdb.kinds",
                   entry="broken = no_such_module_here:kind")
    registry.reload_plugins()
    try:
        with pytest.raises(AssetdbError, match="asset kind plugin 'broken'"):
            registry.kind_for_path("a.png")
    finally:
        registry.reload_plugins()
