"""The language configuration of keyword search (migration 0007): `assetdb init` records
ASSETDB_TEXT_SEARCH_CONFIG in assetdb_meta, where the triggers and the SQL functions read
it, and re-derives the stemmed tsvectors when it changes."""

from __future__ import annotations

from sqlalchemy import Connection, text

from assetdb.errors import ConfigError

TEXT_CONFIG_META_KEY = "text_search_config"
DEFAULT_TEXT_CONFIG = "english"


def record_text_config(conn: Connection, name: str) -> str:
    """Store the configuration (a name PostgreSQL knows: english, german, simple, ...);
    when it changes, every asset's stemmed tsvector is rebuilt (a side table: `assets`
    is not rewritten). Returns the configuration in use."""
    if conn.execute(text("SELECT to_regclass('asset_text') IS NULL")).scalar_one():
        return name  # a schema before migration 0007
    known = conn.execute(text("SELECT cfgname FROM pg_ts_config WHERE cfgname = :n"),
                         {"n": name}).scalar()
    if known is None:
        choices = conn.execute(text("SELECT string_agg(cfgname, ', ' ORDER BY cfgname) "
                                    "FROM pg_ts_config")).scalar()
        raise ConfigError(f"ASSETDB_TEXT_SEARCH_CONFIG={name!r} is no text search "
                          f"configuration of this server; choose from {choices}")
    current = conn.execute(text("SELECT value FROM assetdb_meta WHERE key = :k"),
                           {"k": TEXT_CONFIG_META_KEY}).scalar()
    if current == name or (current is None and name == DEFAULT_TEXT_CONFIG):
        return name
    conn.execute(text("INSERT INTO assetdb_meta (key, value) VALUES (:k, :v) "
                      "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"),
                 {"k": TEXT_CONFIG_META_KEY, "v": name})
    conn.execute(text("UPDATE asset_text SET updated_at = now()"))  # the trigger re-derives
    return name
