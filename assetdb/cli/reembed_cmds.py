"""`assetdb reembed`."""

from __future__ import annotations

import click

from assetdb.cli.common import (
    FilteredCommand,
    catalogue_meta,
    filter_options,
    filters_from,
    get_settings,
    json_option,
    load_model,
)
from assetdb.cli.output import LazyProgress, print_json

EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM: run the same command again to resume
EXIT_ABORTED = 3  # `assetdb reembed --abort` from another process cancelled this run


@click.command(cls=FilteredCommand)
@click.option("--model", metavar="MODEL",
              help="The model to move to: a sentence-transformers CLIP name or a local "
                   "directory, of any dimension. Default: the database's own model "
                   "(re-embed in place, e.g. after a preprocessing fix).")
@filter_options
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Images per batch (default ASSETDB_BATCH_SIZE).")
@click.option("--abort", is_flag=True,
              help="Cancel an unfinished re-embed and drop its new vectors; searches are "
                   "not affected.")
@json_option
def reembed(model: str | None, batch_size: int | None, abort: bool, as_json: bool,
            **kwargs: object) -> None:
    """Re-embed the catalogue, with zero search downtime.

    With another model (any dimension), the new vectors are written beside the old ones,
    which searches keep using; when every ready asset has its new vector and the new
    HNSW index is built, one transaction switches the database to the new model. Then
    set ASSETDB_MODEL to the new model for searches; workers follow by themselves.
    Interrupted (Ctrl-C, a crash), it resumes where it stopped when run again.

    With the database's own model, filters pick a subset, re-embedded in place.

    Exit status: 0 done; 1 an error; 130 interrupted (run it again to resume);
    3 cancelled by `assetdb reembed --abort` from another process.

    \b
    Examples:
      assetdb reembed --model clip-ViT-L-14
      assetdb reembed --tag product          # same model, a subset
      assetdb reembed --abort
    """
    from assetdb.catalog.catalogue import Catalog
    from assetdb.cli.signals import stop_on_signals

    settings = get_settings()
    catalogue = Catalog(settings)
    if abort:
        out = catalogue.abort_reembed()
        if as_json:
            print_json(out)
        else:
            click.echo(f"aborted job {out['aborted_job']}" if out["aborted_job"]
                       else "no unfinished re-embed")
        return
    filters = filters_from(kwargs)
    meta = catalogue_meta(settings)  # before the model: a mistake is answered at once
    encoder = load_model(settings, model or meta["model"])
    with (stop_on_signals("stopping after the current batch; run again to resume") as stop,
          LazyProgress("re-embed", unit="asset") as bar):
        report = catalogue.reembed(
            encoder, filters=filters, batch_size=batch_size, stop=stop,
            progress=bar.update, on_total=bar.on_total)
    if report.aborted:
        click.echo("the re-embed was aborted by another process (`assetdb reembed --abort`); "
                   "the catalogue keeps its model and vectors", err=True)
    if as_json:
        print_json(report.as_dict())
    elif not report.aborted:
        _echo_report(report)
    if report.aborted:
        raise SystemExit(EXIT_ABORTED)
    if report.interrupted:
        raise SystemExit(EXIT_INTERRUPTED)


def _echo_report(report) -> None:  # noqa: ANN001 - a ReembedReport (imported lazily)
    line = f"{report.embedded} re-embedded, {report.failed} failed"
    if report.resumed_from:
        line += f" (resumed: {report.resumed_from} done before)"
    click.echo(line)
    if report.interrupted:
        click.echo("interrupted: run the same command again to resume")
    elif report.switched:
        click.echo(f"switched the database to {report.model} ({report.dimension}-d); "
                   f"set ASSETDB_MODEL={report.model} for searches")
