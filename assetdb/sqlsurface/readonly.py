"""Read-only SQL for analysts (`assetdb sql`).

The boundary is the login: the read-only role that `assetdb init` creates (or
ASSETDB_READONLY_DATABASE_URL), checked before each query to have no power beyond
reading (assetdb.db.roles). On top of it, the query runs on its own short-lived
connection (nothing it sets can leak into a pooled one), in a READ ONLY transaction
with a statement timeout, and is always rolled back. It is sent as a prepared
statement, so the server accepts exactly one statement:
'SELECT 1; COMMIT; DELETE ...' is refused instead of ending the read-only transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from assetdb.config import Settings
from assetdb.db.dsn import scrub
from assetdb.db.roles import reader_conninfo, refuse_powerful
from assetdb.db.vectors import register_list_vectors
from assetdb.errors import AssetdbError, DatabaseError


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows than max_rows existed

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def as_json_rows(self) -> list[dict[str, Any]]:
        """Rows for JSON: numeric (Decimal) values as JSON numbers, not strings."""
        return [{k: json_number(v) for k, v in row.items()} for row in self.as_dicts()]


def json_number(value: Any) -> Any:  # noqa: ANN401
    """A Decimal as an int when whole, else a float (17 significant digits); NaN and
    infinities, which JSON cannot write, as text. Anything else unchanged."""
    if not isinstance(value, Decimal):
        return value
    if not value.is_finite():
        return str(value)
    return int(value) if value == value.to_integral_value() else float(value)


def _connect(settings: Settings) -> psycopg.Connection:
    conninfo = reader_conninfo(settings)
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10, application_name="assetdb sql")
    except psycopg.OperationalError as exc:
        reason = scrub(_first_line(exc), conninfo, settings.database_url,
                       settings.read_database_url)
        raise DatabaseError(f"cannot connect as the read-only role: {reason}") from None
    register_list_vectors(conn)  # before `assetdb init`, vectors stay text
    return conn


def run_readonly(
    settings: Settings, sql: str, *, timeout_s: float = 30.0, max_rows: int = 10_000
) -> QueryResult:
    """Run one SQL statement read-only; at most max_rows rows (0: all)."""
    if not sql.strip():
        raise AssetdbError("the SQL text is empty")
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise AssetdbError("the timeout must be a positive number of seconds")
    with _connect(settings) as conn:
        with conn.cursor() as cur:
            refuse_powerful(cur)
        conn.rollback()
        try:
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute("SELECT set_config('statement_timeout', %s, true)",
                            (f"{max(1, round(timeout_s * 1000))}ms",))
                cur.execute(sql, prepare=True)
                if cur.description is None:
                    return QueryResult(columns=[], rows=[], truncated=False)
                columns = [c.name for c in cur.description]
                rows = cur.fetchall() if max_rows == 0 else cur.fetchmany(max_rows + 1)
        except (pg_errors.ReadOnlySqlTransaction, pg_errors.InsufficientPrivilege) as exc:
            raise AssetdbError(
                f"assetdb sql is read-only: {_first_line(exc)}; nothing was changed"
            ) from None
        except pg_errors.QueryCanceled:
            raise AssetdbError(
                f"the query ran past the statement timeout ({timeout_s:g} s; see --timeout)"
            ) from None
        except psycopg.Error as exc:
            raise AssetdbError(f"the query failed: {_first_line(exc)}") from None
        finally:
            conn.rollback()
    truncated = max_rows > 0 and len(rows) > max_rows
    rows = rows[:max_rows] if truncated else rows
    return QueryResult(columns=columns, rows=[tuple(r) for r in rows], truncated=truncated)


def _first_line(exc: psycopg.Error) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
