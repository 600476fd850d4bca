"""`assetdb ingest`."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.cli.common import catalogue_meta, get_settings, json_option, load_model
from assetdb.cli.output import LazyProgress, print_json


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option("-m", "--metadata", "metadata_file",
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Sidecar metadata: .json, .jsonl or .csv.")
@click.option("--follow-symlinks", is_flag=True,
              help="Follow symlinks that point outside the folders and files given "
                   "(by default they are skipped, with their reason).")
@click.option("--no-embed", is_flag=True,
              help="Register files as pending without loading the model; "
                   "`assetdb worker` embeds them later.")
@click.option("--rehash", is_flag=True,
              help="Read and hash every file, even those whose size, mtime, ctime and "
                   "inode are unchanged since they were last read (by default those are "
                   "trusted and not read). For a file system whose times cannot be trusted.")
@click.option("--ocr/--no-ocr", "ocr", default=None,
              help="Also read the text in the images (OCR) for keyword search; the "
                   "default is ASSETDB_OCR. Needs the `ocr` extra.")
@json_option
def ingest(paths: tuple[str, ...], recursive: bool, metadata_file: Path | None,
           follow_symlinks: bool, no_embed: bool, rehash: bool, ocr: bool | None,
           as_json: bool) -> None:
    """Add images (JPEG, PNG, WebP, GIF, BMP, TIFF) from files, folders and globs.

    Idempotent: unchanged files (same sha256) cost no model work on a second run,
    changed files are re-embedded, identical content at two paths is embedded once.
    A re-run over unchanged files writes nothing, and does not even read a file whose
    size, mtime, ctime and inode are those it had when it was last read (--rehash
    reads them all).
    An image file that cannot be used is stored as 'failed' with its error, and the
    rest go on; the exit status is 1 if anything failed. Other files (HTML, SVG, text,
    ...) are never registered: they are skipped, with their reason. So is a symlink
    that points outside the folder given (or, for a file argument, outside its own
    folder) unless --follow-symlinks; a symlink inside it is stored by its real path.
    Every path given or walked is counted: a walk skips hidden names (a leading dot)
    and, without --recursive, sub-folders; broken symlinks, FIFOs, a second path to
    the same file and names that are not UTF-8 are skipped too, each with its reason.

    The sidecar's known keys (image_path, title, description, tags, captured_at)
    fill those fields; every other key goes to the metadata jsonb.

    \b
    Examples:
      assetdb ingest ~/Pictures --recursive
      assetdb ingest 'shoots/2024-*/*.jpg' --metadata captions.csv
      assetdb ingest ~/Pictures --recursive --rehash
      assetdb ingest ~/Pictures --ocr
    """
    from assetdb.catalog.catalogue import Catalog

    settings = get_settings()
    _refuse_if_nothing_exists(paths, recursive)
    meta = catalogue_meta(settings)  # before the model: a mistake is answered at once
    if ocr is None:
        from assetdb.config import read_setting

        ocr = read_setting("ASSETDB_OCR")
    with LazyProgress("ingest") as bar, LazyProgress("ocr", "image") as ocr_bar:
        from assetdb.ocr.service import OcrProgress

        report = Catalog(settings).ingest(
            paths, recursive=recursive, follow_symlinks=follow_symlinks,
            metadata_file=metadata_file, load_encoder=lambda: load_model(settings, meta=meta),
            embed=not no_embed, rehash=rehash, progress=bar.update,
            on_total=bar.on_total, say=None if as_json else bar.note,
            ocr=ocr, ocr_progress=OcrProgress(ocr_bar.on_total, ocr_bar.update),
        )
    if report.ocr and report.ocr.get("error"):
        click.echo(f"Warning: OCR skipped, the images are catalogued without their text: "
                   f"{report.ocr['error']}", err=True)
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
        if report.not_read:
            line += (f"; {report.not_read} not read (unchanged since last read; "
                     "--rehash reads them)")
        if report.deduplicated:
            line += f" ({report.deduplicated} copied from identical content)"
        if report.done_elsewhere:
            line += f"; {report.done_elsewhere} embedded by another ingest or worker meanwhile"
        if report.skipped:
            line += f"; {_skipped_summary(report.skipped_files)}"
        if report.metadata_unmatched:
            line += f"; {report.metadata_unmatched} metadata entries matched no file"
        if report.index_built_after_load:
            line += f"; vector index built once after loading ({report.index_build_seconds} s)"
        if report.near_duplicates:
            line += (f"; {len(report.near_duplicates)} near-duplicates of older assets "
                     "(assetdb duplicates)")
        click.echo(line)
        _echo_near_duplicates(report.near_duplicates)
        if report.ocr and not report.ocr.get("error"):
            click.echo(f"OCR: {report.ocr['done']} images read ({report.ocr['with_text']} with "
                       f"text, {report.ocr['lines']} lines), {report.ocr['failed']} failed")
    if report.failed:
        raise SystemExit(1)


def _names_something(arg: str, recursive: bool) -> bool:
    import glob
    import os

    path = os.path.expanduser(arg)
    if os.path.lexists(path):
        return True
    pattern = os.path.abspath(path)
    return glob.has_magic(arg) and next(glob.iglob(pattern, recursive=recursive), None) is not None


def _refuse_if_nothing_exists(paths: tuple[str, ...], recursive: bool) -> None:
    """No argument names a file, folder or glob match: say so before the model loads.
    (When some do, the missing ones are reported as failed beside the rest.)"""
    from assetdb.errors import AssetdbError

    if not any(_names_something(arg, recursive) for arg in paths):
        raise AssetdbError("no such file or folder: " + ", ".join(paths))


SHOW_SKIPPED = 20  # a folder of photos and their sidecar files would flood the terminal


def _echo_near_duplicates(found: list[dict[str, object]]) -> None:
    for dup in found[:SHOW_SKIPPED]:
        click.echo(f"near-duplicate: {dup['uri']} (id {dup['id']}) looks like id "
                   f"{dup['duplicate_of']} {dup['duplicate_of_uri']} "
                   f"(similarity {float(dup['similarity']):.2f})", err=True)  # type: ignore[arg-type]
    if len(found) > SHOW_SKIPPED:
        click.echo(f"near-duplicate: ... {len(found) - SHOW_SKIPPED} more (--json lists them "
                   "all)", err=True)


def _echo_skipped(skipped: list[dict[str, str]]) -> None:
    for skip in skipped[:SHOW_SKIPPED]:
        click.echo(f"skipped: {skip['uri']}: {skip['reason']}", err=True)
    if len(skipped) > SHOW_SKIPPED:
        click.echo(f"skipped: ... {len(skipped) - SHOW_SKIPPED} more (--json lists them all)",
                   err=True)


# Reason prefix -> what the summary line calls those skips, in the order shown.
_SKIP_KINDS = [
    ("not an image", "non-image files"),
    ("symlink to a path outside", "symlinks out of the folder"),
    ("hidden", "hidden"),
    ("folder (", "sub-folders (--recursive walks them)"),
    ("same ", "second paths to the same file"),
    ("named more than once", "second paths to the same file"),
    ("broken symlink", "broken symlinks"),
]


def _skipped_summary(skipped: list[dict[str, str]]) -> str:
    """'2 non-image files skipped; 1 hidden skipped; 3 other files skipped'."""
    counts: dict[str, int] = {}
    for skip in skipped:
        kind = next((name for prefix, name in _SKIP_KINDS
                     if skip["reason"].startswith(prefix)), "other files")
        counts[kind] = counts.get(kind, 0) + 1
    order = [name for _, name in _SKIP_KINDS] + ["other files"]
    return "; ".join(f"{counts[k]} {k} skipped" for k in dict.fromkeys(order) if k in counts)
