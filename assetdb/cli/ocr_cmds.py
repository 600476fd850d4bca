"""`assetdb ocr`: read the text in catalogued images (backfill, resumable)."""

from __future__ import annotations

import click

from assetdb.cli.common import (
    FilteredCommand,
    catalogue_meta,
    filter_options,
    filters_from,
    get_settings,
    json_option,
)
from assetdb.cli.output import print_json, progress_bar


@click.command(cls=FilteredCommand)
@filter_options
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Read at most this many images in this run.")
@json_option
def ocr(limit: int | None, as_json: bool, **kwargs: object) -> None:
    """Read the text in catalogued images (OCR) so that keyword search finds it.

    Reads every image (that passes the filters) whose current content has no OCR
    result yet, with rapidocr's PP-OCR models (inside the `ocr` extra; nothing is
    downloaded). Results are saved every few images: stop it at any time, and the same
    command goes on where it stopped. An image that fails is recorded with its error
    and not tried again until its file changes; re-embedding never redoes OCR. New
    ingests read text themselves with `ingest --ocr` or ASSETDB_OCR=1.

    \b
    Examples:
      assetdb ocr
      assetdb ocr --tag scans --limit 500 --json
    """
    from assetdb.db.engine import connect
    from assetdb.ocr import service
    from assetdb.ocr.engine import OcrUnavailable

    settings = get_settings()
    filters = filters_from(kwargs)
    catalogue_meta(settings)  # a database never initialised is answered at once
    with connect(settings) as conn:
        todo = service.count_pending(conn, filters)
    if limit is not None:
        todo = min(todo, limit)
    if todo == 0:
        report = service.OcrReport()
    else:
        try:
            engine = service.shared_engine()
        except OcrUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        bar = progress_bar(todo, "ocr", "image")
        try:
            report = service.backfill(settings, engine, filters, bar.update, limit=limit)
        finally:
            bar.close()
    if as_json:
        print_json({**report.as_dict(), "pending_before": todo})
        return
    for failure in report.failures:
        click.echo(f"failed: {failure['uri']}: {failure['error']}", err=True)
    rate = f", {report.done / report.seconds:.2f} images/s" if report.seconds else ""
    click.echo(f"OCR: {report.done} images read ({report.with_text} with text, "
               f"{report.lines} lines), {report.failed} failed{rate}")
