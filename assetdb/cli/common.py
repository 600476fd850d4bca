"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from assetdb.config import Settings


def get_settings() -> Settings:
    return Settings.from_env()


def catalogue_meta(settings: Settings) -> dict[str, str]:
    """Reach the database and read what it records (model, dimension). Commands call it
    before loading a model, so that a server that is down or a database never
    initialised is answered in a second, not after the model's many seconds."""
    from assetdb.db import schema
    from assetdb.db.engine import connect

    with connect(settings) as conn:
        return schema.require_meta(conn)


def load_model(settings: Settings, name: str | None = None,
               meta: dict[str, str] | None = None):  # noqa: ANN201 - Encoder
    """Load the configured model, with a note on stderr (loading takes seconds).

    `meta` (from catalogue_meta) names the database's model without asking it again."""
    from assetdb.db.schema import model_to_load
    from assetdb.embedding.encoder import load_encoder

    if name:
        model = name
    elif meta and not settings.model_is_explicit:
        model = meta["model"]
    else:
        model = model_to_load(settings)
    click.echo(f"Loading model {model} ...", err=True)
    return load_encoder(model, device=settings.device, batch_size=settings.batch_size)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def k_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    from assetdb.search import MAX_K

    return click.option("-k", "--limit", "k", default=10, show_default=True,
                        type=click.IntRange(1, MAX_K), help="How many results.")(fn)


def filter_options(fn: Callable[..., Any] | None = None, *,
                   similarity: bool = False) -> Any:  # noqa: ANN401 - a decorator or its maker
    """The filter options of the one filter model (assetdb.search.filters).

    --min-similarity only where there is a query to be similar to (search, similar):
    `@filter_options(similarity=True)`; elsewhere `@filter_options`."""
    if fn is None:
        return functools.partial(filter_options, similarity=similarity)
    options = [
        click.option("--kind", "kinds", multiple=True, metavar="KIND",
                     help="Only this kind: image or animation. Repeatable."),
        click.option("--tag", "tags", multiple=True, metavar="TAG",
                     help="Must carry this tag (all of the given tags). Repeatable, or a,b."),
        click.option("--any-tag", "any_tags", multiple=True, metavar="TAG",
                     help="Must carry at least one of these tags. Repeatable, or a,b."),
        click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE",
                     help="Metadata must contain KEY=VALUE (jsonb containment; 42 is a "
                          "number, \"42\" a string). Repeatable."),
        click.option("--captured-after", metavar="DATE", help="Captured on or after (ISO 8601)."),
        click.option("--captured-before", metavar="DATE", help="Captured on or before."),
        click.option("--created-after", metavar="DATE", help="Catalogued on or after."),
        click.option("--created-before", metavar="DATE", help="Catalogued on or before."),
        click.option("--include-hidden", is_flag=True,
                     help="Include assets hidden by a moderation policy."),
    ]
    if similarity:
        options.insert(-1, click.option(
            "--min-similarity", type=float, metavar="S",
            help="Leave out results below this similarity (-1..1)."))
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


def filters_from(kwargs: dict[str, Any]):  # noqa: ANN201 - Filters
    """Pop the filter options from a command's kwargs and validate them."""
    from assetdb.search.filters import build_filters

    keys = ("kinds", "tags", "any_tags", "metadata", "captured_after", "captured_before",
            "created_after", "created_before", "include_hidden")
    return build_filters(**{k: kwargs.pop(k) for k in keys},
                         min_similarity=kwargs.pop("min_similarity", None))


def with_model(settings: Settings, meta: dict[str, str], run: Callable[[Any], Any]) -> Any:  # noqa: ANN401
    """run(encoder) with the database's model (or ASSETDB_MODEL). Following the database's
    model, a switch (`assetdb reembed`) that lands between loading and searching is
    followed: the recorded model is read again and run once more with it."""
    from assetdb.errors import ModelSwitched

    try:
        return run(load_model(settings, meta=meta))
    except ModelSwitched:
        if settings.model_is_explicit:
            raise
        click.echo("The database switched models meanwhile; loading the new one.", err=True)
        return run(load_model(settings, meta=catalogue_meta(settings)))
