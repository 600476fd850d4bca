"""The one filter model shared by the CLI, the HTTP API and the web page."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from assetdb.errors import FilterError
from assetdb.kinds.registry import KIND_NAMES
from assetdb.text_values import parse_scalar, parse_when

KINDS = KIND_NAMES  # the registered kinds' names, read at each use (assetdb.kinds)


@dataclass
class Filters:
    kinds: list[str] = field(default_factory=list)
    tags_all: list[str] = field(default_factory=list)  # every one of these tags
    tags_any: list[str] = field(default_factory=list)  # at least one of these tags
    metadata: dict[str, Any] = field(default_factory=dict)  # jsonb containment
    captured_after: datetime | None = None
    captured_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    min_similarity: float | None = None
    include_hidden: bool = False

    def is_empty(self) -> bool:
        return self == Filters(min_similarity=self.min_similarity,
                               include_hidden=self.include_hidden)


def split_list(values: Iterable[str]) -> list[str]:
    """Accept repeated options and comma-separated lists alike."""
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def parse_metadata(pairs: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FilterError(f"metadata filter {pair!r} must look like key=value")
        out[key.strip()] = parse_scalar(value)
    return out


def build_filters(
    *,
    kinds: Iterable[str] = (),
    tags: Iterable[str] = (),
    any_tags: Iterable[str] = (),
    metadata: Iterable[str] = (),
    captured_after: str | None = None,
    captured_before: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    min_similarity: float | None = None,
    include_hidden: bool = False,
) -> Filters:
    """Validate raw user input (CLI options, query parameters) into Filters."""
    kind_list = split_list(kinds)
    unknown = [k for k in kind_list if k not in KINDS]
    if unknown:
        raise FilterError(f"unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
        raise FilterError("min similarity must lie between -1 and 1")
    f = Filters(
        kinds=kind_list,
        tags_all=split_list(tags),
        tags_any=split_list(any_tags),
        metadata=parse_metadata(metadata),
        captured_after=parse_when(captured_after, "captured after"),
        captured_before=parse_when(captured_before, "captured before"),
        created_after=parse_when(created_after, "created after"),
        created_before=parse_when(created_before, "created before"),
        min_similarity=min_similarity,
        include_hidden=include_hidden,
    )
    for lo, hi, name in ((f.captured_after, f.captured_before, "captured"),
                         (f.created_after, f.created_before, "created")):
        if lo and hi and lo > hi:
            raise FilterError(f"{name} date range is empty: after {lo:%Y-%m-%d} > before "
                              f"{hi:%Y-%m-%d}")
    return f


def now() -> datetime:
    return datetime.now(UTC)
