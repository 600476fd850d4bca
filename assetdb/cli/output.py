"""Printing helpers: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import click


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_default, ensure_ascii=False))


def _cell(value: Any, width: int | None = None) -> str:
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:.4f}"
    elif isinstance(value, list | tuple):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    if width and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], max_width: int = 60
) -> None:
    if not rows:
        click.echo("(no results)")
        return
    # The last column (a uri, usually) is never cut: it is what people copy.
    last = len(columns) - 1
    cells = [[_cell(r.get(c), None if i == last else max_width) for i, c in enumerate(columns)]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def progress_bar(total: int, desc: str, unit: str = "file"):  # noqa: ANN201 - tqdm type
    """A tqdm bar on stderr when stderr is a terminal; silent otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty(),
                file=sys.stderr, dynamic_ncols=True)


class LazyProgress:
    """Progress callbacks for a service that reports its total first: the bar appears on
    `on_total`, moves on `update`, and is closed when the `with` block ends."""

    def __init__(self, desc: str, unit: str = "file") -> None:
        self.desc, self.unit, self.bar = desc, unit, None

    def on_total(self, total: int) -> None:
        self.bar = progress_bar(total, self.desc, self.unit)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def note(self, message: str) -> None:
        """A line about the work's phase (e.g. a bulk load's index build), above the bar."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def kv_lines(pairs: Iterable[tuple[str, Any]]) -> None:
    pairs = list(pairs)
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {_cell(value, 200)}")
