"""`assetdb reembed`: a move to a model of another dimension while searches run, resume
after an interruption, the switch hooks, same-model subsets, abort, refusals."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from assetdb import hooks
from assetdb.db.engine import connect, get_engine
from assetdb.embedding.encoder import load_encoder
from assetdb.embedding.images import load_image
from assetdb.errors import ModelError
from assetdb.ingest.model_switch import database_model, reembed
from assetdb.ingest.status import status
from assetdb.search.searches import search_text, similar_to_asset
from tests.conftest import run_cli
from tests.images import noise

K = 5
QUERY = "a photo of a red circle"
HOOK_CALLS: list[tuple[str, str]] = []


def record_switch(conn, encoder) -> None:  # noqa: ANN001 - a MODEL_SWITCH_HOOKS entry
    seen = conn.execute(text("SELECT value FROM assetdb_meta WHERE key = 'model'")).scalar_one()
    HOOK_CALLS.append((seen, encoder.name))


def _brute_force(
    vectors: dict[int, np.ndarray], query: np.ndarray, exclude: int | None
) -> list[int]:
    dist = {i: 1.0 - float(np.dot(v, query)) for i, v in vectors.items() if i != exclude}
    return sorted(dist, key=lambda i: (dist[i], i))[:K]


def _ids(hits) -> list[int]:  # noqa: ANN001
    return [h.id for h in hits]


def _paths_by_id(url: str) -> dict[int, Path]:
    with psycopg.connect(url) as conn:
        return {i: Path(u) for i, u in conn.execute("SELECT id, uri FROM assets ORDER BY id")}


def test_switch_to_another_dimension_while_searching(
        initialised, database_url, tmp_path, encoder, tiny_model_dir_64, monkeypatch):
    for i in range(30):
        noise(tmp_path / "imgs" / f"n{i:02d}.png", seed=i, size=(32, 32))
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    settings = initialised
    new = load_encoder(str(tiny_model_dir_64))
    assert new.dimension == 64 != encoder.dimension
    anchor = min(_paths_by_id(database_url))

    def expected(enc) -> tuple[list[int], list[int]]:  # noqa: ANN001
        paths = _paths_by_id(database_url)
        vecs = dict(zip(paths, enc.encode_images([load_image(p, enc.image_size)
                                                   for p in paths.values()]), strict=True))
        return (_brute_force(vecs, vecs[anchor], anchor),
                _brute_force(vecs, enc.encode_texts([QUERY])[0], None))

    old_similar, old_text = expected(encoder)
    assert _ids(similar_to_asset(settings, anchor, k=K)) == old_similar
    assert _ids(search_text(settings, encoder, QUERY, k=K)) == old_text
    old_answers = {"similar": [old_similar], "text": [old_text]}

    # A searcher in another thread, on the HNSW plan, for the whole run.
    hnsw = dataclasses.replace(settings, exact_search_max_rows=0)
    done = threading.Event()
    seen: list[tuple[str, list[int]]] = []  # ("similar" | model name, ids)
    errors: list[BaseException] = []
    model_refusals: list[str] = []

    def searcher() -> None:
        encoders = {encoder.name: encoder, new.name: new}
        while not done.is_set():
            try:
                seen.append(("similar", _ids(similar_to_asset(hnsw, anchor, k=K))))
                model = database_model(hnsw)
                try:
                    seen.append((model, _ids(search_text(hnsw, encoders[model], QUERY, k=K))))
                except ModelError as exc:  # the switch happened between the two calls
                    model_refusals.append(str(exc))
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                return

    thread = threading.Thread(target=searcher, daemon=True)
    thread.start()

    # Run 1: interrupted after two batches. An old-model ingest lands meanwhile.
    stop = threading.Event()
    batches = []

    def first_run_progress(n: int) -> None:
        batches.append(n)
        # Searches still answer from the old vectors, in this thread too.
        assert _ids(similar_to_asset(settings, anchor, k=K)) == old_similar
        if len(batches) == 2:
            stop.set()

    report = reembed(settings, new, batch_size=4, stop=stop, progress=first_run_progress)
    assert report.interrupted and not report.switched and report.embedded == 8
    assert database_model(settings) == encoder.name
    job = status(settings)["reembed"]
    assert (job["target_model"], job["done"], job["total"]) == (new.name, 8, 30)
    noise(tmp_path / "imgs" / "late.png", seed=99, size=(32, 32))
    assert run_cli("ingest", str(tmp_path / "imgs" / "late.png")).exit_code == 0
    old_similar, old_text = expected(encoder)  # the late asset is part of the answers now
    assert _ids(similar_to_asset(settings, anchor, k=K)) == old_similar
    old_answers["similar"].append(old_similar)
    old_answers["text"].append(old_text)

    # Run 2 resumes: only the 23 rows not done yet go to the model; then the switch.
    monkeypatch.setattr(hooks, "MODEL_SWITCH_HOOKS", ["tests.test_reembed:record_switch"])
    HOOK_CALLS.clear()
    report = reembed(settings, new, batch_size=4)
    assert report.switched and not report.interrupted
    assert (report.resumed_from, report.total, report.embedded) == (8, 23, 23)
    assert HOOK_CALLS == [(new.name, new.name)]  # inside the switch, after the meta update

    new_similar, new_text = expected(new)
    assert new_similar != old_similar or new_text != old_text  # the test can tell them apart
    after = len(seen)
    while len(seen) < after + 6 and thread.is_alive():
        threading.Event().wait(0.05)
    done.set()
    thread.join(timeout=60)
    assert not errors, errors
    # Every search answered exactly: with the old model's results until the switch, then
    # with the new model's; never an error, never a mix.
    phases = []
    for n, (kind, ids) in enumerate(seen):
        if kind == "similar":
            is_old, is_new = ids in old_answers["similar"], ids == new_similar
            assert is_old or is_new, (n, ids)
        else:
            is_old, is_new = kind == encoder.name, kind == new.name
            assert ids in (old_answers["text"] if is_old else [new_text]), (n, kind, ids)
        if is_old != is_new:
            phases.append("new" if is_new else "old")
    assert "old" in phases and "new" in phases
    assert phases == sorted(phases, key=lambda p: p == "new"), "an old answer after a new one"
    assert all(new.name in m for m in model_refusals) and len(model_refusals) <= 1

    with psycopg.connect(database_url) as conn:
        meta = dict(conn.execute("SELECT key, value FROM assetdb_meta"))
        assert (meta["model"], meta["dimension"]) == (new.name, "64")
        assert conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE embedding_model = %s AND "
            "vector_dims(embedding) = 64) FROM assets", (new.name,)).fetchone() == (31, 31)
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'assets'::regclass "
                            "AND attname LIKE 'embedding_next%%' AND NOT attisdropped"
                            ).fetchone() == (0,)
    assert _ids(similar_to_asset(settings, anchor, k=K)) == new_similar
    assert _ids(search_text(settings, new, QUERY, k=K)) == new_text
    with pytest.raises(ModelError):
        search_text(settings, encoder, QUERY, k=K)
    with connect(settings) as conn:
        # The new vectors' HNSW index took the old one's name and is what ORDER BY uses.
        indexdef, valid = conn.execute(text(
            "SELECT indexdef, indisvalid FROM pg_indexes JOIN pg_class c ON c.relname = indexname "
            "JOIN pg_index i ON i.indexrelid = c.oid WHERE indexname = 'assets_embedding_hnsw'"
        )).one()
        assert valid and "hnsw (((embedding)::halfvec(64)) halfvec_cosine_ops)" in indexdef
        assert conn.execute(text(  # the new vectors are kept in the row too (0006)
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'assets'::regclass "
            "AND attname = 'embedding'")).scalar_one() == "m"
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # 31 rows: force the index plan
        plan = conn.execute(text("EXPLAIN SELECT id FROM assets ORDER BY "
                                 "embedding::halfvec(64) <=> CAST(:q AS vector)::halfvec(64) "
                                 "LIMIT 5"),
                            {"q": new.encode_texts([QUERY])[0]}).scalars().all()
        assert "assets_embedding_hnsw" in "\n".join(plan)
    assert status(settings)["reembed"] is None

    # Workers follow the database's model: a new pending asset gets a 64-d vector.
    noise(tmp_path / "more" / "m.png", seed=123, size=(32, 32))
    assert run_cli("ingest", str(tmp_path / "more"), "--no-embed").exit_code == 0
    assert run_cli("worker", "--once").exit_code == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT embedding_model, vector_dims(embedding) FROM assets "
                            "WHERE uri LIKE %s", ("%/more/m.png",)).fetchone() == (new.name, 64)


def test_same_model_subset_reembeds_in_place(initialised, database_url, tmp_path, encoder):
    for i in range(6):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i, size=(32, 32))
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    garbage = "[" + ",".join(["1"] + ["0"] * (encoder.dimension - 1)) + "]"
    with psycopg.connect(database_url, autocommit=True) as conn:
        # A preprocessing bug wrote wrong vectors; the product-tagged half is fixed first.
        conn.execute("UPDATE assets SET embedding = %s::vector", (garbage,))
        conn.execute("UPDATE assets SET tags = '{product}' WHERE id % 2 = 0")
    result = run_cli("reembed", "--tag", "product", "--batch-size", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["switch"], report["embedded"], report["total"]) == (False, 3, 3)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, uri, embedding::text = %s FROM assets ORDER BY id",
                            (garbage,)).fetchall()
        vectors = dict(conn.execute("SELECT id, embedding::text FROM assets"))
    for asset_id, uri, still_garbage in rows:
        assert still_garbage == (asset_id % 2 == 1)
        if asset_id % 2 == 0:
            want = encoder.encode_images([load_image(Path(uri), encoder.image_size)])[0]
            got = np.array(json.loads(vectors[asset_id]), dtype=np.float32)
            assert np.allclose(got, want, atol=1e-5)
    # Done: running it again finds nothing left for that job... a new job re-does the subset.
    assert json.loads(run_cli("status", "--json").stdout)["reembed"] is None


def test_refusals_and_abort(initialised, database_url, tmp_path, encoder, tiny_model_dir_64):
    for i in range(6):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i, size=(32, 32))
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    result = run_cli("reembed", "--model", str(tiny_model_dir_64), "--tag", "x")
    assert result.exit_code == 1 and "covers the whole catalogue" in result.output
    result = run_cli("reembed", "--model", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "cannot load the model" in result.output

    new = load_encoder(str(tiny_model_dir_64))
    stop = threading.Event()
    report = reembed(initialised, new, batch_size=2, stop=stop, progress=lambda n: stop.set())
    assert report.interrupted and report.embedded == 2
    # Another target while a job is unfinished: refused, nothing changes.
    result = run_cli("reembed")
    assert result.exit_code == 1 and "unfinished" in result.output
    human = run_cli("status")
    assert "re-embed job" in human.output and "2/6" in human.output
    result = run_cli("reembed", "--abort", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["dropped_shadow_columns"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'assets'::regclass "
                            "AND attname LIKE 'embedding_next%%' AND NOT attisdropped"
                            ).fetchone() == (0,)
        assert conn.execute("SELECT state FROM assetdb_reembed_jobs").fetchall() == [("aborted",)]
    result = run_cli("search", "a red circle", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 6


def test_file_changed_during_a_switch_gets_its_new_vector_from_the_new_content(
        initialised, database_url, tmp_path, encoder, tiny_model_dir_64):
    paths = [noise(tmp_path / "imgs" / f"n{i}.png", seed=i, size=(32, 32)) for i in range(4)]
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    new = load_encoder(str(tiny_model_dir_64))
    stop = threading.Event()
    report = reembed(initialised, new, batch_size=2, stop=stop, progress=lambda n: stop.set())
    assert report.interrupted and report.embedded == 2
    # The first file (its new vector already made) changes and is ingested again with the
    # old model: its new vector is stale now and must be made again before the switch.
    noise(paths[0], seed=1000, size=(32, 32))
    assert run_cli("ingest", str(paths[0])).exit_code == 0
    # A search session that lives across the switch: a query it ran often enough to be
    # server-side prepared must still run after the vector column changed type.
    vector_sql = text("SELECT embedding FROM assets WHERE uri = :u")
    with get_engine(initialised).connect() as session:
        for _ in range(8):
            assert len(session.execute(vector_sql, {"u": str(paths[1])}).scalar_one()) == 32
        session.commit()  # idle between searches: the switch does not wait for it
        result = run_cli("reembed", "--model", str(tiny_model_dir_64), "--batch-size", "2",
                         "--json")
        assert len(session.execute(vector_sql, {"u": str(paths[1])}).scalar_one()) == 64
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["switched"] and report["embedded"] == 3 and report["resumed_from"] == 2
    want = new.encode_images([load_image(paths[0], new.image_size)])[0]
    with psycopg.connect(database_url) as conn:
        got = conn.execute("SELECT embedding::text FROM assets WHERE uri = %s",
                           (str(paths[0]),)).fetchone()[0]
    assert np.allclose(np.array(json.loads(got), dtype=np.float32), want, atol=1e-5)
