"""The SQL of near-duplicates: storing hashes, the vector-neighbour scan, candidate pairs
confirmed by hash distance (or by cosine, for --semantic), and what ingest finds.

Candidates come from two places, so that a weak vector model loses no true duplicate:
each asset's k nearest vector neighbours (the HNSW index, one LATERAL query per chunk of
assets, kept in duplicate_neighbours between runs), and pairs whose pHashes share a whole
16-bit band (indexed in asset_hashes). A hash row counts only while its sha256 is the
asset's: a file replaced since is hashed again."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text

from assetdb.duplicates.hashing import ImageHashes

SCOPE = "duplicate_scope"  # a temporary table of the asset ids a run looks at
# pHash bits + dHash bits that differ between the hash rows x and y (0..128).
DISTANCE = ("(bit_count(CAST({x}.phash # {y}.phash AS bit(64))) + "
            "bit_count(CAST({x}.dhash # {y}.dhash AS bit(64))))::integer")

_STORE_HASHES = text(
    """
    INSERT INTO asset_hashes AS h (asset_id, sha256, phash, dhash)
    SELECT a.id, a.sha256, v.phash, v.dhash
    FROM unnest(CAST(:uris AS text[]), CAST(:shas AS text[]), CAST(:phash AS bigint[]),
                CAST(:dhash AS bigint[])) AS v(uri, sha256, phash, dhash)
    JOIN assets a ON a.uri = v.uri AND a.sha256 = v.sha256
    ON CONFLICT (asset_id) DO UPDATE SET sha256 = EXCLUDED.sha256, phash = EXCLUDED.phash,
        dhash = EXCLUDED.dhash, hashed_at = now()
    RETURNING h.asset_id
    """
)


def store_hashes(conn: Connection, hashed: Iterable[tuple[str, str, ImageHashes]]) -> list[int]:
    """Store (uri, sha256, hashes); a row whose content changed meanwhile is left out.
    Returns the asset ids written."""
    rows = list(hashed)
    if not rows:
        return []
    return list(conn.execute(_STORE_HASHES, {
        "uris": [r[0] for r in rows], "shas": [r[1] for r in rows],
        "phash": [r[2].phash for r in rows], "dhash": [r[2].dhash for r in rows],
    }).scalars())


def make_scope(conn: Connection, select_ids: Any) -> int:  # noqa: ANN401 - a Select of ids
    """Fill the temporary scope table (dropped at commit) from a SELECT of asset ids."""
    conn.execute(text(f"CREATE TEMPORARY TABLE {SCOPE} (id bigint PRIMARY KEY) "
                      "ON COMMIT DROP"))
    from sqlalchemy import column, insert, table

    scope = table(SCOPE, column("id"))
    conn.execute(insert(scope).from_select(["id"], select_ids))
    conn.execute(text(f"ANALYZE {SCOPE}"))
    return conn.execute(text(f"SELECT count(*) FROM {SCOPE}")).scalar_one()


def unhashed(conn: Connection, limit: int | None = None) -> list[tuple[int, str, str, int]]:
    """(id, uri, sha256, bytes) of assets in scope without a hash of their content."""
    rows = conn.execute(text(
        f"""
        SELECT a.id, a.uri, a.sha256, a.bytes FROM {SCOPE} s JOIN assets a ON a.id = s.id
        LEFT JOIN asset_hashes h ON h.asset_id = a.id AND h.sha256 = a.sha256
        WHERE h.asset_id IS NULL ORDER BY a.id LIMIT :limit
        """), {"limit": limit}).all()
    return [tuple(r) for r in rows]


# --- the vector-neighbour scan, kept between runs -------------------------------------

def to_scan(conn: Connection) -> list[int]:
    """Assets in scope whose neighbours are not stored for their current vector."""
    return list(conn.execute(text(
        f"""
        SELECT a.id FROM {SCOPE} s JOIN assets a ON a.id = s.id
        LEFT JOIN duplicate_scanned d ON d.asset_id = a.id
        WHERE d.asset_id IS NULL OR d.embedded_at IS DISTINCT FROM a.embedded_at
        ORDER BY a.id
        """)).scalars())


def _neighbours(conn: Connection) -> str:
    """Each asset's k nearest by the vector index, whose expression (migration 0006) is
    `embedding::halfvec(D)`; the dimension is an int from assetdb_meta."""
    dim = int(conn.execute(text("SELECT value FROM assetdb_meta WHERE key = 'dimension'")
                           ).scalar_one())
    return f"""
    SELECT q.id AS query, n.id AS other, 1 - n.distance AS cosine
    FROM assets q
    CROSS JOIN LATERAL (
        SELECT o.id, o.embedding <=> q.embedding AS distance
        FROM assets o
        WHERE o.status = 'ready' AND o.embedding_model = :model AND o.id <> q.id
        ORDER BY o.embedding::halfvec({dim}) <=> q.embedding::halfvec({dim})
        LIMIT :k
    ) n
    WHERE q.id = ANY(:ids) AND q.embedding IS NOT NULL
