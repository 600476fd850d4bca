"""Typed values from text people write: scalars (CSV cells, `key=value` filters) and
ISO 8601 times (sidecar dates, date filters). One rule each, so that ingest and search
read the same text the same way. Imports nothing of the product's but its errors, so
both ingest and search may use it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from assetdb.errors import FilterError


def parse_scalar(raw: str) -> Any:  # noqa: ANN401 - a JSON scalar or the text itself
    """'42' -> 42, '1.5' -> 1.5, 'true' -> True, '"7"' -> '7', 'red' -> 'red'.

    Used for CSV cells and for `key=value` filters alike, so that the two agree.
    Strings with leading zeros ('00123') stay strings: they are codes, not numbers.
    """
    text = raw.strip()
    if text in ("true", "false", "null") or (text.startswith('"') and text.endswith('"')):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    try:
        number = int(text)
        return number if str(number) == text.lstrip("+") else raw
    except ValueError:
        pass
    try:
        value = float(text)
        return value if text.lower() not in ("nan", "inf", "-inf", "infinity") else raw
    except ValueError:
        return raw


def parse_time(raw: object) -> datetime | None:
    """ISO 8601 ('2024-05-01', '2024-05-01T12:00', a trailing 'Z'); a time without a
    zone is UTC. None for None or ''. ValueError for anything else."""
    if raw is None or raw == "":
        return None
    value = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_when(raw: str | None, name: str) -> datetime | None:
    """A date filter's value; FilterError names the filter."""
    try:
        return parse_time(raw)
    except ValueError:
        raise FilterError(
            f"{name}: cannot read {raw!r} as a date (use ISO 8601: 2024-05-01 or "
            "2024-05-01T12:00)"
        ) from None
