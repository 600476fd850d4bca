"""Migrations and the facts the database records about itself (model, dimension)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from assetdb.config import Settings
from assetdb.db.indexes import (
    DEFAULT_EF_SEARCH,
    EF_SEARCH_MAX,
    EF_SEARCH_META_KEY,
    EXACT_MAX_ROWS_META_KEY,
    SEARCH_FUNCTIONS,
)
from assetdb.errors import DatabaseError, ModelError, ModelSwitched

# The migrations ship inside the package (a wheel install needs no checkout); the
# checkout's top-level `migrations` is a link here, for `alembic` run by hand.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
_MIGRATE_LOCK = 0x61737365  # any constant: serialises concurrent `assetdb init` runs


def alembic_config(connection: Connection | None = None, dim: int | None = None):  # noqa: ANN201
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").exists():  # pragma: no cover - a broken install
        raise DatabaseError(f"the schema migrations are missing from {MIGRATIONS_DIR}: "
                            "reinstall assetdb")
    cfg = Config()  # no alembic.ini at run time: it lives in the checkout only
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    if dim is not None:
        cfg.attributes["embedding_dim"] = dim
    return cfg


def upgrade(conn: Connection, model: str, dim: int,
            ef_search: int = DEFAULT_EF_SEARCH,
            exact_max_rows: int | None = None) -> dict[str, str]:
    """Create the extension, run migrations, record model and dimension (first run) and
    the search settings the SQL functions follow (every run). Idempotent."""
    from alembic import command

    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
    command.upgrade(alembic_config(conn, dim), "head")
    if not read_meta(conn):
        conn.execute(
            text("INSERT INTO assetdb_meta (key, value) VALUES ('model', :m), ('dimension', :d)"),
            {"m": model, "d": str(dim)},
        )
    record_ef_search(conn, ef_search)
    if exact_max_rows is not None:
        _record_meta(conn, EXACT_MAX_ROWS_META_KEY, str(int(exact_max_rows)))
    from assetdb.config import read_setting
    from assetdb.db.text_search import record_text_config

    record_text_config(conn, read_setting("ASSETDB_TEXT_SEARCH_CONFIG"))
    return read_meta(conn)


def _record_meta(conn: Connection, key: str, value: str) -> None:
    if read_meta(conn).get(key) != value:  # write only what changed
        conn.execute(text(
            "INSERT INTO assetdb_meta (key, value) VALUES (:k, :v) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ), {"k": key, "v": value})


def record_ef_search(conn: Connection, ef_search: int) -> int:
    """Store ASSETDB_HNSW_EF_SEARCH in assetdb_meta and give it to the SQL search
    functions, which analysts call without the application's settings.

    The functions carry it as their own `SET hnsw.ef_search` clause rather than reading
    the table at each call: setting a parameter inside a function (set_config) would make
    them parallel-unsafe, and every query that calls them would lose parallel plans. A
    migration that recreates them resets the clause; init runs this after migrating.

    Writes only what changed. A login that does not own the functions (another login
    migrated them) leaves them, and the recorded value, as they are. Returns the value
    the functions use."""
    value = min(max(int(ef_search), 1), EF_SEARCH_MAX)
    rows = conn.execute(text(
        "SELECT p.oid::regprocedure::text AS signature, "
        "pg_has_role(p.proowner, 'USAGE') AS owned, "
        "(SELECT split_part(c, '=', 2) FROM unnest(p.proconfig) c "
        " WHERE c LIKE 'hnsw.ef_search=%') AS current "
        "FROM pg_proc p WHERE p.oid = ANY(CAST(:s AS regprocedure[]))"
    ), {"s": list(SEARCH_FUNCTIONS)}).all()
    stale = [r for r in rows if r.current != str(value)]
    if any(not r.owned for r in stale):
        value = int(stale[0].current or DEFAULT_EF_SEARCH)
        stale = []
    for r in stale:  # signatures as pg_proc prints them; DDL takes no bind parameters
        conn.execute(text(f"ALTER FUNCTION {r.signature} SET hnsw.ef_search = {value}"))
    _record_meta(conn, EF_SEARCH_META_KEY, str(value))
    return value


TEXT_MODELS_META_KEY = "text_models"  # JSON list: text models checked against the model


def recorded_text_models(meta: dict[str, str]) -> list[str]:
    import json

    try:
        value = json.loads(meta.get(TEXT_MODELS_META_KEY) or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def record_text_model(conn: Connection, name: str) -> dict[str, str]:
    """Add a text model (checked compatible by the caller) to the catalogue's record."""
    import json

    known = recorded_text_models(read_meta(conn))
    if name not in known:
        _record_meta(conn, TEXT_MODELS_META_KEY, json.dumps([*known, name]))
    return read_meta(conn)


