"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from assetdb.config import Settings


def get_settings() -> Settings:
    return Settings.from_env()


def load_model(settings: Settings, name: str | None = None):  # noqa: ANN201 - Encoder
    """Load the configured model, with a note on stderr (loading takes seconds)."""
    from assetdb.db.schema import model_to_load
    from assetdb.embedding.encoder import load_encoder

    model = name or model_to_load(settings)
    click.echo(f"Loading model {model} ...", err=True)
    return load_encoder(model, device=settings.device, batch_size=settings.batch_size)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The filter options of the one filter model (assetdb.search.filters)."""
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
        click.option("--min-similarity", type=float, metavar="S",
                     help="Leave out results below this similarity (-1..1)."),
        click.option("--include-hidden", is_flag=True,
                     help="Include assets hidden by a moderation policy."),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(options), fn)


def filters_from(kwargs: dict[str, Any]):  # noqa: ANN201 - Filters
    """Pop the filter options from a command's kwargs and validate them."""
    from assetdb.search.filters import build_filters

    keys = ("kinds", "tags", "any_tags", "metadata", "captured_after", "captured_before",
            "created_after", "created_before", "min_similarity", "include_hidden")
    return build_filters(**{k: kwargs.pop(k) for k in keys})
