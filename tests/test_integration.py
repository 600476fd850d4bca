"""Where the features meet: a model switch carries the concepts along, and workers
apply label sets and policies the way ingest does."""

from __future__ import annotations

import json

import numpy as np
from sqlalchemy import text

from assetdb.db.engine import connect
from assetdb.embedding.encoder import load_encoder
from tests.conftest import run_cli
from tests.images import noise


def test_reembed_to_another_dimension_refreshes_concepts(initialised, tmp_path,
                                                         tiny_model_dir_64, monkeypatch):
    for i in range(6):
        noise(tmp_path / "imgs" / f"{i}.png", seed=i)
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    assert run_cli("concept", "add", "reds", "a red square").exit_code == 0
    result = run_cli("reembed", "--model", str(tiny_model_dir_64))
    assert result.exit_code == 0, result.output

    new = load_encoder(str(tiny_model_dir_64))
    with connect(initialised) as conn:
        model, vector = conn.execute(text(
            "SELECT model, vector FROM assetdb_concepts WHERE name = 'reds'")).one()
        rows = conn.execute(text(
            "SELECT asset_id, similarity FROM assetdb_concept_search('reds', 3)")).all()
    assert model == new.name and len(vector) == 64
    np.testing.assert_allclose(vector, new.encode_texts(["a red square"])[0], atol=1e-5)
    assert len(rows) == 3  # the SQL function answers with the new model's vectors
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir_64))
    cli_hits = json.loads(run_cli("search", "a red square", "-k", "3", "--json").stdout)
    assert [h["id"] for h in cli_hits] == [r.asset_id for r in rows]


def test_worker_applies_enabled_label_sets(initialised, tmp_path):
    for i in range(3):
        noise(tmp_path / "imgs" / f"{i}.png", seed=i)
    assert run_cli("labels", "add", "animals", "--labels", "cat,dog,car").exit_code == 0
    assert run_cli("ingest", "--no-embed", str(tmp_path / "imgs")).exit_code == 0
    result = run_cli("worker", "--once")
    assert result.exit_code == 0, result.output
    with connect(initialised) as conn:
        labels = conn.execute(text(
            "SELECT c.labels -> 'animals' ->> 'label' FROM assets a "
            "JOIN classifications c ON c.asset_id = a.id WHERE a.status = 'ready'")).scalars()
        labels = list(labels)
    assert len(labels) == 3 and set(labels) <= {"cat", "dog", "car"}
