"""The read-only login role for `assetdb sql` and analysts' SQL clients.

A READ ONLY transaction is no boundary for a superuser (`COPY ... TO PROGRAM`,
`pg_read_file`, a program that reconnects and commits). The boundary is a role with no
power beyond reading: LOGIN, SELECT on the product's tables, EXECUTE on its functions,
and nothing else: not a superuser, no REPLICATION, CREATEROLE, CREATEDB or BYPASSRLS, and
no membership in the predefined roles that reach server files, programs or other sessions.

`assetdb init` creates it when its connection may (the embedded server's superuser may),
with a generated password kept in `$ASSETDB_HOME/reader.pgpass` (0600, libpq's passfile
format); otherwise it prints the statements an admin runs. `assetdb sql` checks the role
it is given and refuses one with any of those powers.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text

from assetdb.config import Settings
from assetdb.errors import AssetdbError, DatabaseError

READER = "assetdb_reader"
# Predefined roles whose members reach the server's files, programs, other sessions or
# maintenance; pg_checkpoint and pg_maintain exist from PostgreSQL 15 and 17.
DANGEROUS_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
                   "pg_signal_backend", "pg_checkpoint", "pg_maintain")
_ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
# pg_roles column -> (the safe value, the clause that sets it). Only the clauses whose
# value is wrong are sent: naming SUPERUSER, REPLICATION or BYPASSRLS in ALTER ROLE at all
# needs a superuser, and managed services (RDS, Cloud SQL, ...) give none, only CREATEROLE.
_SAFE_ATTRIBUTES = {
    "rolsuper": (False, "NOSUPERUSER"), "rolcreatedb": (False, "NOCREATEDB"),
    "rolcreaterole": (False, "NOCREATEROLE"), "rolreplication": (False, "NOREPLICATION"),
    "rolbypassrls": (False, "NOBYPASSRLS"), "rolinherit": (True, "INHERIT"),
}


def reader_passfile(home: Path) -> Path:
    return home / "reader.pgpass"


def product_tables() -> list[str]:
    """The tables the migrations create (the SQLAlchemy models name each one)."""
    from assetdb.db import (  # noqa: F401
        classify_models,
        concept_models,
        duplicate_models,
        media_models,
        text_models,
        worker_models,
    )
    from assetdb.db.models import Base

    return sorted(Base.metadata.tables)


def _grant_statements(database: str) -> list[str]:
    from psycopg import sql

    def q(template: str, *idents: str) -> str:
        return sql.SQL(template).format(*map(sql.Identifier, idents)).as_string(None)

    stmts = [q("GRANT CONNECT ON DATABASE {} TO {}", database, READER),
             q("GRANT USAGE ON SCHEMA public TO {}", READER)]
    stmts += [q("GRANT SELECT ON TABLE {} TO {}", table, READER) for table in product_tables()]
    return stmts


def admin_instructions(database: str, *, exists: bool = False) -> str:
    """What an admin runs on an external server where init may not create (or, when it
    exists, change) the role."""
    verb = "ALTER" if exists else "CREATE"
    lines = [f"{verb} ROLE {READER} LOGIN PASSWORD '<choose one>' {_ATTRIBUTES};",
             f"ALTER ROLE {READER} SET default_transaction_read_only = on;"]
    lines += [s + ";" for s in _grant_statements(database)]
    return "\n".join(lines)


@dataclass
class ReaderSetup:
    role: str
    created: bool  # the role did not exist before
    password_set: bool  # a new password was written to reader.pgpass
    instructions: str | None  # set when init could not do it itself


def _stored_password(passfile: Path) -> str | None:
    if not passfile.exists():
        return None
    for line in passfile.read_text().splitlines():
        parts = line.split(":")
        if len(parts) == 5 and parts[3] == READER:
            return parts[4]
    return None


def _write_passfile(passfile: Path, password: str) -> None:
    passfile.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(f"*:*:*:{READER}:{password}\n")


def _password_works(settings: Settings, password: str) -> bool:
    import psycopg

    try:  # on the primary, where init just ran: a lagging replica may not have the role yet
        with psycopg.connect(reader_conninfo(settings, password=password, on_primary=True),
                             connect_timeout=5):
            return True
    except psycopg.Error:
        return False


def ensure_reader(conn: Connection, settings: Settings) -> ReaderSetup:
    """Create or refresh the read-only role and its grants. Idempotent."""
    from psycopg import errors, sql

    database = conn.execute(text("SELECT current_database()")).scalar_one()
    may = conn.execute(text(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    )).scalar_one()
    if not may:
        return ReaderSetup(READER, False, False, admin_instructions(database))
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                          {"r": READER}).first() is not None
    raw = conn.connection.driver_connection
    passfile = reader_passfile(settings.home)
    stored = _stored_password(passfile)
    password = None
    if not exists:
        password = secrets.token_urlsafe(32)
        raw.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(READER), sql.Literal(password)))
    try:
        with raw.transaction():  # a savepoint: a refusal leaves init's own work in place
            if exists and (stored is None or not _password_works(settings, stored)):
                # The role exists but this home has no working password for it: a new one.
                password = secrets.token_urlsafe(32)
                raw.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(READER), sql.Literal(password)))
            _remove_powers(conn, raw)
            raw.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(READER)))
    except errors.InsufficientPrivilege:
        # PostgreSQL 16+: a CREATEROLE login may alter only the roles it administers (those
        # it made); one another admin made is theirs to set up.
        return ReaderSetup(READER, False, False, admin_instructions(database, exists=True))
    for stmt in _grant_statements(database):
        raw.execute(stmt)
    if password is not None:
        _write_passfile(passfile, password)
    return ReaderSetup(READER, not exists, password is not None, None)


def _remove_powers(conn: Connection, raw) -> None:  # noqa: ANN001 - a psycopg connection
    """ALTER ROLE the reader to the safe attributes, naming only those that differ."""
    from psycopg import sql

    row = conn.execute(text(
        f"SELECT {', '.join(_SAFE_ATTRIBUTES)} FROM pg_roles WHERE rolname = :r"),
        {"r": READER}).one()
    clauses = [clause for (_, (safe, clause)), value
               in zip(_SAFE_ATTRIBUTES.items(), row, strict=True) if value != safe]
    if clauses:
        raw.execute(sql.SQL("ALTER ROLE {} " + " ".join(clauses)).format(
            sql.Identifier(READER)))


def reader_conninfo(settings: Settings, password: str | None = None, *,
                    on_primary: bool = False) -> str:
    """How `assetdb sql` connects: ASSETDB_READONLY_DATABASE_URL, or the catalogue's own
    server (its read replica when ASSETDB_READ_DATABASE_URL is set: the role and its
    password are replicated with everything else) as the read-only role with the
    password from reader.pgpass."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if settings.readonly_database_url:
        return settings.readonly_database_url
    from assetdb.db.engine import libpq_url, read_url

    params = conninfo_to_dict(libpq_url(settings) if on_primary else read_url(settings))
    params.pop("password", None)
    params.pop("passfile", None)
    params["user"] = READER
    if password is not None:
        params["password"] = password
    else:
        passfile = reader_passfile(settings.home)
        if not passfile.exists():
            raise DatabaseError(
                f"no password for the read-only role {READER} in {passfile}: run "
                "`assetdb init` (it creates the role), or set ASSETDB_READONLY_DATABASE_URL "
                "to a read-only login your admin made"
            )
        params["passfile"] = str(passfile)
    return make_conninfo("", **params)


