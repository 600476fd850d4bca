"""Options and helpers shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from assetdb.config import Settings


def get_settings() -> Settings:
    return Settings.from_env()


def catalogue_meta(settings: Settings, *, read: bool = False) -> dict[str, str]:
    """Reach the database and read what it records (model, dimension). Commands call it
    before loading a model, so that a server that is down or a database never
    initialised is answered in a second, not after the model's many seconds.

    read=True: searches ask the server they search (the read replica, when one is set),
    so that right after a model switch a lagging replica is searched with its own model."""
    from assetdb.db import schema
    from assetdb.db.engine import connect, connect_read

    with (connect_read if read else connect)(settings) as conn:
        return schema.require_meta(conn)


def load_model(settings: Settings, name: str | None = None,
               meta: dict[str, str] | None = None,
               text_model: str | None = None):  # noqa: ANN201 - Encoder
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
    if meta:  # a text model of another dimension is refused before anything loads
        from assetdb.catalog.catalogue import Catalog

        Catalog(settings).check_text_model(model, meta)
    click.echo(f"Loading model {model} ...", err=True)
    return load_encoder(model, device=settings.device, batch_size=settings.batch_size,
                        text_model=text_model)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def k_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    from assetdb.search import MAX_K

    return click.option("-k", "--limit", "k", default=10, show_default=True,
                        type=click.IntRange(1, MAX_K), help="How many results.")(fn)


def filter_click_options() -> list[click.Option]:
    """The filters' CLI options, built from the one declaration (search/filters.py)."""
    from assetdb.search import filters

    if _option_cache[0] != filters.generation() or not _option_cache[1]:
        options = []
        for spec in filters.FILTERS:
            if spec.is_flag:
                opt = click.Option([spec.flag, spec.field], is_flag=True, help=spec.help)
            else:
                opt = click.Option([spec.flag, spec.field], multiple=spec.multiple,
                                   metavar=spec.metavar, help=spec.help)
            options.append(opt)
        _option_cache[:] = [filters.generation(), options]
    return _option_cache[1]


_option_cache: list[Any] = [-1, []]  # [filters.generation(), the options built for it]


_SLOT = "assetdb_filters_slot"


def filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where the declared filters' options go among a command's options; the command must
    be a FilteredCommand (`@click.command(cls=FilteredCommand)`)."""
    return click.option("--" + _SLOT, _SLOT, hidden=True, expose_value=False)(fn)


class FilteredCommand(click.Command):
    """A command that takes the declared filters as options, built at each call from the
    list (so a filter registered later is there too), in place of its filter_options
    slot; its callback passes its kwargs to filters_from."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        at = next((i for i, p in enumerate(params) if p.name == _SLOT), None)
        if at is None:
            raise TypeError(f"{self.name}: a FilteredCommand needs @filter_options")
        return params[:at] + filter_click_options() + params[at + 1:]


def min_similarity_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--min-similarity: a search option, only where there is a query to be similar to
    (search, similar); the check is the services' own (-1..1)."""
    return click.option("--min-similarity", type=float, metavar="S",
                        help="Leave out results below this similarity (-1..1).")(fn)


def filters_from(kwargs: dict[str, Any]):  # noqa: ANN201 - Filters
    """Pop the filter options from a command's kwargs and validate them."""
    from assetdb.search.filters import FILTERS, build_filters

    return build_filters(**{s.field: kwargs.pop(s.field) for s in FILTERS if s.field in kwargs})


def with_model(settings: Settings, meta: dict[str, str], run: Callable[[Any], Any]) -> Any:  # noqa: ANN401
    """run(encoder), a search, with the database's model (or ASSETDB_MODEL). Following the
    database's model, a switch (`assetdb reembed`) that lands between loading and searching
    is followed: the recorded model is read again (where searches read) and run once more."""
    from assetdb.errors import ModelSwitched

    try:
        return run(load_model(settings, meta=meta))
    except ModelSwitched:
        if settings.model_is_explicit:
            raise
        click.echo("The database switched models meanwhile; loading the new one.", err=True)
        return run(load_model(settings, meta=catalogue_meta(settings, read=True)))