"""


def _search_breadth(conn: Connection, k: int) -> None:
    """For this transaction: walk the HNSW index k-wide. In a LATERAL join the planner
    costs a sequential scan and a sort per asset below the index walk on tables up to
    ~10^5 rows (measured: 23 ms an asset at 10,000 rows, against 6 ms through the index,
    and growing with the table), so plain scans and sorts are ruled out here."""
    conn.execute(text("SELECT set_config('hnsw.ef_search', :v, true), "
                      "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                      "set_config('enable_seqscan', 'off', true), "
                      "set_config('enable_sort', 'off', true)"),
                 {"v": str(min(1000, max(40, 2 * k)))})


def scan_neighbours(conn: Connection, ids: Sequence[int], k: int, model: str) -> int:
    """Find and keep the k nearest vector neighbours of each asset (one statement for the
    chunk); pairs found for an older vector of these assets are replaced. Returns pairs."""
    _search_breadth(conn, k)
    conn.execute(text("DELETE FROM duplicate_neighbours WHERE low = ANY(:ids) "
                      "OR high = ANY(:ids)"), {"ids": list(ids)})
    found = conn.execute(text(
        f"""
        WITH n AS ({_neighbours(conn)})
        INSERT INTO duplicate_neighbours (low, high, cosine)
        SELECT least(query, other), greatest(query, other), max(cosine) FROM n
        GROUP BY 1, 2
        ON CONFLICT (low, high) DO UPDATE SET cosine = EXCLUDED.cosine
        """), {"ids": list(ids), "k": k, "model": model}).rowcount
    conn.execute(text(
        """
        INSERT INTO duplicate_scanned AS d (asset_id, embedded_at)
        SELECT id, embedded_at FROM assets WHERE id = ANY(:ids)
        ON CONFLICT (asset_id) DO UPDATE SET embedded_at = EXCLUDED.embedded_at,
            scanned_at = now()
        """), {"ids": list(ids)})
    return found


def forget_scan(conn: Connection) -> None:
    """Drop every stored neighbour (the breadth k changed)."""
    conn.execute(text("TRUNCATE duplicate_neighbours, duplicate_scanned"))


# --- pairs ------------------------------------------------------------------------------

_SCOPED_HASHES = f"""
    SELECT h.asset_id, h.phash, h.dhash, h.band0, h.band1, h.band2, h.band3
    FROM {SCOPE} s JOIN assets a ON a.id = s.id
    JOIN asset_hashes h ON h.asset_id = a.id AND h.sha256 = a.sha256
