"""Filters are declared once (assetdb.search.filters.FILTERS): one more declaration,
made here through the public register_filter(), works from the CLI, the API and the
page's list, and /openapi.json documents it; min_similarity is a search option."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from assetdb.api.app import create_app
from assetdb.api.deps import ApiConfig
from assetdb.search.filters import FILTERS, FilterSpec, register_filter, unregister_filter
from tests.conftest import run_cli
from tests.images import noise

BASE_URL = "http://127.0.0.1:8000"  # the API answers loopback Host names only
CONFIG = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)

MIME = FilterSpec(
    field="mimes", flag="--mime", param="mime", metavar="TYPE", multiple=True,
    help="Only files of this media type (image/png). Repeatable.",
    parse=lambda values: [v.strip() for v in values if v.strip()], empty=list,
    clause=lambda c, v: c.mime.in_(v),
)


@pytest.fixture
def mime_filter():
    register_filter(MIME)
    yield MIME
    unregister_filter(MIME.field)


@pytest.fixture
def mixed(initialised, tmp_path) -> dict[str, int]:
    """Two PNGs and one JPEG, ingested; their ids by file name."""
    for i, name in enumerate(("a.png", "b.png", "c.jpg")):
        noise(tmp_path / "png" / name, seed=i)  # saved in the format its suffix names
    result = run_cli("ingest", str(tmp_path / "png"))
    assert result.exit_code == 0, result.output
    rows = json.loads(run_cli("search", "red", "-k", "10", "--json").stdout)
    return {r["uri"].rsplit("/", 1)[1]: r["id"] for r in rows}


def test_one_declaration_adds_a_filter_everywhere(mime_filter, mixed, initialised, encoder):
    pngs = {mixed["a.png"], mixed["b.png"]}
    # The CLI: the option is there, with its help, and narrows the search.
    assert "--mime TYPE" in run_cli("search", "--help").output
    result = run_cli("search", "red", "--mime", "image/png", "--json")
    assert result.exit_code == 0, result.output
    assert {h["id"] for h in json.loads(result.stdout)} == pngs
    by_id = json.loads(run_cli("similar", str(mixed["c.jpg"]), "--mime", "image/png",
                               "--json").stdout)
    assert {h["id"] for h in by_id} == pngs
    # The API (an app made after the registration reads its routes with it).
    with TestClient(create_app(initialised, encoder, CONFIG), base_url=BASE_URL) as client:
        page = client.get("/api/search", params={"q": "red", "mime": "image/png"})
        assert page.status_code == 200, page.text
        assert {h["id"] for h in page.json()["results"]} == pngs
        browse = client.get("/api/assets", params={"mime": "image/jpeg"}).json()
        assert [h["id"] for h in browse["results"]] == [mixed["c.jpg"]]
        params = client.get("/openapi.json").json()["paths"]["/api/search"]["get"]["parameters"]
        documented = {p["name"]: p for p in params}
        assert documented["mime"]["description"] == MIME.help
        assert {s.param for s in FILTERS} <= set(documented)
        listed = {f["param"]: f for f in client.get("/api/filters").json()}
        assert listed["mime"]["multiple"] and listed["mime"]["page"] is None


def test_the_list_is_what_the_cli_and_api_offer(initialised, encoder):
    """No filter is declared anywhere else: the CLI's filter options and the API's filter
    parameters are exactly the list's."""
    for command in ("search", "similar", "export", "classify", "moderate", "reembed"):
        text = run_cli(command, "--help").output
        assert all(s.flag in text for s in FILTERS), command
    with TestClient(create_app(initialised, encoder, CONFIG), base_url=BASE_URL) as client:
        spec = client.get("/openapi.json").json()["paths"]
        browse = {p["name"] for p in spec["/api/assets"]["get"]["parameters"]}
        search = {p["name"] for p in spec["/api/search"]["get"]["parameters"]}
        assert browse == {s.param for s in FILTERS} | {"offset", "limit"}
        assert search == browse | {"q", "min_similarity", "mode"}  # mode: issue 16
        panel = [f["param"] for f in client.get("/api/filters").json() if f["page"]]
        assert panel == ["kind", "tag", "any_tag", "meta", "captured_after", "captured_before"]


def test_min_similarity_is_a_search_option_not_a_filter(initialised, encoder):
    assert "min_similarity" not in {s.field for s in FILTERS}
    with TestClient(create_app(initialised, encoder, CONFIG), base_url=BASE_URL) as client:
        # Browsing has no query to be similar to: said, no longer silently ignored.
        r = client.get("/api/assets", params={"min_similarity": 0.5})
        assert r.status_code == 400 and "searches only" in r.json()["error"]
        assert client.get("/api/search", params={"q": "x", "min_similarity": 3}
                          ).status_code == 422
    result = run_cli("search", "x", "--min-similarity", "2")
    assert result.exit_code == 1 and "between -1 and 1" in result.output
