"""`assetdb search` and `assetdb similar`."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.catalog.catalogue import Catalog
from assetdb.cli.common import (
    FilteredCommand,
    catalogue_meta,
    filter_options,
    filters_from,
    get_settings,
    json_option,
    k_option,
    min_similarity_option,
    with_model,
)
from assetdb.cli.output import print_json, print_table
from assetdb.search.filters import check_min_similarity

COLUMNS = ("id", "similarity", "title", "uri")
MOMENT_COLUMNS = ("id", "similarity", "at", "title", "uri")


def _at(moment: dict) -> str:
    """A moment as people read it: 1:05 into a video, or p. 3 of a document."""
    if moment.get("seconds") is not None:
        whole = int(moment["seconds"])
        hours, rest = divmod(whole, 3600)
        stamp = f"{rest // 60}:{rest % 60:02d}"
        return f"{hours}:{stamp.zfill(5)}" if hours else stamp
    return f"p. {moment['page']}" if moment.get("page") is not None else ""


def _show(hits: list, as_json: bool) -> None:  # noqa: ANN001 - list[Hit]
    rows = [h.as_dict() for h in hits]
    if as_json:
        print_json(rows)
    elif any(r.get("moments") for r in rows):
        print_table([{**r, "at": ", ".join(_at(m) for m in r["moments"][:1])} for r in rows],
                    MOMENT_COLUMNS)
    else:
        print_table(rows, COLUMNS)


MODES = ("hybrid", "semantic", "keyword")  # assetdb.search.hybrid.MODES (no import here)
RANKED_COLUMNS = ("id", "score", "similarity", "kw_rank", "title", "snippet", "uri")


def _plain_snippet(snippet: str | None, lead: int = 12) -> str | None:
    """The snippet for a table: matches in [brackets], starting shortly before the first."""
    if not snippet:
        return snippet
    plain = snippet.replace("<mark>", "[").replace("</mark>", "]")
    first = plain.find("[")
    return "…" + plain[first - lead:] if first > lead + 1 else plain


@click.command(cls=FilteredCommand)
@click.argument("text")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True,
              help="hybrid: words and meaning, fused; semantic: CLIP only; keyword: "
                   "full-text search over titles, tags, descriptions, metadata, file "
                   "names and OCR text (no model loaded).")
@k_option
@filter_options
@min_similarity_option
@json_option
def search(text: str, mode: str, k: int, min_similarity: float | None, as_json: bool,
           **kwargs: object) -> None:
    """Find assets by what they show and by their words.

    The semantic side is CLIP text-to-image search: CLIP reads at most 77 tokens, and
    is weak at counting, spatial relations and text inside images. The keyword side
    reads the whole query and finds codes, names and words people wrote or that OCR
    read in the image (prefixes too: "QX-44" finds QX-4471). Each hit says why it
    matched: similarity, keyword rank and a snippet (matched words in [brackets];
    <mark> tags in --json).

    \b
    Examples:
      assetdb search "sunset over a brutalist concrete building" -k 5
      assetdb search "red sneakers" --tag product --meta brand=acme --json
      assetdb search "QX-4471" --mode keyword
    """
    from assetdb.search.hybrid import check_request

    if not text.strip():
        from assetdb.errors import FilterError

        raise FilterError("the search text is empty: describe what the picture shows")
    settings = get_settings()
    filters = filters_from(kwargs)
    check_request(text, mode, k, min_similarity)  # answered before the model loads
    meta = catalogue_meta(settings, read=True)  # before the model: errors come at once
    catalog = Catalog(settings)

    def run(encoder: object) -> object:
        return catalog.search(text, mode=mode, encoder=encoder, k=k, filters=filters,
                              min_similarity=min_similarity)

    result = (run(None) if mode == "keyword" else with_model(settings, meta, run))
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    rows = [h.as_dict() for h in result.hits]
    if as_json:
        print_json(rows)
        return
    if result.mode == "semantic":
        print_table(rows, COLUMNS)
        return
    for row in rows:
        row["kw_rank"] = row["keyword_rank"]
        row["snippet"] = _plain_snippet(row["snippet"])
    print_table(rows, RANKED_COLUMNS, max_width=48)


@click.command(cls=FilteredCommand)
@click.argument("target")
@k_option
@filter_options
@min_similarity_option
@json_option
def similar(target: str, k: int, min_similarity: float | None, as_json: bool,
            **kwargs: object) -> None:
    """Find assets that look like TARGET: an asset id, or an image file.

    By id, no model is loaded: the stored vector is the query, and that asset itself
    is left out of its results. By file, nothing is left out: if the catalogue holds
    the same content, it comes first at similarity 1.0 (as in the API's image search).

    \b
    Examples:
      assetdb similar 42 -k 20
      assetdb similar ./example.jpg --kind image
    """
    settings = get_settings()
    filters = filters_from(kwargs)
    check_min_similarity(min_similarity)  # answered before the model loads
    if target.isdigit() and not Path(target).exists():
        _show(Catalog(settings).similar(int(target), k=k, filters=filters,
                                        min_similarity=min_similarity), as_json)
        return
    path = Path(target).expanduser()
    if not path.is_file():
        raise click.ClickException(f"{target!r} is neither an asset id nor an existing file")
    meta = catalogue_meta(settings, read=True)

    def run(encoder: object) -> list:
        return Catalog(settings).search_image(encoder, path, k=k, filters=filters,
                                              min_similarity=min_similarity)

    _show(with_model(settings, meta, run), as_json)