"""


def hash_pairs(conn: Connection, max_bits: int, bands: bool = True
               ) -> list[tuple[int, int, int]]:
    """(low, high, distance) of assets in scope whose hashes lie within max_bits,
    among the stored vector neighbours and (bands=True) the pairs sharing a band."""
    # The scope's current hashes go to an analysed temporary table: as a CTE, the join on
    # (id, sha256) is estimated at one row, and the band self-joins become nested loops
    # (100 s at 10,000 assets, against a fraction of a second with hash joins).
    conn.execute(text(f"CREATE TEMPORARY TABLE scoped_hashes ON COMMIT DROP AS "
                      f"{_SCOPED_HASHES}"))
    conn.execute(text("ALTER TABLE scoped_hashes ADD PRIMARY KEY (asset_id)"))
    conn.execute(text("ANALYZE scoped_hashes"))
    band_joins = " UNION ".join(
        f"SELECT x.asset_id, y.asset_id FROM scoped_hashes x JOIN scoped_hashes y "
        f"ON y.band{b} = x.band{b} AND x.asset_id < y.asset_id" for b in range(4))
    rows = conn.execute(text(
        f"""
        WITH cand (low, high) AS (
            SELECT n.low, n.high FROM duplicate_neighbours n
            {"UNION " + band_joins if bands else ""}
        )
        SELECT c.low, c.high, d.distance
        FROM cand c JOIN scoped_hashes x ON x.asset_id = c.low
        JOIN scoped_hashes y ON y.asset_id = c.high
        CROSS JOIN LATERAL (
            SELECT {DISTANCE.format(x="x", y="y")} AS distance) d
        WHERE d.distance <= :bits
        """), {"bits": max_bits}).all()
    conn.execute(text("DROP TABLE scoped_hashes"))
    return [(r.low, r.high, r.distance) for r in rows]


def semantic_pairs(conn: Connection, min_cosine: float) -> list[tuple[int, int, float]]:
    """(low, high, cosine) of stored vector neighbours in scope at least min_cosine."""
    rows = conn.execute(text(
        f"""
        SELECT n.low, n.high, n.cosine FROM duplicate_neighbours n
        JOIN {SCOPE} x ON x.id = n.low JOIN {SCOPE} y ON y.id = n.high
        WHERE n.cosine >= :c
        """), {"c": min_cosine}).all()
    return [(r.low, r.high, float(r.cosine)) for r in rows]


def members(conn: Connection, ids: Sequence[int]) -> dict[int, Any]:
    """What grouping and output need of each asset."""
    rows = conn.execute(text(
        """
        SELECT a.id, a.uri, a.title, a.width, a.height, a.bytes, a.created_at, a.hidden,
               h.phash, h.dhash, k.asset_id IS NOT NULL AS marked,
               dh.asset_id IS NOT NULL AS dup_hidden
        FROM assets a
        LEFT JOIN asset_hashes h ON h.asset_id = a.id AND h.sha256 = a.sha256
        LEFT JOIN duplicate_keepers k ON k.asset_id = a.id
        LEFT JOIN duplicate_hides dh ON dh.asset_id = a.id
        WHERE a.id = ANY(:ids)
        """), {"ids": list(ids)}).all()
    return {r.id: r for r in rows}


def cosines(conn: Connection, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], float]:
    if not pairs:
        return {}
    rows = conn.execute(text(
        """
        SELECT p.a, p.b, 1 - (x.embedding <=> y.embedding) AS cosine
        FROM unnest(CAST(:a AS bigint[]), CAST(:b AS bigint[])) AS p(a, b)
        JOIN assets x ON x.id = p.a JOIN assets y ON y.id = p.b
        """), {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]}).all()
    return {(r.a, r.b): float(r.cosine) for r in rows}


def save_groups(conn: Connection, rows: Sequence[tuple[int, int, float, int | None]],
                rule: str, threshold: float) -> None:
    """Replace the stored groups (assetdb_duplicates()) with this run's."""
    conn.execute(text("DELETE FROM duplicate_groups"))
    if rows:
        conn.execute(text(
            """
            INSERT INTO duplicate_groups (asset_id, keeper_id, similarity, distance, rule,
                                          threshold)
            SELECT * , CAST(:rule AS text), CAST(:t AS real)
            FROM unnest(CAST(:ids AS bigint[]), CAST(:keepers AS bigint[]),
                        CAST(:sims AS real[]), CAST(:ds AS smallint[]))
            """), {"ids": [r[0] for r in rows], "keepers": [r[1] for r in rows],
                   "sims": [r[2] for r in rows], "ds": [r[3] for r in rows],
                   "rule": rule, "t": threshold})


# --- actions ----------------------------------------------------------------------------

def add_tag(conn: Connection, ids: Sequence[int], tag: str) -> int:
    return conn.execute(text(
        "UPDATE assets SET tags = array_append(tags, CAST(:tag AS text)), updated_at = now() "
        "WHERE id = ANY(:ids) AND NOT (CAST(:tag AS text) = ANY(tags))"),
        {"ids": list(ids), "tag": tag}).rowcount


def remove_tag_in_scope(conn: Connection, tag: str) -> int:
    return conn.execute(text(
        f"UPDATE assets a SET tags = array_remove(a.tags, CAST(:tag AS text)), "
        f"updated_at = now() FROM {SCOPE} s "
        f"WHERE a.id = s.id AND CAST(:tag AS text) = ANY(a.tags)"), {"tag": tag}).rowcount


