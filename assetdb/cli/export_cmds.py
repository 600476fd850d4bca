"""`assetdb export`."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.cli.common import (
    FilteredCommand,
    filter_options,
    filters_from,
    get_settings,
    json_option,
)
from assetdb.cli.output import LazyProgress, kv_lines, print_json


@click.command(cls=FilteredCommand)
@click.option("-f", "--format", "fmt", type=click.Choice(["parquet", "csv", "npy"]),
              required=True, help="parquet (one file), csv (one file), or npy (the vector "
                                  "matrix, plus PATH with .csv for the other columns).")
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The file to write (replaced if it exists).")
@click.option("--force", is_flag=True,
              help="npy: replace an existing PATH with .csv (refused otherwise).")
@filter_options
@json_option
def export(fmt: str, out: Path, force: bool, as_json: bool, **kwargs: object) -> None:
    """Export searchable assets: ids, uris, metadata and embeddings, in id order.

    Exports what a search could return: embedded with the database's model, not hidden
    (unless --include-hidden), narrowed by the filters.

    \b
    Examples:
      assetdb export --format parquet --out assets.parquet
      assetdb export --format csv --tag product --out products.csv
      assetdb export --format npy --kind image --out vectors.npy   # + vectors.csv
      assetdb export --format npy --out vectors.npy --force        # replace vectors.csv
      duckdb -c "SELECT id, uri FROM 'assets.parquet' LIMIT 5"
    """
    from assetdb.catalog.catalogue import Catalog

    settings = get_settings()
    filters = filters_from(kwargs)
    with LazyProgress("export", unit="row") as bar:
        report = Catalog(settings).export(filters, fmt, out.expanduser(),
                                          on_total=bar.on_total, progress=bar.update,
                                          force=force)
    if as_json:
        print_json(report.as_dict())
    else:
        kv_lines([("rows", report.rows), ("dimension", report.dimension),
                  ("files", ", ".join(report.files))])
