"""`assetdb ingest`."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.cli.common import get_settings, json_option, load_model
from assetdb.cli.output import LazyProgress, print_json


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option("-m", "--metadata", "metadata_file", type=click.Path(path_type=Path),
              help="Sidecar metadata: .json, .jsonl or .csv.")
@click.option("--no-embed", is_flag=True,
              help="Register files as pending without loading the model; "
                   "`assetdb worker` embeds them later.")
@json_option
def ingest(paths: tuple[str, ...], recursive: bool, metadata_file: Path | None,
           no_embed: bool, as_json: bool) -> None:
    """Add images (JPEG, PNG, WebP, GIF, BMP, TIFF) from files, folders and globs.

    Idempotent: unchanged files (same sha256) cost no model work on a second run,
    changed files are re-embedded, identical content at two paths is embedded once.
    A file that cannot be used is stored as 'failed' with its error, and the rest go
    on; the exit status is 1 if anything failed.

    The sidecar's known keys (image_path, title, description, tags, captured_at)
    fill those fields; every other key goes to the metadata jsonb.

    \b
    Examples:
      assetdb ingest ~/Pictures --recursive
      assetdb ingest 'shoots/2024-*/*.jpg' --metadata captions.csv
    """
    from assetdb.ingest.service import ingest as run_ingest

    settings = get_settings()
    encoder = None if no_embed else load_model(settings)
    with LazyProgress("ingest") as bar:
        report = run_ingest(
            settings, paths, recursive=recursive, metadata_file=metadata_file,
            encoder=encoder, embed=not no_embed, progress=bar.update, on_total=bar.on_total,
        )
    if as_json:
        print_json(report.as_dict())
    else:
        for failure in report.failures:
            click.echo(f"failed: {failure['uri']}: {failure['error']}", err=True)
        if not (report.ingested or report.unchanged or report.failed):
            click.echo("No image files found (JPEG, PNG, WebP, GIF, BMP, TIFF); "
                       "use --recursive for sub-folders.", err=True)
        verb = "registered" if no_embed else "ingested"
        line = f"{report.ingested} {verb}, {report.unchanged} unchanged, {report.failed} failed"
        if report.deduplicated:
            line += f" ({report.deduplicated} copied from identical content)"
        if report.skipped:
            line += f"; {report.skipped} non-image files skipped"
        if report.metadata_unmatched:
            line += f"; {report.metadata_unmatched} metadata entries matched no file"
        click.echo(line)
    if report.failed:
        raise SystemExit(1)
