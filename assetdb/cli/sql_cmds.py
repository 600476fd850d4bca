"""`assetdb sql` and `assetdb embed-text`: plain SQL for analysts."""

from __future__ import annotations

import csv
import json
import math
import sys
from typing import Any

import click

from assetdb.cli.common import catalogue_meta, get_settings, load_model
from assetdb.cli.output import print_json, print_table


def _plain(value: Any) -> Any:
    """A cell for csv: containers as JSON, vectors as lists, the rest as text."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


# PostgreSQL's statement_timeout is an int of milliseconds: at most about 24 days.
MAX_TIMEOUT_S = 24 * 3600


class Seconds(click.ParamType):
    """A positive, finite number of seconds ("nan", "inf", 0 and negatives are refused)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT_S:
            self.fail(f"{value!r} is not a number of seconds between 0 (excluded) and "
                      f"{MAX_TIMEOUT_S}", param, ctx)
        return seconds


@click.command()
@click.argument("query")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True, help="Output format.")
@click.option("--timeout", type=Seconds(), default=30.0, show_default=True, metavar="SECONDS",
              help="Statement timeout.")
@click.option("--max-rows", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Print at most this many rows (0: all).")
def sql(query: str, fmt: str, timeout: float, max_rows: int) -> None:
    """Run one read-only SQL statement and print its result.

    It runs in a READ ONLY transaction with a statement timeout, which is then rolled
    back: writes fail and change nothing. Only one statement per call. The similarity
    functions and recipes are in docs/sql.md.

    \b
    Examples:
      assetdb sql "SELECT kind, count(*) FROM assets GROUP BY kind"
      assetdb sql "SELECT * FROM assetdb_concept_search('red-sneakers', 5)" --format csv
      assetdb sql "SELECT * FROM assetdb_similar(42, 10)" --format json
    """
    from assetdb.sqlsurface.readonly import run_readonly

    result = run_readonly(get_settings(), query, timeout_s=timeout, max_rows=max_rows)
    if fmt == "json":
        print_json(result.as_json_rows())
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_plain(v) for v in row] for row in result.rows)
    elif result.columns:
        print_table(result.as_dicts(), result.columns)
    else:
        click.echo("(statement returned no rows)")
    if result.truncated:
        click.echo(f"(stopped after {max_rows} rows; see --max-rows)", err=True)


@click.command("embed-text")
@click.argument("text")
@click.option("-f", "--format", "fmt", type=click.Choice(["sql", "json"]), default="sql",
              show_default=True,
              help="sql: a '[...]'::vector literal to paste into SQL; json: the vector with "
                   "its model.")
@click.option("-t", "--template", "templates", multiple=True, metavar="TEMPLATE",
              help="Prompt template with {} for the text. Repeatable (averaged).")
def embed_text(text: str, fmt: str, templates: tuple[str, ...]) -> None:
    """Print TEXT's query vector (the database's model), for ad-hoc SQL.

    \b
    Examples:
      assetdb embed-text "red sneakers"
      Q=$(assetdb embed-text "red sneakers")
      psql "$(assetdb db url)" -c "SELECT * FROM assetdb_nearest($Q, 5)"
      assetdb embed-text "a beach" --format json | jq '.vector | length'
    """
    from assetdb.errors import AssetdbError
    from assetdb.sqlsurface.concepts import checked_templates
    from assetdb.sqlsurface.vectors import embed_text as embed
    from assetdb.sqlsurface.vectors import sql_literal

    if not text.strip():
        raise AssetdbError("the text is empty")
    checked_templates(templates)
    settings = get_settings()
    encoder = load_model(settings, meta=catalogue_meta(settings))
    vector = embed(settings, encoder, text, templates)
    if fmt == "sql":
        click.echo(sql_literal(vector))
    else:
        print_json({"text": text, "templates": list(templates), "model": encoder.name,
                    "dimension": int(vector.shape[0]), "vector": vector})
