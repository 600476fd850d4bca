"""The catalogue object (issue 14, item 2): every surface asks it for the model, so the
API and the CLI search with the same one; `init` lives in one place; nothing outside
assetdb/db resets engines."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from assetdb.api.app import create_app
from assetdb.catalog.catalogue import Catalog
from assetdb.config import DEFAULT_MODEL, Settings
from tests.conftest import run_cli
from tests.test_api import BASE_URL, CONFIG

PACKAGE = Path(__file__).resolve().parents[1] / "assetdb"


def test_api_and_cli_search_with_the_recorded_model(initialised, monkeypatch, tiny_model_dir):
    monkeypatch.delenv("ASSETDB_MODEL")  # follow the database, as a user without the variable
    settings = Settings.from_env()
    assert settings.model == DEFAULT_MODEL  # the default is not this catalogue's model
    recorded = str(tiny_model_dir.resolve())
    catalogue = Catalog(settings)
    assert catalogue.model_name() == recorded
    app = create_app(settings, None, CONFIG)
    with TestClient(app, base_url=BASE_URL) as client:
        assert app.state.encoder.name == recorded  # before: the default model's name
        assert client.get("/api/search", params={"q": "red"}).status_code == 200
    cli = run_cli("search", "red", "--json")
    assert cli.exit_code == 0, cli.output


def test_init_and_stats_through_the_catalogue(database_url, tiny_model_dir):
    catalogue = Catalog(Settings.from_env())
    assert catalogue.meta() == {}
    done = catalogue.init()
    assert done.meta["model"] == str(tiny_model_dir.resolve())
    assert done.reader.instructions is None
    again = catalogue.init()  # idempotent, and no model load is needed the second time
    assert again.meta == done.meta
    assert catalogue.stats()["total"] == 0
    assert json.loads(run_cli("stats", "--json").stdout)["model"] == done.meta["model"]


def test_nothing_outside_db_resets_engines():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.parent.name != "db" and re.search(r"\breset_engines\(", p.read_text())]
    assert offenders == []


def test_the_services_run_through_the_catalogue(initialised, encoder, tmp_path):
    from PIL import Image

    from assetdb.search.filters import Filters

    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, rgb in (("red", (230, 10, 10)), ("blue", (5, 5, 240))):
        Image.new("RGB", (40, 30), rgb).save(folder / f"{name}.png")
    catalogue = Catalog(initialised)
    report = catalogue.ingest([str(folder)], encoder=encoder)
    assert report.ingested == 2 and report.failed == 0
    hits = catalogue.search_text(encoder, "red", k=2)
    assert len(hits) == 2
    assert len(catalogue.search_image(encoder, folder / "red.png", k=2)) == 2
    first = hits[0].id
    assert [h.id for h in catalogue.similar(first, k=5)] == [h.id for h in hits if h.id != first]
    only_red = catalogue.search_text(encoder, "red", k=2,
                                     filters=Filters(tags_all=["no-such-tag"]))
    assert only_red == []
    out = catalogue.export(Filters(), "csv", tmp_path / "assets.csv")
    assert out.rows == 2
