"""The search plan rules (assetdb.search.plan), on real rows in the embedded PostgreSQL:
broad and unfiltered searches count nothing, counting happens only near the threshold,
filters whose estimates are wrong still get exact results, and the SQL functions give
analysts the same k rows in the same order as the product path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from assetdb.db.engine import connect
from assetdb.search.filters import Filters
from assetdb.search.plan import Plan
from assetdb.search.query import nearest
from tests.sql_seed import db_model, unit_vectors

ROWS = 10_000
THRESHOLD = 1_000  # ASSETDB_EXACT_SEARCH_MAX_ROWS for these tests: both plans run
BASE = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalogue(server_url, tiny_model_dir, tmp_path_factory):  # noqa: ANN001, ANN201
    """10,000 clustered rows with tags, a jsonb brand and capture dates; ANALYZEd, and
    then a tag added to 10 rows that the statistics never saw. One database for the
    module (the tests only read it)."""
    from assetdb.db.engine import reset_engines
    from tests.conftest import _with_database, run_cli

    name = "plan_rules"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = _with_database(server_url, name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASSETDB_DATABASE_URL", database_url)
        mp.setenv("ASSETDB_MODEL", str(tiny_model_dir))
        mp.setenv("ASSETDB_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("ASSETDB_EXACT_SEARCH_MAX_ROWS", str(THRESHOLD))
        yield _fill(database_url, run_cli)
        reset_engines()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(database_url: str, run_cli):  # noqa: ANN001, ANN202
    assert run_cli("init").exit_code == 0
    from assetdb.config import Settings

    settings = Settings.from_env()
    model, dim = db_model(database_url)
    rng = np.random.default_rng(3)
    centres = unit_vectors(100, dim, seed=4)
    cluster = rng.integers(0, 100, ROWS)
    vectors = centres[cluster] + rng.standard_normal((ROWS, dim)).astype(np.float32) * 0.15
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tags: list[list[str]] = [[] for _ in range(ROWS)]
    for tag, share in (("half", 0.5), ("wide", 0.6), ("p8", 0.08), ("p1", 0.01),
                       ("q22", 0.22), ("p15", 0.15), ("fading", 0.2)):
        for r in rng.permutation(ROWS)[: int(ROWS * share)]:
            tags[r].append(tag)
    # "d10": 10% of rows, 80% of them captured in 2024 (correlated with the date).
    days = rng.integers(0, 6 * 365, ROWS)
    y2024 = ((datetime(2024, 1, 1, tzinfo=UTC) - BASE).days,
             (datetime(2025, 1, 1, tzinfo=UTC) - BASE).days)
    in_year = np.flatnonzero((days >= y2024[0]) & (days < y2024[1]))
    out_year = np.setdiff1d(np.arange(ROWS), in_year)
    for r in np.concatenate([rng.choice(in_year, 800, False), rng.choice(out_year, 200, False)]):
        tags[r].append("d10")
    brand = np.where(rng.random(ROWS) < 0.05, "acme", "zeta")
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("DROP INDEX assets_embedding_hnsw")
        with cur.copy("COPY assets (uri, kind, tags, metadata, captured_at, embedding, "
                      "embedding_model, status) FROM STDIN") as copy:
            for i in range(ROWS):
                copy.write_row((f"mem://{i}", "image", tags[i],
                                json.dumps({"brand": str(brand[i])}),
                                BASE + timedelta(days=int(days[i])),
                                "[" + ",".join(map(str, vectors[i])) + "]", model, "ready"))
        from assetdb.db.indexes import vector_index_sql

        cur.execute(vector_index_sql(dim))
        cur.execute("ANALYZE assets")
        late = rng.permutation(ROWS)[:10]
        cur.execute("UPDATE assets SET tags = tags || '{late}' WHERE uri = ANY(%s)",
                    ([f"mem://{i}" for i in late],))
        # A tag the statistics put on 60% of the rows, now left on a handful.
        cur.execute("UPDATE assets SET tags = array_remove(tags, 'wide') "
                    "WHERE 'wide' = ANY(tags) AND id % 1000 <> 0")
        # One the statistics put on 20% (in the band above the threshold), now on 2%.
        cur.execute("UPDATE assets SET tags = array_remove(tags, 'fading') "
                    "WHERE 'fading' = ANY(tags) AND id % 10 <> 0")
        ids = dict(cur.execute("SELECT uri, id FROM assets").fetchall())
    id_of_row = np.array([ids[f"mem://{i}"] for i in range(ROWS)])
    masks = {t: np.array([t in tags[i] for i in range(ROWS)])
             for t in ("half", "p8", "p1", "d10", "q22", "p15")}
    masks["late"] = np.isin(np.arange(ROWS), late)
    masks["acme"] = brand == "acme"
    masks["2024"] = (days >= y2024[0]) & (days < y2024[1])
    with psycopg.connect(database_url) as conn:
        for tag in ("wide", "fading"):
            left = [r[0] for r in conn.execute("SELECT id FROM assets WHERE %s = ANY(tags)",
                                               [tag])]
            masks[tag] = np.isin(id_of_row, left)
    queries = vectors[rng.permutation(ROWS)[:8]] + 0.05 * unit_vectors(8, dim, seed=9)
    return settings, model, vectors, id_of_row, masks, queries, database_url


def _search(settings, model, q, filters: Filters, k: int = 10) -> tuple[list[int], Plan]:  # noqa: ANN001
    plans: list[Plan] = []
    with connect(settings) as conn:
        hits = nearest(conn, q, k=k, filters=filters, model=model,
                       exact_max_rows=settings.exact_search_max_rows,
                       ef_search=settings.hnsw_ef_search, plan_out=plans)
    return [h.id for h in hits], plans[0]


def _truth(vectors, id_of_row, mask, q, k: int = 10) -> list[int]:  # noqa: ANN001
    scores = np.where(mask, vectors @ q, -np.inf) if mask is not None else vectors @ q
    return [int(id_of_row[i]) for i in np.argsort(-scores, kind="stable")[:k]]


def test_unfiltered_and_broad_searches_count_nothing(catalogue):
    settings, model, vectors, id_of_row, masks, queries, database_url = catalogue
    got, plan = _search(settings, model, queries[0], Filters())
    assert plan.name == "index" and plan.estimated_rows is None and plan.counted is None
    assert len(got) == 10
    got, plan = _search(settings, model, queries[0], Filters(tags_all=["half"]))
    assert plan.name == "index" and plan.counted is None
    assert plan.estimated_rows > THRESHOLD * 4
    assert len(set(got) & set(_truth(vectors, id_of_row, masks["half"], queries[0]))) >= 9


def test_selective_filters_scan_exactly_without_counting(catalogue):
    settings, model, vectors, id_of_row, masks, queries, database_url = catalogue
    for q in queries[:3]:
        got, plan = _search(settings, model, q, Filters(tags_all=["p1"]))  # 100 rows
        assert plan.name == "exact" and plan.counted is None
        assert got == _truth(vectors, id_of_row, masks["p1"], q)


def test_a_filter_near_the_threshold_is_counted(catalogue):
    settings, model, vectors, id_of_row, masks, queries, database_url = catalogue
    got, plan = _search(settings, model, queries[1], Filters(tags_all=["p8"]))  # 800 rows
    assert plan.counted == 800 and plan.name == "exact"
    assert got == _truth(vectors, id_of_row, masks["p8"], queries[1])


def test_near_the_threshold_a_sample_or_the_exact_scan_decides(catalogue):
    """Estimates above the threshold but within MARGIN of it: a sample of pages that
    shows at least SAMPLE_MARGIN x the threshold sends the search to the index without a
    count; otherwise the exact plan scans at most
    threshold + 1 rows, answering if no more matched, handing over to the index if
    more did."""
    settings, model, vectors, id_of_row, masks, queries, database_url = catalogue
    q = queries[2]
    got, plan = _search(settings, model, q, Filters(tags_all=["q22"]))  # 2,200 rows
    assert THRESHOLD < plan.estimated_rows < THRESHOLD * 4, plan
    assert plan.sampled >= THRESHOLD * 2 and plan.counted is None, plan
    assert plan.name == "index" and not plan.fallback
    assert len(set(got) & set(_truth(vectors, id_of_row, masks["q22"], q))) >= 9

    got, plan = _search(settings, model, q, Filters(tags_all=["p15"]))  # 1,500 rows
    assert THRESHOLD < plan.estimated_rows < THRESHOLD * 4, plan
    assert plan.sampled < THRESHOLD * 2 and plan.counted == THRESHOLD + 1
    assert plan.name == "index" and plan.max_scan_tuples > 0
    assert len(set(got) & set(_truth(vectors, id_of_row, masks["p15"], q))) >= 9

    left = int(masks["fading"].sum())  # the statistics say 2,000; about 200 are left
    assert 0 < left < THRESHOLD
    got, plan = _search(settings, model, q, Filters(tags_all=["fading"]))
    assert THRESHOLD < plan.estimated_rows < THRESHOLD * 4, plan
    assert plan.sampled < THRESHOLD * 2, plan
    assert plan.counted == left and plan.name == "exact"
    assert got == _truth(vectors, id_of_row, masks["fading"], q)


@pytest.mark.parametrize("case", ["late", "acme", "d10+2024", "wide"])
def test_wrong_estimates_cost_no_recall(catalogue, case):
    """late: a tag on 0.1% that the statistics never saw; acme: a jsonb key=value;
    d10+2024: a tag correlated with a date range (the planner multiplies them);
    wide: a tag the statistics put on 60% of the rows, now on a handful (an
    overestimate: the walk comes back short and the exact plan answers)."""
    settings, model, vectors, id_of_row, masks, queries, database_url = catalogue
    filters, mask = {
        "late": (Filters(tags_all=["late"]), masks["late"]),
        "acme": (Filters(metadata={"brand": "acme"}), masks["acme"]),
        "d10+2024": (Filters(tags_all=["d10"], captured_after=datetime(2024, 1, 1, tzinfo=UTC),
                             captured_before=datetime(2024, 12, 31, 23, 59, tzinfo=UTC)),
                     masks["d10"] & masks["2024"]),
        "wide": (Filters(tags_all=["wide"]), masks["wide"]),
    }[case]
    expected_rows = min(10, int(mask.sum()))
    for q in queries[:4]:
        got, plan = _search(settings, model, q, filters)
        truth = _truth(vectors, id_of_row, mask, q, expected_rows)
        assert len(got) == expected_rows, (case, plan)
        assert len(set(got) & set(truth)) >= expected_rows - (0 if plan.exact else 1), \
            (case, plan)
    if case == "wide":
        assert plan.fallback and plan.estimated_rows > THRESHOLD * 4


def test_the_sql_functions_follow_the_same_plan_rules(catalogue):
    settings, model, vectors, id_of_row, masks, queries, database_url = catalogue
    cases = [
        (Filters(), {}),
        (Filters(tags_all=["half"]), {"tags": ["half"]}),
        (Filters(tags_all=["p8"]), {"tags": ["p8"]}),
        (Filters(tags_all=["p1"]), {"tags": ["p1"]}),
        (Filters(tags_all=["q22"]), {"tags": ["q22"]}),
        (Filters(tags_all=["p15"]), {"tags": ["p15"]}),
        (Filters(tags_all=["fading"]), {"tags": ["fading"]}),
        (Filters(metadata={"brand": "acme"}), {"meta": Jsonb({"brand": "acme"})}),
        (Filters(tags_all=["d10"], captured_after=datetime(2024, 1, 1, tzinfo=UTC)),
         {"tags": ["d10"], "captured_after": datetime(2024, 1, 1, tzinfo=UTC)}),
    ]
    plans = set()
    from tests.sql_seed import connect as connect_psycopg

    with connect_psycopg(database_url) as conn:
        for filters, args in cases:
            named = ", ".join(f"{name} => %({name})s" for name in args)
            sql = ("SELECT asset_id, similarity FROM assetdb_nearest(%(q)s, 10"
                   + (", " + named if named else "") + ")")
            for q in queries[:3]:
                ours, plan = _search(settings, model, q, filters)
                plans.add(plan.name)
                theirs = conn.execute(sql, {"q": q, **args}).fetchall()
                assert [r[0] for r in theirs] == ours, (filters, plan)
            # and assetdb_similar leaves the asset out, under the same filters
            first = ours[0]
            near = conn.execute("SELECT asset_id FROM assetdb_similar(%(i)s, 5"
                                + (", " + named if named else "") + ")",
                                {"i": first, **args}).fetchall()
            assert first not in [r[0] for r in near] and len(near) == 5
    assert plans == {"exact", "index"}


def test_the_read_only_role_runs_the_filtered_functions(catalogue):
    settings, model, vectors, id_of_row, masks, queries, database_url = catalogue
    from assetdb.sqlsurface.readonly import run_readonly

    result = run_readonly(settings, f"SELECT count(*) FROM assetdb_similar({int(id_of_row[0])}, "
                          "5, tags => ARRAY['p1'])")
    assert result.rows == [(5,)]


def test_vectors_are_stored_in_the_row(catalogue):
    """STORAGE MAIN (migration 0006): a 512-d vector (2 KB) stays in its heap row instead
    of moving to TOAST, so the exact plan reads no second relation per row. (The tiny
    model's vectors are too small to be moved either way; the column's flag decides.)"""
    database_url = catalogue[-1]
    with psycopg.connect(database_url) as conn:
        storage = conn.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = "
                               "'assets'::regclass AND attname = 'embedding'").fetchone()[0]
    assert storage == "m"
