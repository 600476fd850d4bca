"""keyword search and OCR: search text in a side table, recognised lines, SQL functions

Search text lives in `asset_text`, one row per asset, kept in step with `assets` by
triggers: writing search text (a sidecar's new title, OCR lines) never rewrites an
`assets` row, and so never inserts into its HNSW index. The triggers fire only when a
searched field really changes (a re-ingest of the same sidecar writes nothing here).

Two tsvectors per asset, each with a GIN index:
- tsv_simple: the `simple` configuration over the text with punctuation turned into
  spaces, for codes, names and file names ("QX-4471" -> qx, 4471; "IMG_2041.jpg" ->
  img, 2041, jpg) and words of any script, unstemmed; queried with AND and prefixes;
- tsv_lang: the language configuration (assetdb_meta 'text_search_config', English by
  default; `assetdb init` records ASSETDB_TEXT_SEARCH_CONFIG), stemmed, stop words out;
  queried with OR, so that a long query still finds the rows that share some words.
Weights: A title and file name, B tags, C description and metadata values, D OCR text.

Revision ID: 0007
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0010"
branch_labels = None
depends_on = None

# RRF constant and how deep each side is read before fusing; assetdb.search.hybrid holds
# the same numbers (a test holds the two together).
RRF_K = 60
FUSION_DEPTH = 100
# Rows that match only some of a query's words are ranked at most this many (as the index
# gives them): a word common to the whole catalogue must not cost a rank of every row.
SOME_WORDS_CAP = 2000
# In the fusion, a keyword match with every word of the query counts this many times: it
# then outranks the best semantic match that has no words in common with the query.
EVERY_WORD_WEIGHT = 2

# The searchable rows, as every search function has them (migration 0002).
_SEARCHABLE = """
          a.status = 'ready' AND NOT a.hidden
          AND a.embedding_model = (SELECT value FROM assetdb_meta WHERE key = 'model')"""

_FUNCTIONS = [
    (
        "assetdb_text_config()",
        """
        CREATE FUNCTION assetdb_text_config() RETURNS regconfig
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT COALESCE((SELECT value FROM assetdb_meta
                               WHERE key = 'text_search_config'), 'english')::regconfig $$
        """,
        "The language configuration of keyword search (assetdb init records it).",
    ),
    (
        "assetdb_text_split(text)",
        """
        CREATE FUNCTION assetdb_text_split(t text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT regexp_replace(COALESCE(t, ''), '[[:punct:]]+', ' ', 'g') $$
        """,
        "Text with ASCII punctuation turned into spaces (what the simple side indexes).",
    ),
    (
        "assetdb_query_simple(text)",
        """
        CREATE FUNCTION assetdb_query_simple(query text) RETURNS tsquery
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            WITH words AS (
                SELECT w, length(to_tsvector(assetdb_text_config(), w)) = 0 AS stop
                FROM unnest(tsvector_to_array(
                    to_tsvector('simple', assetdb_text_split(query)))) AS w
            ), kept AS (
                SELECT w FROM words
                WHERE NOT stop OR NOT EXISTS (SELECT 1 FROM words WHERE NOT stop)
            )
            SELECT string_agg(
                '''' || replace(replace(w, '\\', '\\\\'), '''', '''''') || ''''
                || CASE WHEN length(w) >= 2 THEN ':*' ELSE '' END, ' & ' ORDER BY w
            )::tsquery
            FROM kept
        $$
        """,
        "The simple side's query: every word (stop words dropped unless only they are "
        "given), each also as a prefix; NULL for a query without words.",
    ),
    (
        "assetdb_query_lang(text)",
        """
        CREATE FUNCTION assetdb_query_lang(query text) RETURNS tsquery
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT string_agg(
                '''' || replace(replace(w, '\\', '\\\\'), '''', '''''') || '''', ' | '
                ORDER BY w)::tsquery
            FROM unnest(tsvector_to_array(to_tsvector(assetdb_text_config(), query))) AS w
        $$
        """,
        "The language side's query: any of the query's stemmed words; NULL without words.",
    ),
    (
        "assetdb_keyword_score(tsvector, tsvector, tsquery, tsquery)",
        """
        CREATE FUNCTION assetdb_keyword_score(s tsvector, l tsvector, qs tsquery, ql tsquery)
        RETURNS real
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT COALESCE(ts_rank(s, qs), 0) + COALESCE(ts_rank(l, ql), 0) $$
        """,
        "The keyword score of an asset_text row: its rank on both sides, summed.",
    ),
    (
        "assetdb_snippet(text, tsvector, tsquery, tsquery)",
        """
        CREATE FUNCTION assetdb_snippet(document text, l tsvector, qs tsquery, ql tsquery)
        RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT CASE
                WHEN ql IS NOT NULL AND l @@ ql THEN
                    ts_headline(assetdb_text_config(), document, ql,
                        'StartSel=<mark>, StopSel=</mark>, MaxWords=18, MinWords=6, '
                        'MaxFragments=2, FragmentDelimiter=" … "')
                WHEN qs IS NOT NULL THEN
                    ts_headline('simple', document, qs,
                        'StartSel=<mark>, StopSel=</mark>, MaxWords=18, MinWords=6, '
                        'MaxFragments=2, FragmentDelimiter=" … "')
                ELSE left(document, 120)
            END
        $$
        """,
        "The matching text of an asset with the query's words in <mark>...</mark>.",
    ),
    (
        "assetdb_keyword_ranked(text, integer)",
        f"""
        CREATE FUNCTION assetdb_keyword_ranked(query text, k integer DEFAULT 10)
        RETURNS TABLE (asset_id bigint, score double precision)
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            WITH q AS (SELECT assetdb_query_simple(query) AS qs,
                              assetdb_query_lang_all(query) AS qa,
                              assetdb_query_lang(query) AS ql),
            every_word AS (
                SELECT t.asset_id,
                       2 + assetdb_keyword_score(t.tsv_simple, t.tsv_lang, q.qs, q.ql) AS score
                FROM q, asset_text t JOIN assets a ON a.id = t.asset_id
                WHERE (t.tsv_simple @@ q.qs OR t.tsv_lang @@ q.qa) AND {_SEARCHABLE}
            ),
            some_words AS (
                SELECT t.asset_id,
                       assetdb_keyword_score(t.tsv_simple, t.tsv_lang, q.qs, q.ql) AS score
                FROM q, asset_text t JOIN assets a ON a.id = t.asset_id
                WHERE t.tsv_lang @@ q.ql AND q.ql IS DISTINCT FROM q.qa
                  AND NOT COALESCE(t.tsv_simple @@ q.qs OR t.tsv_lang @@ q.qa, false)
                  AND {_SEARCHABLE}
                LIMIT {SOME_WORDS_CAP}
            )
            SELECT r.asset_id, r.score FROM (
                SELECT * FROM every_word UNION ALL SELECT * FROM some_words) r
            ORDER BY r.score DESC, r.asset_id
            LIMIT k
        $$
        """,
        "The k searchable assets whose words best match the query (no snippets): those "
        "with every word first (score 2 and above), then those with some (below 2).",
    ),
    (
        "assetdb_text_search(text, integer)",
        """
        CREATE FUNCTION assetdb_text_search(query text, k integer DEFAULT 10)
        RETURNS TABLE (asset_id bigint, score double precision, snippet text)
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT r.asset_id, r.score,
                   assetdb_snippet(t.document, t.tsv_lang, assetdb_query_simple(query),
                                   assetdb_query_lang(query))
            FROM assetdb_keyword_ranked(query, k) r
            JOIN asset_text t ON t.asset_id = r.asset_id
            ORDER BY r.score DESC, r.asset_id
        $$
        """,
        "Keyword search: the k searchable assets whose title, file name, tags, "
        "description, metadata values or OCR text best match the query, with a snippet.",
    ),
    (
        "assetdb_hybrid_search(text, vector, integer)",
        f"""
        CREATE FUNCTION assetdb_hybrid_search(query text, query_vector vector,
                                              k integer DEFAULT 10)
        RETURNS TABLE (asset_id bigint, score double precision, similarity double precision,
                       semantic_rank integer, keyword_rank integer, snippet text)
        LANGUAGE sql VOLATILE PARALLEL UNSAFE  -- as assetdb_nearest (migration 0006)
        AS $$
            WITH sem AS (
                SELECT n.asset_id, n.similarity,
                       row_number() OVER (ORDER BY n.similarity DESC, n.asset_id)::int AS r
                FROM assetdb_nearest(query_vector, GREATEST(k, {FUSION_DEPTH})) n
            ), kw AS (
                SELECT w.asset_id, w.score >= 2 AS every_word,
                       row_number() OVER (ORDER BY w.score DESC, w.asset_id)::int AS r
                FROM assetdb_keyword_ranked(query, GREATEST(k, {FUSION_DEPTH})) w
            ), fused AS (
                SELECT COALESCE(sem.asset_id, kw.asset_id) AS asset_id,
                       COALESCE(1.0 / ({RRF_K} + sem.r), 0)
                       + COALESCE(CASE WHEN kw.every_word THEN {EVERY_WORD_WEIGHT}.0 ELSE 1.0 END
                                  / ({RRF_K} + kw.r), 0) AS score,
                       sem.similarity, sem.r AS semantic_rank, kw.r AS keyword_rank
                FROM sem FULL JOIN kw ON kw.asset_id = sem.asset_id
                ORDER BY score DESC, asset_id
                LIMIT k
            )
            SELECT f.asset_id, f.score::double precision,
                   COALESCE(f.similarity, 1 - (a.embedding <=> query_vector)),
                   f.semantic_rank, f.keyword_rank,
                   CASE WHEN f.keyword_rank IS NOT NULL THEN
                       assetdb_snippet(t.document, t.tsv_lang, assetdb_query_simple(query),
                                       assetdb_query_lang(query)) END
            FROM fused f JOIN assets a ON a.id = f.asset_id
            LEFT JOIN asset_text t ON t.asset_id = f.asset_id
            ORDER BY f.score DESC, f.asset_id
        $$
        """,
        "Hybrid search: the query's words and a query vector (assetdb embed-text), fused "
        f"by reciprocal rank (1/({RRF_K}+rank) on each side, each read {FUSION_DEPTH} deep; "
        f"a keyword match with every word counts {EVERY_WORD_WEIGHT}x).",
    ),
]

# The language side's query with every word (AND), beside assetdb_query_lang's any (OR).
_ANY = next(f for f in _FUNCTIONS if f[0] == "assetdb_query_lang(text)")
_FUNCTIONS.insert(_FUNCTIONS.index(_ANY) + 1, (
    "assetdb_query_lang_all(text)",
    _ANY[1].replace("assetdb_query_lang(query", "assetdb_query_lang_all(query")
           .replace("' | '", "' & '"),
    "The language side's query: every one of the query's stemmed words; NULL without words.",
))

# Search text of one asset from its row (NEW): what people wrote, and the file's name.
_TEXT_FROM_ASSET = """
    CREATE FUNCTION assetdb_asset_text_sync() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO asset_text AS t (asset_id, title, file_name, tags, description, meta)
        VALUES (NEW.id, COALESCE(NEW.title, ''),
                substring(NEW.uri FROM '([^/\\\\]*)$'),
                array_to_string(NEW.tags, ' '), COALESCE(NEW.description, ''),
                assetdb_metadata_text(NEW.metadata))
        ON CONFLICT (asset_id) DO UPDATE SET
            title = EXCLUDED.title, file_name = EXCLUDED.file_name, tags = EXCLUDED.tags,
            description = EXCLUDED.description, meta = EXCLUDED.meta, updated_at = now();
        RETURN NULL;
    END $$
"""

# The tsvectors and the snippet's document, from an asset_text row's fields.
_VECTORS = """
    CREATE FUNCTION assetdb_asset_text_vectors() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        cfg regconfig := assetdb_text_config();
    BEGIN
        NEW.tsv_lang :=
            setweight(to_tsvector(cfg, NEW.title || ' ' || NEW.file_name), 'A')
            || setweight(to_tsvector(cfg, NEW.tags), 'B')
            || setweight(to_tsvector(cfg, NEW.description || ' ' || NEW.meta), 'C')
            || setweight(to_tsvector(cfg, NEW.ocr), 'D');
        NEW.tsv_simple :=
            setweight(to_tsvector('simple',
                assetdb_text_split(NEW.title || ' ' || NEW.file_name)), 'A')
            || setweight(to_tsvector('simple', assetdb_text_split(NEW.tags)), 'B')
            || setweight(to_tsvector('simple',
                assetdb_text_split(NEW.description || ' ' || NEW.meta)), 'C')
            || setweight(to_tsvector('simple', assetdb_text_split(NEW.ocr)), 'D');
        NEW.document := concat_ws(' · ', NULLIF(NEW.title, ''), NULLIF(NEW.file_name, ''),
                                  NULLIF(NEW.tags, ''), NULLIF(NEW.description, ''),
                                  NULLIF(NEW.meta, ''),
                                  NULLIF(replace(NEW.ocr, E'\\n', ' / '), ''));
        RETURN NEW;
    END $$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION assetdb_metadata_text(m jsonb) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$
            SELECT COALESCE(string_agg(v #>> '{}', ' '), '')
            FROM jsonb_path_query(COALESCE(m, '{}'), 'strict $.**') AS v
            WHERE jsonb_typeof(v) IN ('string', 'number')
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE asset_text (
            asset_id    bigint PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
            title       text NOT NULL DEFAULT '',
            file_name   text NOT NULL DEFAULT '',
            tags        text NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            meta        text NOT NULL DEFAULT '',
            ocr         text NOT NULL DEFAULT '',
            document    text NOT NULL DEFAULT '',
            tsv_simple  tsvector NOT NULL DEFAULT ''::tsvector,
            tsv_lang    tsvector NOT NULL DEFAULT ''::tsvector,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("COMMENT ON TABLE asset_text IS 'Search text of each asset (triggers keep it "
               "in step with assets; OCR lines from asset_ocr_lines).'")
    op.execute("CREATE INDEX asset_text_simple_gin ON asset_text USING gin (tsv_simple)")
    op.execute("CREATE INDEX asset_text_lang_gin ON asset_text USING gin (tsv_lang)")
    op.execute(
        """
        CREATE TABLE asset_ocr (
            asset_id   bigint PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
            sha256     text,
            status     text NOT NULL CHECK (status IN ('done', 'failed')),
            error      text,
            model      text NOT NULL,
            lines      integer NOT NULL DEFAULT 0,
            seconds    real,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("COMMENT ON TABLE asset_ocr IS 'Whether OCR ran on an asset''s content "
               "(sha256), with which model, and its error if it failed.'")
    op.execute(
        """
        CREATE TABLE asset_ocr_lines (
            asset_id   bigint NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
            line_no    integer NOT NULL,
            text       text NOT NULL,
            box        real[] NOT NULL,
            confidence real NOT NULL,
            model      text NOT NULL,
            PRIMARY KEY (asset_id, line_no)
        )
        """
    )
    op.execute("COMMENT ON TABLE asset_ocr_lines IS 'Text recognised in an image: one row a "
               "line, box = x1,y1,..,x4,y4 in pixels of the stored file.'")
    for _signature, ddl, _comment in _FUNCTIONS:
        op.execute(ddl)
    for signature, _ddl, comment in _FUNCTIONS:
        quoted = comment.replace("'", "''")
        op.execute(f"COMMENT ON FUNCTION {signature} IS '{quoted}'")
    op.execute(_VECTORS)
    op.execute("CREATE TRIGGER asset_text_vectors BEFORE INSERT OR UPDATE ON asset_text "
               "FOR EACH ROW EXECUTE FUNCTION assetdb_asset_text_vectors()")
    op.execute(_TEXT_FROM_ASSET)
    op.execute("CREATE TRIGGER assets_text_insert AFTER INSERT ON assets "
               "FOR EACH ROW EXECUTE FUNCTION assetdb_asset_text_sync()")
    op.execute(
        "CREATE TRIGGER assets_text_update AFTER UPDATE OF uri, title, description, tags, "
        "metadata ON assets FOR EACH ROW WHEN ("
        "OLD.uri IS DISTINCT FROM NEW.uri OR OLD.title IS DISTINCT FROM NEW.title "
        "OR OLD.description IS DISTINCT FROM NEW.description "
        "OR OLD.tags IS DISTINCT FROM NEW.tags OR OLD.metadata IS DISTINCT FROM NEW.metadata"
        ") EXECUTE FUNCTION assetdb_asset_text_sync()"
    )
    # New content (a re-ingest of a changed file): the lines read from the old content
    # no longer describe it, and it needs OCR again.
    op.execute(
        """
        CREATE FUNCTION assetdb_ocr_stale() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM asset_ocr_lines WHERE asset_id = NEW.id;
            DELETE FROM asset_ocr WHERE asset_id = NEW.id;
            UPDATE asset_text SET ocr = '', updated_at = now()
            WHERE asset_id = NEW.id AND ocr <> '';
            RETURN NULL;
        END $$
        """
    )
    op.execute("CREATE TRIGGER assets_ocr_stale AFTER UPDATE OF sha256 ON assets "
               "FOR EACH ROW WHEN (OLD.sha256 IS DISTINCT FROM NEW.sha256) "
               "EXECUTE FUNCTION assetdb_ocr_stale()")
    # The catalogue so far (the insert trigger above computes the vectors).
    op.execute(
        """
        INSERT INTO asset_text (asset_id, title, file_name, tags, description, meta)
        SELECT id, COALESCE(title, ''), substring(uri FROM '([^/\\\\]*)$'),
               array_to_string(tags, ' '), COALESCE(description, ''),
               assetdb_metadata_text(metadata)
        FROM assets
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER assets_ocr_stale ON assets")
    op.execute("DROP FUNCTION assetdb_ocr_stale()")
    op.execute("DROP TRIGGER assets_text_update ON assets")
    op.execute("DROP TRIGGER assets_text_insert ON assets")
    op.execute("DROP FUNCTION assetdb_asset_text_sync()")
    for signature, _ddl, _comment in reversed(_FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute("DROP TABLE asset_ocr_lines")
    op.execute("DROP TABLE asset_ocr")
    op.execute("DROP TABLE asset_text")
    op.execute("DROP FUNCTION assetdb_asset_text_vectors()")
    op.execute("DROP FUNCTION assetdb_metadata_text(jsonb)")
