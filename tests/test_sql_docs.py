"""docs/sql.md runs verbatim: every ```sql block through psql (as an analyst would), every
`assetdb ...` line of the ```sh blocks through the CLI, in document order, against a
seeded database. Recipes must return rows, so a recipe that silently breaks fails here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from assetdb.db import embedded
from assetdb.db.roles import reader_url
from tests.conftest import run_cli
from tests.sql_seed import db_model, insert_assets, unit_vectors

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def doc_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def _seed(url: str) -> None:
    """Assets for the doc's demo products (SKU-001..006), a near-duplicate pair, and assets
    that the products table does not list."""
    model, dim = db_model(url)
    skus = ["SKU-001", "SKU-002", "SKU-003", "SKU-004", "SKU-005", "SKU-006", "SKU-100",
            "SKU-101", None]
    vectors = unit_vectors(len(skus) + 1, dim, seed=21)
    vectors[-1] = vectors[0]  # a re-upload of SKU-001's picture
    metadata = [{"sku": s} if s else {} for s in skus] + [{"sku": "SKU-001"}]
    insert_assets(url, vectors, model=model, metadata=metadata)


def _psql_binary() -> Path:
    return embedded.binary("psql")


def _psql(url: str, sql: str, tmp_path: Path) -> str:
    script = tmp_path / "block.sql"
    script.write_text(sql)
    env = dict(os.environ)
    # The doc's `\set q `assetdb embed-text ...`` runs the real command: this checkout's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(DOC.parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [str(_psql_binary()), "-X", "-v", "ON_ERROR_STOP=1", "-d", url,
         "-f", str(script)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, f"{sql}\n--- stderr:\n{done.stderr}\n--- stdout:\n{done.stdout}"
    return done.stdout


def test_doc_has_the_recipes():
    sql = "\n".join(body for lang, body in doc_blocks() if lang == "sql")
    for needle in ("assetdb_concept_search", "JOIN products", "floor(similarity", "LATERAL",
                   "s.similarity >= 0.95", "NOT EXISTS", "assetdb_nearest(:q"):
        assert needle in sql, needle


def test_every_block_of_docs_sql_runs(initialised, database_url, tmp_path, monkeypatch):
    settings = initialised
    if not (Path(sys.executable).parent / "assetdb").exists():
        pytest.fail("the assetdb console script is not installed beside this Python "
                    "(pip install -e .)")
    _seed(database_url)
    monkeypatch.chdir(tmp_path)  # the doc's export examples write here
    ran_sql = ran_cli = 0
    for lang, body in doc_blocks():
        if lang == "sh":
            for line in body.splitlines():
                if line.startswith("assetdb "):
                    result = run_cli(*shlex.split(line)[1:])
                    assert result.exit_code == 0, f"{line}\n{result.output}"
                    ran_cli += 1
        elif lang == "sql":
            # Analysts' recipes run as the read-only role; set-up says it needs the owner.
            as_owner = body.startswith("-- as the owner")
            out = _psql(database_url if as_owner else reader_url(settings), body, tmp_path)
            if re.search(r"^\s*SELECT", body, re.M):
                assert re.search(r"\((\d+) rows?\)", out), out
                assert "(0 rows)" not in out, f"{body}\nreturned no rows:\n{out}"
            ran_sql += 1
    assert ran_sql >= 7 and ran_cli >= 6
    assert (tmp_path / "assets.parquet").exists() and (tmp_path / "vectors.npy").exists()
