"""`assetdb init`, `assetdb db ...` and `assetdb stats`."""

from __future__ import annotations

import click

from assetdb.cli.common import get_settings, json_option, load_model
from assetdb.cli.output import kv_lines, print_json


@click.command()
@json_option
def init(as_json: bool) -> None:
    """Create the pgvector extension and run the schema migrations.

    The first run records the model (ASSETDB_MODEL) and its vector dimension in the
    database; later runs only apply new migrations, so running it again is harmless.
    It also creates the read-only role `assetdb sql` and analysts log in as (its password
    goes to $ASSETDB_HOME/reader.pgpass); where the connection may not create roles, it
    prints the statements an admin runs instead.

    \b
    Example:
      ASSETDB_MODEL=./models/my-clip assetdb init
    """
    from assetdb.catalog.catalogue import Catalog
    from assetdb.db.engine import libpq_url, redact

    settings = get_settings()
    done = Catalog(settings).init(lambda: load_model(settings))
    meta, reader = done.meta, done.reader
    info = {"database": redact(libpq_url(settings)), "model": meta["model"],
            "dimension": int(meta["dimension"]), "read_only_role": reader.role,
            "read_only_role_ready": reader.instructions is None,
            "admin_statements": reader.instructions,
            "text_models": Catalog(settings).text_models(meta)}
    if as_json:
        print_json(info)
        return
    click.echo(f"Database ready: {info['database']}")
    click.echo(f"Model {info['model']} ({info['dimension']}-d vectors)")
    for text in info["text_models"]:
        click.echo(f"Text model {text} (compatible: checked at init)")
    if reader.instructions is None:
        click.echo(f"Read-only role {reader.role} ready (assetdb sql; "
                   "psql \"$(assetdb db url --read-only)\")")
    else:
        click.echo(f"This login may not create (or change) the role {reader.role}: for "
                   f"`assetdb sql`, an admin runs\n\n"
                   f"{reader.instructions}\n\nthen set ASSETDB_READONLY_DATABASE_URL to that "
                   "login.", err=True)


@click.group()
def db() -> None:
    """The database: its URL, and the embedded PostgreSQL server.

    \b
    Examples:
      assetdb db status
      psql "$(assetdb db url --read-only)"
    """


@db.command("url")
@click.option("--read-only", "read_only", is_flag=True,
              help="The read-only role's URL (what analysts and `assetdb sql` use).")
@click.option("--show-password", is_flag=True,
              help="Print a password that ASSETDB_DATABASE_URL carries (hidden by default).")
def db_url(read_only: bool, show_password: bool) -> None:
    """Print the connection URL, for psql and other SQL clients.

    Starts the embedded server if ASSETDB_DATABASE_URL is unset and it is not running.
    The embedded server's URLs name a password file (passfile=) instead of a password.

    \b
    Examples:
      psql "$(assetdb db url --read-only)" -c 'SELECT count(*) FROM assets'
      psql "$(assetdb db url)"                  # the owner's login: can write
    """
    from assetdb.db.engine import libpq_url, redact
    from assetdb.db.roles import reader_url

    settings = get_settings()
    if read_only:
        click.echo(reader_url(settings))
        return
    url = libpq_url(settings)
    click.echo(url if show_password else redact(url))


@db.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL server (other commands start it on demand).

    \b
    Examples:
      assetdb db start
    """
    from assetdb.db import embedded

    settings = get_settings()
    if settings.database_url:
        raise click.ClickException("ASSETDB_DATABASE_URL is set: there is no embedded server")
    click.echo(embedded.start(settings.home))


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server.

    \b
    Examples:
      assetdb db stop
      assetdb demo --stop      # the demo's own server
    """
    from assetdb.db import embedded

    settings = get_settings()
    if settings.database_url:
        raise click.ClickException("ASSETDB_DATABASE_URL is set: there is no embedded server")
    click.echo("stopped" if embedded.stop(settings.home) else "not running")
    if embedded.running_url(settings.home / "demo"):
        click.echo("The demo's own server still runs: `assetdb demo --stop` stops it.")


@db.command("status")
def db_status() -> None:
    """Say whether the embedded server is running, and where its data lives.

    \b
    Examples:
      assetdb db status
    """
    from assetdb.db import embedded

    settings = get_settings()
    if settings.database_url:
        click.echo("external database (ASSETDB_DATABASE_URL)")
        return
    url = embedded.running_url(settings.home)
    kv_lines([("data", embedded.pgdata_dir(settings.home)),
              ("running", "yes" if url else "no"), ("url", url or "")])


@click.command()
@json_option
def stats(as_json: bool) -> None:
    """Counts of assets by status, kind and model; the database URL; the model.

    \b
    Example:
      assetdb stats --json | jq .by_status
    """
    from assetdb.catalog.catalogue import Catalog

    data = Catalog(get_settings()).stats()
    if as_json:
        print_json(data)
        return
    keys = ["database", "model", "dimension", "total"]
    if data["read_database"]:  # searches read from a replica: say which, and how far behind
        keys[1:1] = ["read_database", "read_replica_error" if data["read_replica_error"]
                     else "read_replica_lag_bytes"]
    kv_lines([(k, data[k]) for k in keys])
    for key in ("by_status", "by_kind", "by_model"):
        click.echo(f"\n{key.replace('_', ' ')}:")
        for name, count in data[key].items():
            click.echo(f"  {count:>8}  {name}")