def reader_url(settings: Settings) -> str:
    """reader_conninfo as a postgresql:// URL (for psql), with no secret in it."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    from assetdb.db.dsn import redact_dsn

    info = reader_conninfo(settings)
    if settings.readonly_database_url:
        return redact_dsn(info)
    params = {k: str(v) for k, v in conninfo_to_dict(info).items()}
    user = quote(params.pop("user"), safe="")
    host = params.pop("host", "")
    port = params.pop("port", "")
    dbname = quote(params.pop("dbname", ""), safe="")
    netloc = f"{user}@" + ("" if host.startswith("/") else quote(host, safe="")
                           + (f":{port}" if port else ""))
    if host.startswith("/"):
        params["host"] = host
        if port:
            params["port"] = port
    query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


def role_powers(cur) -> list[str]:  # noqa: ANN001 - a psycopg cursor
    """The powers beyond reading that the connected role has (empty: a reader)."""
    cur.execute(
        "SELECT rolsuper, rolreplication, rolcreaterole, rolcreatedb, rolbypassrls "
        "FROM pg_roles WHERE rolname = current_user"
    )
    row = cur.fetchone()
    names = ("SUPERUSER", "REPLICATION", "CREATEROLE", "CREATEDB", "BYPASSRLS")
    powers = [name for name, has in zip(names, row or (), strict=False) if has]
    for role in DANGEROUS_ROLES:
        cur.execute("SELECT to_regrole(%s) IS NOT NULL AND pg_has_role(current_user, %s, "
                    "'USAGE')", (role, role))
        if cur.fetchone()[0]:
            powers.append(f"member of {role}")
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND "
        "(pg_has_role(current_user, c.relowner, 'USAGE') OR "
        " has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')) ORDER BY 1"
    )
    writable = [r[0] for r in cur.fetchall()]
    if writable:
        powers.append("may write " + ", ".join(writable[:5]) + (" ..." if len(writable) > 5
                                                                  else ""))
    return powers


def refuse_powerful(cur) -> None:  # noqa: ANN001 - a psycopg cursor
    powers = role_powers(cur)
    if powers:
        cur.execute("SELECT current_user")
        user = cur.fetchone()[0]
        raise AssetdbError(
            f"assetdb sql refuses to run as {user!r}: the role has powers beyond reading "
            f"({'; '.join(powers)}). Run `assetdb init` to create the read-only role "
            f"{READER}, or set ASSETDB_READONLY_DATABASE_URL to a login with SELECT only."
        )