def is_initialised(conn: Connection) -> bool:
    return conn.execute(text("SELECT to_regclass('assetdb_meta') IS NOT NULL")).scalar_one()


def read_meta(conn: Connection) -> dict[str, str]:
    if not is_initialised(conn):
        return {}
    rows = conn.execute(text("SELECT key, value FROM assetdb_meta")).all()
    return {k: v for k, v in rows}


def require_meta(conn: Connection) -> dict[str, str]:
    meta = read_meta(conn)
    if not meta:
        raise DatabaseError("the database is not initialised: run `assetdb init` first")
    return meta


def check_model(meta: dict[str, str], model: str, dim: int, *, followed: bool = False) -> None:
    """Refuse a model whose vectors cannot be compared with the stored ones.

    followed: `model` was read from the database (ASSETDB_MODEL unset), so a difference
    means the database switched models since; advising a re-embed back to `model` would
    undo that switch."""
    db_model, db_dim = meta["model"], int(meta["dimension"])
    if followed and model != db_model:
        raise ModelSwitched(
            f"the database switched from the model {model!r} to {db_model!r} while this "
            f"command ran (a re-embed finished): run it again, and it will use {db_model!r}"
        )
    if dim != db_dim:
        raise ModelError(
            f"the configured model {model!r} makes {dim}-d vectors, but this database holds "
            f"{db_dim}-d vectors from {db_model!r}. Set ASSETDB_MODEL={db_model} to use it, or "
            f"move the catalogue to the new model with `assetdb reembed --model {model}`."
        )
    if model != db_model:
        raise ModelError(
            f"the configured model {model!r} differs from the database's model {db_model!r}; "
            "vectors of two models cannot be compared. Set ASSETDB_MODEL to the database's "
            f"model, or run `assetdb reembed --model {model}`."
        )


def model_to_load(settings: Settings) -> str:
    """ASSETDB_MODEL when set; otherwise the model the database was initialised with
    (so that a catalogue made with a local model needs no variable to search it), and the
    default model for a database that has none yet."""
    if settings.model_is_explicit:
        return settings.model
    from assetdb.db.engine import connect

    with connect(settings) as conn:
        return read_meta(conn).get("model", settings.model)


@dataclass
class Initialised:
    meta: dict[str, str]
    reader: Any  # assetdb.db.roles.ReaderSetup


def initialise(settings: Settings, load_encoder: Callable[[], Any]) -> Initialised:
    """What `assetdb init` does: migrate, record the model (loaded through load_encoder
    only on the first run), the search breadth and the read-only role. A failed run stops
    an embedded server it started itself. Engines are reset here, once, so that new
    connections know the vector type the first run created."""
    from assetdb.db import embedded, roles
    from assetdb.db.engine import connect, reset_engines

    started = not settings.database_url and embedded.running_url(settings.home) is None
    try:
        with connect(settings) as conn:
            meta = read_meta(conn)
            if meta:
                model, dim = meta["model"], int(meta["dimension"])
            else:
                encoder = load_encoder()
                model, dim = encoder.name, encoder.dimension
            meta = upgrade(conn, model, dim, settings.hnsw_ef_search,
                           settings.exact_search_max_rows)
            reader = roles.ensure_reader(conn, settings)
        # A bulk load cut short leaves no vector index: build it (after the migration's
        # transaction committed; CREATE INDEX would wait for its locks).
        from assetdb.db.engine import autocommit_driver_connection
        from assetdb.db.indexes import ensure_vector_index

        with autocommit_driver_connection(settings) as raw:
            ensure_vector_index(raw, int(meta["dimension"]))
    except BaseException:
        if started:  # a failed init leaves no server of its own behind
            reset_engines()
            embedded.stop(settings.home)
        raise
    reset_engines()
    return Initialised(meta, reader)
