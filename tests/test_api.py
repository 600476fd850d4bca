"""The HTTP API against the embedded database: search, detail, thumbnails, originals,
classification, safety (token, upload limits, path traversal) and JSON errors."""

from __future__ import annotations

import http.client
import io
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from assetdb.api.app import create_app
from assetdb.api.deps import ApiConfig
from tests.api_support import make_catalogue, running_server
from tests.conftest import run_cli

CONFIG = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)
# The API answers only loopback Host names (TestClient's default Host is "testserver").
BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def catalogue(initialised, encoder, tmp_path) -> dict[str, int]:
    return make_catalogue(initialised, encoder, tmp_path)


def client_for(settings, encoder, **config) -> TestClient:
    cfg = ApiConfig(**{**CONFIG.__dict__, **config})
    return TestClient(create_app(settings, encoder, cfg), base_url=BASE_URL)


@pytest.fixture
def client(initialised, encoder, catalogue) -> TestClient:
    with client_for(initialised, encoder) as c:
        yield c


def png_bytes(color=(220, 30, 30), size=(96, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["error"]
    assert "Traceback" not in response.text
    return body


def test_text_search_ranks_and_pages(client, catalogue):
    r = client.get("/api/search", params={"q": "a red circle", "limit": 3})
    assert r.status_code == 200
    page1 = r.json()
    assert len(page1["results"]) == 3 and page1["has_more"] is True
    sims = [h["similarity"] for h in page1["results"]]
    assert sims == sorted(sims, reverse=True)
    first = page1["results"][0]
    assert first["thumbnail_url"] == f"/api/assets/{first['id']}/thumbnail"
    page2 = client.get("/api/search", params={"q": "a red circle", "limit": 3,
                                              "offset": 3}).json()
    page3 = client.get("/api/search", params={"q": "a red circle", "limit": 3,
                                              "offset": 6}).json()
    ids = [h["id"] for p in (page1, page2, page3) for h in p["results"]]
    assert sorted(ids) == sorted(catalogue.values())  # every asset once over the pages
    assert page3["has_more"] is False
    whole = client.get("/api/search", params={"q": "a red circle", "limit": 8}).json()
    assert [h["id"] for h in whole["results"]] == ids


def test_result_cap_stops_load_more(initialised, encoder, catalogue):
    with client_for(initialised, encoder, max_results=5) as c:
        p1 = c.get("/api/search", params={"q": "dog", "limit": 4}).json()
        p2 = c.get("/api/search", params={"q": "dog", "limit": 4, "offset": 4}).json()
        p3 = c.get("/api/search", params={"q": "dog", "limit": 4, "offset": 8}).json()
    assert (len(p1["results"]), p1["has_more"]) == (4, True)
    assert (len(p2["results"]), p2["has_more"], p2["cap"]) == (1, False, 5)
    assert p3["results"] == []


def test_filters_match_the_cli(client, catalogue):
    def ids(**params) -> set[int]:
        r = client.get("/api/search", params={"q": "photo", "limit": 50, **params})
        assert r.status_code == 200, r.text
        return {h["id"] for h in r.json()["results"]}

    c = catalogue
    assert ids(tag="poster") == {c["red-1.png"], c["blue-1.png"]}
    assert ids(tag="poster,red") == {c["red-1.png"]}
    assert ids(any_tag=["banner", "nature"]) == {c["red-2.png"], c["green-1.png"],
                                                 c["yellow-1.png"]}
    assert ids(meta="brand=zenith") == {c["blue-1.png"], c["green-1.png"], c["noise-2.png"]}
    assert ids(captured_after="2024-01-01", captured_before="2024-04-01") == {
        c["red-1.png"], c["blue-1.png"]}
    assert ids(kind="image") == set(c.values())
    # The same filters through the CLI give the same assets.
    cli = run_cli("search", "photo", "-k", "50", "--meta", "brand=zenith", "--json")
    import json

    assert {h["id"] for h in json.loads(cli.stdout)} == ids(meta="brand=zenith")


@pytest.mark.parametrize("params, fragment", [
    ({"kind": "hologram"}, "unknown kind"),
    ({"captured_after": "yesterday"}, "cannot read"),
    ({"meta": "brand"}, "key=value"),
    ({"captured_after": "2024-05-01", "captured_before": "2024-01-01"}, "range is empty"),
])
def test_bad_filters_are_400_json(client, params, fragment):
    body = assert_json_error(client.get("/api/search", params={"q": "red", **params}), 400)
    assert fragment in body["error"]


def test_bad_parameters_are_422_json(client):
    assert_json_error(client.get("/api/search"), 422)  # q missing
    assert_json_error(client.get("/api/search", params={"q": "x", "limit": 0}), 422)
    assert_json_error(client.get("/api/search", params={"q": "x", "min_similarity": 3}), 422)
    assert_json_error(client.get("/api/assets/abc"), 422)


def test_search_by_uploaded_image(client, catalogue, tmp_path):
    data = (tmp_path / "assets" / "blue-1.png").read_bytes()
    r = client.post("/api/search/image", files={"file": ("q.png", data, "image/png")},
                    params={"limit": 3})
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    assert top["id"] == catalogue["blue-1.png"] and top["similarity"] > 0.999
    r = client.post("/api/search/image", files={"file": ("q.png", data, "image/png")},
                    params={"tag": "nature", "limit": 10})
    assert {h["id"] for h in r.json()["results"]} == {catalogue["green-1.png"],
                                                      catalogue["yellow-1.png"]}


def test_uploads_are_validated_and_size_limited(initialised, encoder, catalogue):
    with client_for(initialised, encoder, max_upload_bytes=4000) as c:
        bad = c.post("/api/search/image", files={"file": ("x.png", b"not an image", "image/png")})
        assert "not an image" in assert_json_error(bad, 400)["error"]
        empty = c.post("/api/search/image", files={"file": ("x.png", b"", "image/png")})
        assert "empty" in assert_json_error(empty, 400)["error"]
        big = Image.effect_noise((200, 200), 80).convert("RGB")
        buf = io.BytesIO()
        big.save(buf, "PNG")
        assert len(buf.getvalue()) > 4000
        r = c.post("/api/search/image", files={"file": ("big.png", buf.getvalue(), "image/png")})
        assert "larger than 4000" in assert_json_error(r, 413)["error"]
        huge = c.post("/api/search/image", content=b"x" * (2**20 + 5000),
                      headers={"content-type": "multipart/form-data; boundary=b"})
        assert_json_error(huge, 413)
        assert_json_error(c.post("/api/search/image"), 422)  # no file at all


def test_detail_and_more_like_this(client, catalogue):
    rid = catalogue["red-1.png"]
    r = client.get(f"/api/assets/{rid}")
    assert r.status_code == 200
    a = r.json()
    assert (a["title"], a["description"], a["tags"]) == ("Red poster", "A red poster for spring.",
                                                         ["poster", "red"])
    assert a["metadata"] == {"brand": "acme"} and a["status"] == "ready"
    assert a["width"] == 96 and a["mime"] == "image/png" and a["name"] == "red-1.png"
    assert "embedding" not in a
    sim = client.get(a["similar_url"], params={"limit": 10}).json()["results"]
    assert rid not in {h["id"] for h in sim} and len(sim) == len(catalogue) - 1
    assert sim[0]["id"] == catalogue["red-2.png"]  # the other red image is identical in pixels
    filtered = client.get(a["similar_url"], params={"meta": "brand=zenith"}).json()["results"]
    assert {h["id"] for h in filtered} == {catalogue["blue-1.png"], catalogue["green-1.png"],
                                           catalogue["noise-2.png"]}
    assert "no asset with id 999999" in assert_json_error(
        client.get("/api/assets/999999"), 404)["error"]
    assert_json_error(client.get("/api/assets/999999/similar"), 404)


def test_hidden_assets_are_not_found_unless_asked_for(client, catalogue, initialised):
    from sqlalchemy import text

    from assetdb.db.engine import connect

    rid = catalogue["blue-1.png"]
    with connect(initialised) as conn:
        conn.execute(text("UPDATE assets SET hidden = true WHERE id = :i"), {"i": rid})
    for suffix in ("", "/thumbnail", "/original", "/similar"):
        assert "hidden" in assert_json_error(client.get(f"/api/assets/{rid}{suffix}"),
                                             404)["error"]
        shown = client.get(f"/api/assets/{rid}{suffix}", params={"include_hidden": "true"})
        assert shown.status_code == 200, suffix
    found = client.get("/api/search", params={"q": "blue", "limit": 50}).json()["results"]
    assert rid not in {h["id"] for h in found}


def test_browse_newest_first_with_filters(client, catalogue):
    r = client.get("/api/assets", params={"tag": "texture", "limit": 2}).json()
    assert len(r["results"]) == 2 and r["has_more"] is True
    assert all(h["similarity"] is None for h in r["results"])
    rest = client.get("/api/assets", params={"tag": "texture", "limit": 2, "offset": 2}).json()
    got = {h["id"] for h in r["results"] + rest["results"]}
    assert got == {catalogue[f"noise-{i}.png"] for i in (1, 2, 3)} and not rest["has_more"]


def test_thumbnail_made_once_cached_with_headers(client, catalogue, initialised):
    rid = catalogue["red-1.png"]
    r = client.get(f"/api/assets/{rid}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG" and max(img.size) == 96  # never upscaled
    cached = list((initialised.home / "thumbnails").rglob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == r.content
    mtime = cached[0].stat().st_mtime_ns
    again = client.get(f"/api/assets/{rid}/thumbnail")
    assert again.content == r.content and cached[0].stat().st_mtime_ns == mtime
    # The identical red-2.png shares the cached file (keyed by content hash).
    client.get(f"/api/assets/{catalogue['red-2.png']}/thumbnail")
    assert len(list((initialised.home / "thumbnails").rglob("*.jpg"))) == 1
    not_modified = client.get(f"/api/assets/{rid}/thumbnail",
                              headers={"If-None-Match": r.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert "256, 512" in assert_json_error(
        client.get(f"/api/assets/{rid}/thumbnail", params={"size": 300}), 400)["error"]
    big = client.get(f"/api/assets/{rid}/thumbnail", params={"size": 512})
    assert big.status_code == 200
    head = client.head(f"/api/assets/{rid}/thumbnail")
    assert head.status_code == 200 and head.headers["content-type"] == "image/jpeg"
    assert head.content == b""


def test_thumbnail_downscales_large_images(initialised, encoder, tmp_path):
    from assetdb.ingest.ingest_files import ingest
    from tests.images import noise

    noise(tmp_path / "big" / "wide.png", seed=3, size=(1200, 600))
    ingest(initialised, [str(tmp_path / "big")], encoder=encoder)
    with client_for(initialised, encoder) as c:
        hit = c.get("/api/assets").json()["results"][0]
        img = Image.open(io.BytesIO(c.get(hit["thumbnail_url"]).content))
        assert img.size == (256, 128)


def test_original_from_stored_uri_only(client, catalogue, tmp_path):
    rid = catalogue["blue-1.png"]
    r = client.get(f"/api/assets/{rid}/original", params={"path": "/etc/passwd"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (tmp_path / "assets" / "blue-1.png").read_bytes()
    (tmp_path / "assets" / "blue-1.png").unlink()
    assert "missing" in assert_json_error(client.get(f"/api/assets/{rid}/original"), 404)["error"]
    assert_json_error(client.get(f"/api/assets/{rid}/thumbnail"), 404)


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET a path byte for byte: no client-side normalisation of .. or %2e."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_path_traversal_is_refused(initialised, encoder, catalogue, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    s = str(secret)
    up = "../" * 12
    enc = "%2e%2e%2f" * 12
    attempts = [
        f"/api/assets/{up}{s[1:]}/original",
        f"/api/assets/{enc}{s[1:]}/original",
        f"/api/assets/..%2F..%2F..{s}/thumbnail",
        f"/api/assets/{s}/original",
        f"/api/assets/%2F{s[1:].replace('/', '%2F')}/original",
        f"/api/assets/%252e%252e%252f{s[1:]}/original",
        f"/api/assets/1/original/{up}{s[1:]}",
        f"/api/assets/1/thumbnail/{enc}{s[1:]}",
        f"/static/{up}{s[1:]}",
        f"/static/{enc}{s[1:]}",
        f"/static/..%5c..%5c..%5c{s[1:]}",
        f"/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/{s[1:]}",
        f"/static/{s}",
        f"/static//{s[1:]}",
        f"/{up}{s[1:]}",
        f"/api/assets/{catalogue['red-1.png']}/original?uri={s}",
    ]
    with running_server(create_app(initialised, encoder, CONFIG)) as base:
        for path in attempts:
            status, body = raw_get(base, path)
            assert b"TOP-SECRET-MARKER" not in body, path
            assert b"root:" not in body, path
            if status == 200:  # only the asset's own file may come back
                assert body == (tmp_path / "assets" / "red-1.png").read_bytes(), path
            else:
                assert status in (400, 404, 422), (path, status)


def test_write_endpoint_requires_token_when_set(initialised, encoder, catalogue):
    rid = catalogue["green-1.png"]
    with client_for(initialised, encoder, token="s3cret") as c:
        edit = {"title": "Meadow", "tags": ["nature", "meadow", "meadow", " "]}
        assert_json_error(c.patch(f"/api/assets/{rid}", json=edit), 401)
        assert_json_error(c.patch(f"/api/assets/{rid}", json=edit,
                                  headers={"Authorization": "Bearer nope"}), 403)
        assert c.get(f"/api/assets/{rid}").json()["title"] == "Green field"  # unchanged
        r = c.patch(f"/api/assets/{rid}", json=edit, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200, r.text
        assert (r.json()["title"], r.json()["tags"]) == ("Meadow", ["nature", "meadow"])
        r = c.patch(f"/api/assets/{rid}", json={"description": "Grass"},
                    headers={"X-API-Token": "s3cret"})
        assert r.json()["description"] == "Grass" and r.json()["title"] == "Meadow"
        assert_json_error(c.patch(f"/api/assets/{rid}", json={"tags": "x"},
                                  headers={"X-API-Token": "s3cret"}), 422)
        assert_json_error(c.patch("/api/assets/999999", json={"title": "x"},
                                  headers={"X-API-Token": "s3cret"}), 404)
        assert c.get("/api/search", params={"q": "red"}).status_code == 200  # reads: open
        assert c.get("/api/info").json()["token_required_for_writes"] is True
    with client_for(initialised, encoder) as c:  # no token configured: writes are open
        assert c.patch(f"/api/assets/{rid}", json={"title": ""}).json()["title"] is None


def test_classify_an_upload(client):
    r = client.post("/api/classify", files={"file": ("q.png", png_bytes(), "image/png")},
                    data={"labels": "cat, dog,car"})
    assert r.status_code == 200, r.text
    labels = r.json()["labels"]
    assert sorted(x["label"] for x in labels) == ["car", "cat", "dog"]
    probs = [x["probability"] for x in labels]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    assert "empty" in assert_json_error(client.post(
        "/api/classify", files={"file": ("q.png", png_bytes(), "image/png")},
        data={"labels": " , "}), 400)["error"]
    gif = {"file": ("q.gif", b"GIF89a", "image/gif")}
    assert_json_error(client.post("/api/classify", files=gif, data={"labels": "cat"}), 400)
    assert_json_error(client.post("/api/classify", files={"file": ("q.png", png_bytes(),
                                  "image/png")}, data={"labels": "cat", "templates": "no slot"}),
                      400)


def test_errors_are_json_everywhere(settings, encoder):
    with client_for(settings, encoder) as c:  # database not initialised
        body = assert_json_error(c.get("/api/search", params={"q": "red"}), 503)
        assert "assetdb init" in body["error"]
        assert_json_error(c.get("/api/nope"), 404)
        assert_json_error(c.delete("/api/assets/1"), 405)


def test_unexpected_errors_are_json_500_without_traceback(settings, encoder):
    app = create_app(settings, encoder, CONFIG)

    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False, base_url=BASE_URL) as c:
        r = c.get("/api/boom")
    body = assert_json_error(r, 500)
    assert "secret internals" not in r.text and "server log" in body["error"]


def test_page_docs_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>assetdb" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for ref in ("/static/app.css", "/static/app.js"):
        assert ref in page.text and client.get(ref).status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/api/search", "/api/search/image", "/api/assets/{asset_id}",
                 "/api/assets/{asset_id}/similar", "/api/assets/{asset_id}/thumbnail",
                 "/api/classify"):
        assert path in spec["paths"], path
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in (
        docs.text + client.get("/static/docs.js").text)
    # Nothing on the page comes from another host (no CDN, no network at run time).
    static = Path(__file__).parents[1] / "assetdb" / "api" / "static"
    for f in static.iterdir():
        text = f.read_text()
        assert "https://" not in text and "src=\"//" not in text, f.name


def test_model_loaded_once_at_startup(initialised, tiny_model_dir):
    from assetdb.embedding.encoder import load_encoder

    app = create_app(initialised, None, CONFIG)  # no encoder given: the lifespan loads it
    assert app.state.encoder is None
    with TestClient(app, base_url=BASE_URL) as c:
        loaded = app.state.encoder
        assert loaded is load_encoder(str(tiny_model_dir))
        assert c.get("/api/info").json()["model"] == str(tiny_model_dir.resolve())
        c.get("/api/search", params={"q": "red"})
        assert app.state.encoder is loaded


def test_serve_help_and_loopback_default():
    r = run_cli("serve", "--help")
    assert r.exit_code == 0 and "Example" in r.output and "127.0.0.1" in r.output
    from assetdb.cli.serve_cmds import serve

    host = next(p for p in serve.params if p.name == "host")
    assert host.default == "127.0.0.1"


def test_assetdb_serve_process(initialised, catalogue):
    """The real command in its own process: loads the model, binds 127.0.0.1, answers."""
    import json
    import urllib.request

    from tests.api_support import assetdb_serve, free_port

    port = free_port()

    def ready() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?q=red&limit=2",
                                    timeout=5) as r:
            return json.load(r)

    with assetdb_serve(port, ready) as served:
        assert len(served.first["results"]) == 2
    assert f"serving http://127.0.0.1:{port}/" in served.output
