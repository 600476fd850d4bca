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
@click.option("--follow-symlinks", is_flag=True,
              help="Follow symlinks that point outside the folders and files given "
                   "(by default they are skipped, with their reason).")
@click.option("--no-embed", is_flag=True,
              help="Register files as pending without loading the model; "
                   "`assetdb worker` embeds them later.")
@json_option
def ingest(paths: tuple[str, ...], recursive: bool, metadata_file: Path | None,
           follow_symlinks: bool, no_embed: bool, as_json: bool) -> None:
    """Add images (JPEG, PNG, WebP, GIF, BMP, TIFF) from files, folders and globs.

    Idempotent: unchanged files (same sha256) cost no model work on a second run,
    changed files are re-embedded, identical content at two paths is embedded once.
    An image file that cannot be used is stored as 'failed' with its error, and the
    rest go on; the exit status is 1 if anything failed. Other files (HTML, SVG, text,
    ...) are never registered: they are skipped, with their reason. So is a symlink
    that points outside the folder given (or, for a file argument, outside its own
    folder) unless --follow-symlinks; a symlink inside it is stored by its real path.

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
            settings, paths, recursive=recursive, follow_symlinks=follow_symlinks,
            metadata_file=metadata_file,
            encoder=encoder, embed=not no_embed, progress=bar.update, on_total=bar.on_total,
        )
    if as_json:
        print_json(report.as_dict())
    else:
        for failure in report.failures:
            click.echo(f"failed: {failure['uri']}: {failure['error']}", err=True)
        _echo_skipped(report.skipped_files)
        if not (report.ingested or report.unchanged or report.failed):
            click.echo("No image files found (JPEG, PNG, WebP, GIF, BMP, TIFF); "
                       "use --recursive for sub-folders.", err=True)
        verb = "registered" if no_embed else "ingested"
        line = f"{report.ingested} {verb}, {report.unchanged} unchanged, {report.failed} failed"
        if report.deduplicated:
            line += f" ({report.deduplicated} copied from identical content)"
        if report.done_elsewhere:
            line += f"; {report.done_elsewhere} embedded by another ingest or worker meanwhile"
        if report.skipped:
            line += f"; {_skipped_summary(report.skipped_files)}"
        if report.metadata_unmatched:
            line += f"; {report.metadata_unmatched} metadata entries matched no file"
        click.echo(line)
    if report.failed:
        raise SystemExit(1)


SHOW_SKIPPED = 20  # a folder of photos and their sidecar files would flood the terminal


def _echo_skipped(skipped: list[dict[str, str]]) -> None:
    for skip in skipped[:SHOW_SKIPPED]:
        click.echo(f"skipped: {skip['uri']}: {skip['reason']}", err=True)
    if len(skipped) > SHOW_SKIPPED:
        click.echo(f"skipped: ... {len(skipped) - SHOW_SKIPPED} more (--json lists them all)",
                   err=True)


def _skipped_summary(skipped: list[dict[str, str]]) -> str:
    """'2 non-image files skipped' and/or '1 symlinks out of the folder skipped'."""
    links = sum(s["reason"].startswith("symlink") for s in skipped)
    images = sum(s["reason"].startswith("not an image") for s in skipped)
    parts = [f"{images} non-image files skipped"] if images else []
    if links:
        parts.append(f"{links} symlinks out of the folder skipped")
    if rest := len(skipped) - links - images:
        parts.append(f"{rest} other files skipped")
    return "; ".join(parts)