def hide(conn: Connection, members_of: Sequence[tuple[int, int]]) -> int:
    """Hide (asset, keeper) pairs: recorded in duplicate_hides, and assets.hidden set
    (only where it changes: each write of an assets row is an HNSW insertion)."""
    if not members_of:
        return 0
    ids = [m[0] for m in members_of]
    conn.execute(text(
        """
        INSERT INTO duplicate_hides AS d (asset_id, keeper_id)
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:keepers AS bigint[]))
        ON CONFLICT (asset_id) DO UPDATE SET keeper_id = EXCLUDED.keeper_id
        """), {"ids": ids, "keepers": [m[1] for m in members_of]})
    return conn.execute(text(
        "UPDATE assets SET hidden = true, updated_at = now() "
        "WHERE id = ANY(:ids) AND NOT hidden"), {"ids": ids}).rowcount


# Hidden stays true where a moderation 'hide' rule still says so.
_MODERATION_HIDES = """
    EXISTS (SELECT 1 FROM classifications c, jsonb_each(c.moderation) e
            WHERE c.asset_id = a.id
              AND e.value @> '{"flagged": true, "action": "hide"}')
"""


def unhide(conn: Connection, ids: Sequence[int] | None = None) -> int:
    """Undo --hide for `ids` (None: every asset in scope). Returns assets shown again."""
    where = "d.asset_id = ANY(:ids)" if ids is not None else \
        f"d.asset_id IN (SELECT id FROM {SCOPE})"
    gone = list(conn.execute(text(f"DELETE FROM duplicate_hides d WHERE {where} "
                                  "RETURNING d.asset_id"),
                             {"ids": list(ids or [])}).scalars())
    if not gone:
        return 0
    return conn.execute(text(
        f"UPDATE assets a SET hidden = false, updated_at = now() "
        f"WHERE a.id = ANY(:ids) AND a.hidden AND NOT {_MODERATION_HIDES}"),
        {"ids": gone}).rowcount


# --- ingest ------------------------------------------------------------------------------

def find_older_duplicates(conn: Connection, ids: Sequence[int], max_bits: int, k: int,
                          model: str) -> list[Any]:
    """For each of `ids` (hashed, embedded assets), its closest older near-duplicate
    (smaller id) by hash distance among its k vector neighbours and band matches;
    recorded in asset_duplicate_of. Returns (asset_id, uri, duplicate_of, other_uri,
    similarity) rows."""
    if not ids:
        return []
    _search_breadth(conn, k)
    conn.execute(text("DELETE FROM asset_duplicate_of WHERE asset_id = ANY(:ids)"),
                 {"ids": list(ids)})
    rows = conn.execute(text(
        f"""
        WITH q AS (
            SELECT h.asset_id, h.phash, h.dhash, h.band0, h.band1, h.band2, h.band3
            FROM asset_hashes h JOIN assets a ON a.id = h.asset_id AND a.sha256 = h.sha256
            WHERE h.asset_id = ANY(:ids)
        ),
        cand (query, other) AS (
            SELECT query, other FROM ({_neighbours(conn)}) n
            UNION
            SELECT q.asset_id, o.asset_id FROM q JOIN asset_hashes o
              ON o.band0 = q.band0 OR o.band1 = q.band1 OR o.band2 = q.band2
                 OR o.band3 = q.band3
        ),
        hit AS (
            SELECT DISTINCT ON (c.query) c.query, c.other, d.distance
            FROM cand c JOIN q ON q.asset_id = c.query
            JOIN assets oa ON oa.id = c.other AND oa.id < c.query
            JOIN asset_hashes o ON o.asset_id = oa.id AND o.sha256 = oa.sha256
            CROSS JOIN LATERAL (
                SELECT {DISTANCE.format(x="o", y="q")} AS distance) d
            WHERE d.distance <= :bits
            ORDER BY c.query, d.distance, c.other
        ),
        saved AS (
            INSERT INTO asset_duplicate_of AS s (asset_id, duplicate_of, similarity)
            SELECT query, other, 1 - distance / 128.0 FROM hit
            ON CONFLICT (asset_id) DO UPDATE SET duplicate_of = EXCLUDED.duplicate_of,
                similarity = EXCLUDED.similarity, found_at = now()
            RETURNING s.asset_id, s.duplicate_of, s.similarity
        )
        SELECT s.asset_id, a.uri, s.duplicate_of, b.uri AS other_uri, s.similarity
        FROM saved s JOIN assets a ON a.id = s.asset_id JOIN assets b ON b.id = s.duplicate_of
        ORDER BY s.asset_id
        """), {"ids": list(ids), "bits": max_bits, "k": k, "model": model}).all()
    return list(rows)
