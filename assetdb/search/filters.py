"""The filters, declared once (datasette's TemplatedFilter list is the model).

Each FilterSpec holds everything about one filter: the Filters field it fills, its CLI
flag, its query parameter, its help, its parser and its SQL clause, and how the web page
shows it. The CLI options (cli/common.py), the API parameters (api/deps.py), the SQL
(search/query.py where_clauses) and the page's filter panel (/api/filters) are all built
from FILTERS; `register_filter()` adds one more everywhere at once.

No heavy imports here: `assetdb --help` builds its options from this list. SQL clauses
take the assets table's columns as an argument instead of importing the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from assetdb.errors import FilterError
from assetdb.kinds.registry import KIND_NAMES
from assetdb.kinds.registry import kind_names as registered_kinds
from assetdb.text_values import parse_scalar, parse_when

KINDS = KIND_NAMES  # the registered kinds' names, read at each use (assetdb.kinds)


def kind_names() -> tuple[str, ...]:
    """The asset kinds a `kind` filter accepts: those registered (assetdb.kinds)."""
    return registered_kinds()


# --- parsers: raw CLI/API input -> a validated value ------------------------------------


def split_list(values: Iterable[str]) -> list[str]:
    """Accept repeated options and comma-separated lists alike."""
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def parse_kinds(values: Iterable[str]) -> list[str]:
    kinds = split_list(values)
    known = kind_names()
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise FilterError(f"unknown kind {unknown[0]!r}; choose from {', '.join(known)}")
    return kinds


def parse_metadata(pairs: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FilterError(f"metadata filter {pair!r} must look like key=value")
        out[key.strip()] = parse_scalar(value)
    return out


def date_parser(name: str) -> Callable[[str | None], datetime | None]:
    return lambda raw: parse_when(raw, name)


def check_min_similarity(value: float | None) -> float | None:
    """min_similarity is a search option (it needs a query to be similar to), not a filter."""
    if value is not None and not -1.0 <= value <= 1.0:
        raise FilterError("min similarity must lie between -1 and 1")
    return value


# --- the declaration ------------------------------------------------------------------


@dataclass(frozen=True)
class PageField:
    """How the web page's filter panel shows a filter.

    widget: "checkboxes" (one per choice), "list" (a comma-separated text field),
    "lines" (a text area, one value a line) or "date" (a date picker).
    group: fields with the same group share a fieldset with that legend.
    end_of_day: a date picker whose day counts whole (an upper bound)."""

    widget: str
    label: str
    input_id: str = ""
    placeholder: str = ""
    hint: str = ""
    group: str = ""
    end_of_day: bool = False
    order: int = 0  # the panel's order (ties: the list's)
    choice_labels: tuple[tuple[str, str], ...] = ()  # (value, label) for known choices


@dataclass(frozen=True)
class FilterSpec:
    """One filter. `clause(columns, value)` returns the SQL condition for a value that
    is not empty (for a flag: for every value), or None for none; `columns` is the
    assets table's column collection. `parse` takes a list of strings when `multiple`,
    a bool for a flag, else a string or None."""

    field: str  # the Filters attribute
    flag: str  # the CLI flag, e.g. "--kind"
    param: str  # the query parameter, e.g. "kind"
    help: str
    parse: Callable[[Any], Any]
    clause: Callable[[Any, Any], Any]
    metavar: str = "VALUE"
    multiple: bool = False
    is_flag: bool = False
    empty: Callable[[], Any] = lambda: None  # the value when not given
    # Checks over all the parsed filters (a date range's ends), run after parsing.
    check: Callable[[Filters], None] | None = None
    choices: Callable[[], Sequence[str]] | None = None  # known values (the page's boxes)
    page: PageField | None = None  # None: not on the page's filter panel


def _date_range(lo: str, hi: str, name: str) -> Callable[[Filters], None]:
    def check(f: Filters) -> None:
        after, before = getattr(f, lo), getattr(f, hi)
        if after and before and after > before:
            raise FilterError(f"{name} date range is empty: after {after:%Y-%m-%d} > before "
                              f"{before:%Y-%m-%d}")
    return check


FILTERS: list[FilterSpec] = [
    FilterSpec(
        field="kinds", flag="--kind", param="kind", metavar="KIND", multiple=True,
        help="Only this kind: image, animation, video or document. Repeatable.",
        parse=parse_kinds, empty=list, choices=kind_names,
        clause=lambda c, v: c.kind.in_(v),
        page=PageField("checkboxes", "Kind", group="Kind",
                       choice_labels=(("image", "Still image"), ("animation", "Animation"))),
    ),
    FilterSpec(
        field="tags_all", flag="--tag", param="tag", metavar="TAG", multiple=True,
        help="Must carry this tag (all of the given tags). Repeatable, or a,b.",
        parse=split_list, empty=list,
        clause=lambda c, v: c.tags.contains(v),
        page=PageField("list", "Tags (all of)", "f-tag", "poster, spring"),
    ),
    FilterSpec(
        field="tags_any", flag="--any-tag", param="any_tag", metavar="TAG", multiple=True,
        help="Must carry at least one of these tags. Repeatable, or a,b.",
        parse=split_list, empty=list,
        clause=lambda c, v: c.tags.overlap(v),
        page=PageField("list", "Tags (any of)", "f-any-tag", "banner, flyer"),
    ),
    FilterSpec(
        field="metadata", flag="--meta", param="meta", metavar="KEY=VALUE", multiple=True,
        help="Metadata must contain KEY=VALUE (jsonb containment; 42 is a number, \"42\" "
             "a string). Repeatable.",
        parse=parse_metadata, empty=dict,
        clause=lambda c, v: c.metadata.contains(v),
        page=PageField("lines", "Metadata", "f-meta", "brand=acme\ncampaign=spring",
                       hint="One key=value per line; all must match.", order=1),
    ),
    FilterSpec(
        field="captured_after", flag="--captured-after", param="captured_after",
        metavar="DATE", help="Captured on or after (ISO 8601).",
        parse=date_parser("captured after"),
        clause=lambda c, v: c.captured_at >= v,
        page=PageField("date", "From", "f-from", group="Captured"),
    ),
    FilterSpec(
        field="captured_before", flag="--captured-before", param="captured_before",
        metavar="DATE", help="Captured on or before.",
        parse=date_parser("captured before"),
        clause=lambda c, v: c.captured_at <= v,
        check=_date_range("captured_after", "captured_before", "captured"),
        page=PageField("date", "To", "f-to", group="Captured", end_of_day=True),
    ),
    FilterSpec(
        field="created_after", flag="--created-after", param="created_after",
        metavar="DATE", help="Catalogued on or after (ISO 8601).",
        parse=date_parser("created after"),
        clause=lambda c, v: c.created_at >= v,
    ),
    FilterSpec(
        field="created_before", flag="--created-before", param="created_before",
        metavar="DATE", help="Catalogued on or before.",
        parse=date_parser("created before"),
        clause=lambda c, v: c.created_at <= v,
        check=_date_range("created_after", "created_before", "created"),
    ),
    FilterSpec(
        field="include_hidden", flag="--include-hidden", param="include_hidden",
        is_flag=True, help="Include assets hidden by a moderation policy.",
        parse=bool, empty=lambda: False,
        clause=lambda c, v: None if v else c.hidden.is_(False),
    ),
]

# Bumped on every registration, so that what is built from the list (click options) can
# be cached and rebuilt when it changes.
_generation = 0


def register_filter(spec: FilterSpec) -> FilterSpec:
    """Add a filter: the CLI, the API, the SQL and the page take it from here on. (The API
    documents it in apps created afterwards; an app reads its routes once.)"""
    global _generation
    taken = {s.field for s in FILTERS}, {s.flag for s in FILTERS}, {s.param for s in FILTERS}
    for name, used in zip((spec.field, spec.flag, spec.param), taken, strict=True):
        if name in used:
            raise ValueError(f"a filter already uses {name!r}")
    if not spec.param.isidentifier() or not spec.flag.startswith("--"):
        raise ValueError("a filter's param must be an identifier and its flag start with --")
    FILTERS.append(spec)
    _generation += 1
    return spec


def unregister_filter(field: str) -> None:
    """Take a filter out again (for tests that register one)."""
    global _generation
    FILTERS[:] = [s for s in FILTERS if s.field != field]
    _generation += 1


def generation() -> int:
    return _generation


def spec_for(field: str) -> FilterSpec | None:
    return next((s for s in FILTERS if s.field == field), None)


# --- the values -------------------------------------------------------------------------


class Filters:
    """Validated filter values, one per FilterSpec.field; a field not given is empty.

    `Filters(tags_all=["red"])` names fields directly (values already parsed);
    `build_filters` parses raw user input."""

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:  # noqa: ANN401
        for name in values:
            if spec_for(name) is None:
                raise TypeError(f"no filter field {name!r}")
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        spec = spec_for(name)
        if spec is None:
            raise AttributeError(name)
        values = object.__getattribute__(self, "_values")
        return values[name] if name in values else spec.empty()

    def __setattr__(self, name: str, value: Any) -> None:  # noqa: ANN401
        raise AttributeError("Filters are immutable; use .replace()")

    def as_dict(self) -> dict[str, Any]:
        """Every filter's value, in declaration order."""
        return {s.field: getattr(self, s.field) for s in FILTERS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filters) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable values inside

    def __repr__(self) -> str:
        given = {k: v for k, v in self.as_dict().items() if v != spec_for(k).empty()}  # type: ignore[union-attr]
        return f"Filters({', '.join(f'{k}={v!r}' for k, v in given.items())})"

    def replace(self, **changes: Any) -> Filters:  # noqa: ANN401
        return Filters(**{**object.__getattribute__(self, "_values"), **changes})

    def is_empty(self) -> bool:
        """No filter narrows the rows (include_hidden widens them, so it does not count)."""
        return self == Filters(include_hidden=self.include_hidden)


def build_filters(**raw: Any) -> Filters:  # noqa: ANN401
    """Validate raw user input (CLI options, query parameters) into Filters. Keywords are
    the specs' fields (or their params); an input left out is empty."""
    values: dict[str, Any] = {}
    for spec in FILTERS:
        given = raw.pop(spec.field, raw.pop(spec.param, None))
        if given is None or (spec.multiple and not given):
            continue
        values[spec.field] = spec.parse(list(given) if spec.multiple else given)
    if raw:
        raise TypeError(f"no filter named {', '.join(sorted(raw))}")
    f = Filters(**values)
    for spec in FILTERS:
        if spec.check:
            spec.check(f)
    return f


def where(f: Filters, columns: Any) -> list[Any]:  # noqa: ANN401 - SQLAlchemy columns
    """The SQL conditions of the filters, for the assets table's `columns`."""
    clauses = []
    for spec in FILTERS:
        value = getattr(f, spec.field)
        if spec.is_flag or value not in (None, [], {}, ""):
            clause = spec.clause(columns, value)
            if clause is not None:
                clauses.append(clause)
    return clauses


def now() -> datetime:
    return datetime.now(UTC)
