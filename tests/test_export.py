"""assetdb export: parquet, csv, npy, with the one filter model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq

from tests.conftest import run_cli
from tests.sql_seed import db_model, insert_assets, unit_vectors


def _seed(url: str) -> tuple[list[int], np.ndarray, int]:
    model, dim = db_model(url)
    vectors = unit_vectors(8, dim, seed=7)
    ids = insert_assets(
        url, vectors, model=model,
        metadata=[{"sku": f"S-{i}", "price": i} for i in range(8)],
        tags=[["product"] if i % 2 == 0 else [] for i in range(8)],
        hidden=[i == 6 for i in range(8)])
    insert_assets(url, unit_vectors(2, dim, seed=8), model=model, prefix="mem://pending",
                  status="pending")
    return ids, vectors, dim


def test_export_parquet_csv_npy(initialised, database_url, tmp_path):
    ids, vectors, dim = _seed(database_url)
    searchable = [i for i in range(8) if i != 6]  # hidden and pending rows are left out

    out = tmp_path / "assets.parquet"
    result = run_cli("export", "--format", "parquet", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == len(searchable)
    table = pq.read_table(out).to_pylist()
    assert [r["id"] for r in table] == [ids[i] for i in searchable]
    assert [r["uri"] for r in table] == [f"mem://a/{i}" for i in searchable]
    assert json.loads(table[1]["metadata"]) == {"sku": "S-1", "price": 1}
    assert table[0]["tags"] == ["product"] and table[1]["tags"] == []
    assert pq.read_schema(out).field("embedding").type.list_size == dim
    assert np.array_equal(np.array([r["embedding"] for r in table], dtype=np.float32),
                          vectors[searchable])

    out = tmp_path / "assets.csv"
    result = run_cli("export", "--format", "csv", "--out", str(out), "--tag", "product",
                     "--meta", "price=4")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [int(r["id"]) for r in rows] == [ids[4]]
    assert np.array_equal(np.array(json.loads(rows[0]["embedding"]), dtype=np.float32),
                          vectors[4])

    out = tmp_path / "vectors.npy"
    result = run_cli("export", "--format", "npy", "--out", str(out), "--include-hidden")
    assert result.exit_code == 0, result.output
    matrix = np.load(out)
    companion = list(csv.DictReader((tmp_path / "vectors.csv").open()))
    assert matrix.shape == (8, dim) and matrix.dtype == np.float32
    assert [int(r["id"]) for r in companion] == ids
    assert np.array_equal(matrix, vectors)
    assert not list(tmp_path.glob("*.part"))


def test_export_bad_input_writes_nothing(initialised, database_url, tmp_path):
    _seed(database_url)
    for args, message in (
        (("--format", "csv", "--out", str(tmp_path / "x.csv"), "--min-similarity", "0.5"),
         "min-similarity"),
        (("--format", "csv", "--out", str(tmp_path / "missing" / "x.csv")), "does not exist"),
        (("--format", "csv", "--out", str(tmp_path / "x.csv"), "--kind", "hologram"),
         "unknown kind"),
        (("--format", "xlsx", "--out", str(tmp_path / "x.xlsx")), "Invalid value"),
        (("--format", "npy", "--out", str(tmp_path / "x.csv")), "ending in .npy"),
    ):
        result = run_cli("export", *args)
        assert result.exit_code != 0, (args, result.output)
        assert message in result.output, (args, result.output)
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob("*.part"))

    empty = run_cli("export", "--format", "parquet", "--out", str(tmp_path / "e.parquet"),
                    "--meta", "sku=nothing")
    assert empty.exit_code == 0, empty.output
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
