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


def _show(hits: list, as_json: bool) -> None:  # noqa: ANN001 - list[Hit]
    rows = [h.as_dict() for h in hits]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS)


@click.command(cls=FilteredCommand)
@click.argument("text")
@k_option
@filter_options
@min_similarity_option
@json_option
def search(text: str, k: int, min_similarity: float | None, as_json: bool,
           **kwargs: object) -> None:
    """Find assets that match a text description (CLIP text-to-image search).

    CLIP reads at most 77 tokens, and is weak at counting, spatial relations and
    text inside images: describe what the picture shows.

    \b
    Examples:
      assetdb search "sunset over a brutalist concrete building" -k 5
      assetdb search "red sneakers" --tag product --meta brand=acme --json
    """
    from assetdb.errors import FilterError

    if not text.strip():
        raise FilterError("the search text is empty: describe what the picture shows")
    settings = get_settings()
    filters = filters_from(kwargs)
    check_min_similarity(min_similarity)  # answered before the model loads
    meta = catalogue_meta(settings, read=True)  # before the model: errors come at once

    def run(encoder: object) -> list:
        return Catalog(settings).search_text(encoder, text, k=k, filters=filters,
                                             min_similarity=min_similarity)

    _show(with_model(settings, meta, run), as_json)


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
