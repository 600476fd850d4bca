"""`assetdb search` and `assetdb similar`."""

from __future__ import annotations

from pathlib import Path

import click

from assetdb.cli.common import filter_options, filters_from, get_settings, json_option, load_model
from assetdb.cli.output import print_json, print_table

COLUMNS = ("id", "similarity", "title", "uri")


def _show(hits: list, as_json: bool) -> None:  # noqa: ANN001 - list[Hit]
    rows = [h.as_dict() for h in hits]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS)


@click.command()
@click.argument("text")
@click.option("-k", "--limit", "k", default=10, show_default=True, help="How many results.")
@filter_options
@json_option
def search(text: str, k: int, as_json: bool, **kwargs: object) -> None:
    """Find assets that match a text description (CLIP text-to-image search).

    CLIP reads at most 77 tokens, and is weak at counting, spatial relations and
    text inside images: describe what the picture shows.

    \b
    Examples:
      assetdb search "sunset over a brutalist concrete building" -k 5
      assetdb search "red sneakers" --tag product --meta brand=acme --json
    """
    from assetdb.search.service import search_text

    settings = get_settings()
    filters = filters_from(kwargs)
    encoder = load_model(settings)
    _show(search_text(settings, encoder, text, k=k, filters=filters), as_json)


@click.command()
@click.argument("target")
@click.option("-k", "--limit", "k", default=10, show_default=True, help="How many results.")
@filter_options
@json_option
def similar(target: str, k: int, as_json: bool, **kwargs: object) -> None:
    """Find assets that look like TARGET: an asset id, or an image file.

    The query asset itself is left out of its results. By id, no model is loaded:
    the stored vector is the query.

    \b
    Examples:
      assetdb similar 42 -k 20
      assetdb similar ./example.jpg --kind image
    """
    from assetdb.search.service import search_image, similar_to_asset

    settings = get_settings()
    filters = filters_from(kwargs)
    if target.isdigit() and not Path(target).exists():
        hits = similar_to_asset(settings, int(target), k=k, filters=filters)
    else:
        path = Path(target).expanduser()
        if not path.exists():
            raise click.ClickException(f"{target!r} is neither an asset id nor an existing file")
        encoder = load_model(settings)
        hits = search_image(settings, encoder, path, k=k, filters=filters)
    _show(hits, as_json)
