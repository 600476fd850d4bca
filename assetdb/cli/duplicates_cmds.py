"""`assetdb duplicates`: groups of near-duplicate assets, a keeper each, and actions."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from typing import Any

import click

from assetdb.catalog.catalogue import Catalog
from assetdb.cli.common import FilteredCommand, filter_options, filters_from, get_settings
from assetdb.cli.output import print_json, print_table, progress_bar

CSV_COLUMNS = ("group_id", "asset_id", "keeper", "similarity", "distance", "width", "height",
               "bytes", "hidden", "uri")
TABLE_COLUMNS = ("group", "id", "keeper", "similarity", "size", "bytes", "hidden", "uri")
STAGES = {"hashing": ("hashing older assets", "asset"),
          "neighbours": ("finding neighbours", "asset")}


class _Bars:
    """One progress bar per stage of the run, closed when the next starts."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, stage: str, total: int) -> Callable[[int], None]:
        self.close()
        desc, unit = STAGES.get(stage, (stage, "asset"))
        self.bar = progress_bar(total, desc, unit)
        return self.bar.update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _DuplicatesCommand(FilteredCommand):
    """`--tag TAG` is this command's action (tag the duplicates), so the tag filter of the
    same name is left out here; filter by a tag with --any-tag TAG."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        return [p for p in params if p.name != "tags_all"]


def _rows(report: Any) -> list[dict[str, Any]]:  # noqa: ANN401 - DuplicatesReport
    return [{"group_id": g.keeper_id, "asset_id": m.id, "keeper": m.keeper,
             "similarity": m.similarity, "distance": m.distance, "width": m.width,
             "height": m.height, "bytes": m.bytes, "hidden": m.hidden, "uri": m.uri}
            for g in report.groups for m in g.members]


def _summary(report: Any) -> str:  # noqa: ANN401
    rule = (f"hash similarity >= {report.threshold:g} (at most {report.max_distance} of 128 "
            "bits)" if report.rule == "hash" else f"vector cosine >= {report.threshold:g}")
    line = (f"{len(report.groups)} groups, {report.duplicates} duplicates among "
            f"{report.assets} assets ({rule})")
    done = [f"{n} {what}" for n, what in ((report.tagged, "tagged"),
                                          (report.untagged, "untagged"),
                                          (report.hidden, "hidden"),
                                          (report.unhidden, "shown again"),
                                          (report.hashed, "hashed")) if n]
    if done:
        line += "; " + ", ".join(done)
    return line


@click.command(cls=_DuplicatesCommand)
@filter_options
@click.option("--threshold", type=float, metavar="T",
              help="Similarity from 0 to 1 at which two assets count as duplicates: of "
                   "their perceptual hashes (default 0.8), or with --semantic of their "
                   "vectors (default 0.92).")
@click.option("--semantic", is_flag=True,
              help="Group by vector similarity alone: different photos of one scene too.")
@click.option("--neighbours", type=int, default=16, show_default=True, metavar="K",
              help="Vector neighbours looked at per asset (1..100).")
@click.option("--tag", "tag", metavar="TAG", help="Add TAG to every duplicate (not keepers).")
@click.option("--untag", "untag", metavar="TAG",
              help="Remove TAG from every asset the filters match (undoes --tag).")
@click.option("--hide", is_flag=True,
              help="Hide duplicates from searches (not keepers); --unhide shows them again.")
@click.option("--unhide", is_flag=True,
              help="Show again every asset the filters match that --hide hid.")
@click.option("--no-backfill", is_flag=True,
              help="Do not hash older assets that lack a hash; count them instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per group member.")
def duplicates(threshold: float | None, semantic: bool, neighbours: int, tag: str | None,
               untag: str | None, hide: bool, unhide: bool, no_backfill: bool, as_json: bool,
               as_csv: bool, **kwargs: object) -> None:
    """Find groups of near-duplicate assets: the same picture resized, recompressed,
    re-saved, cropped a little or colour-corrected.

    Candidates are each asset's nearest vector neighbours (the HNSW index; kept between
    runs, so a stopped run resumes) and assets with a matching perceptual-hash band; a
    pair counts when its perceptual hashes (pHash + dHash) are within the threshold, or,
    with --semantic, when its vectors are. Each group's keeper is the asset marked on the
    page, else the largest in pixels, then the oldest. Older assets without a hash are
    hashed first. Files are never deleted; --hide and --tag are undone by --unhide and
    --untag. Here --tag names the tag to add; filter by a tag with --any-tag.

    \b
    Examples:
      assetdb duplicates
      assetdb duplicates --threshold 0.9 --json
      assetdb duplicates --kind image --csv
      assetdb duplicates --tag duplicate --hide
      assetdb duplicates --unhide --untag duplicate
      assetdb duplicates --semantic --threshold 0.95
    """
    from assetdb.duplicates.finder import check_neighbours, check_tag, check_threshold
    from assetdb.errors import FilterError

    if as_json and as_csv:
        raise FilterError("--json and --csv exclude each other")
    check_threshold(threshold)
    check_neighbours(neighbours)
    check_tag(tag)
    check_tag(untag)
    settings = get_settings()
    filters = filters_from(kwargs)
    bars = _Bars()
    try:
        report = Catalog(settings).duplicates(
            filters=filters, threshold=threshold, semantic=semantic, neighbours=neighbours,
            tag=tag, untag=untag, hide=hide, unhide=unhide, backfill_hashes=not no_backfill,
            progress=bars)
    finally:
        bars.close()
    if as_json:
        print_json(report.as_dict())
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_rows(report))
        return
    table = [{"group": g.keeper_id, "id": m.id, "keeper": "keep" if m.keeper else "",
              "similarity": m.similarity, "size": f"{m.width}x{m.height}", "bytes": m.bytes,
              "hidden": "hidden" if m.hidden else "", "uri": m.uri}
             for g in report.groups for m in g.members]
    if table:
        print_table(table, TABLE_COLUMNS)
    for failure in report.hash_failures:
        click.echo(f"not hashed: {failure['uri']}: {failure['error']}", err=True)
    if report.unhashed:
        click.echo(f"{report.unhashed} assets have no perceptual hash and were left out"
                   + ("" if no_backfill else " (their files could not be read)")
                   + ("; run without --no-backfill to hash them" if no_backfill else ""),
                   err=True)
    click.echo(_summary(report))
