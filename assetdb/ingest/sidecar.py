"""Sidecar metadata: JSON (a list of objects, or a mapping from path), JSONL or CSV.

Known keys fill title, description, tags and captured_at; every other key goes to the
`metadata` jsonb. Paths are resolved against the sidecar file's folder.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from assetdb.errors import SidecarError
from assetdb.text_values import parse_scalar, parse_time

PATH_KEYS = ("image_path", "path", "file", "filename", "file_name", "uri", "image")
TITLE_KEYS = ("title", "name")
DESCRIPTION_KEYS = ("description", "caption", "alt", "alt_text")
TAG_KEYS = ("tags", "keywords")
DATE_KEYS = ("captured_at", "captured", "date", "taken_at", "datetime")


@dataclass
class SidecarEntry:
    title: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    captured_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_datetime(raw: Any, where: str) -> datetime | None:  # noqa: ANN401
    try:
        return parse_time(raw)
    except ValueError:
        raise SidecarError(
            f"{where}: cannot read date {raw!r} (use ISO 8601, e.g. 2024-05-01)"
        ) from None


def _tags(raw: Any, where: str) -> list[str]:
    if isinstance(raw, str):
        parts = raw.replace(";", ",").replace("|", ",").split(",")
    elif isinstance(raw, list):
        parts = [str(p) for p in raw]
    else:
        raise SidecarError(f"{where}: tags must be a list or a comma-separated string")
    return [p.strip() for p in parts if p.strip()]


def _pick(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _entry(obj: dict[str, Any], where: str) -> SidecarEntry:
    known = set(PATH_KEYS + TITLE_KEYS + DESCRIPTION_KEYS + TAG_KEYS + DATE_KEYS)
    tags_raw = _pick(obj, TAG_KEYS)
    title, description = _pick(obj, TITLE_KEYS), _pick(obj, DESCRIPTION_KEYS)
    return SidecarEntry(
        title=None if title in (None, "") else str(title),
        description=None if description in (None, "") else str(description),
        tags=None if tags_raw in (None, "") else _tags(tags_raw, where),
        captured_at=parse_datetime(_pick(obj, DATE_KEYS), where),
        metadata={k: v for k, v in obj.items() if k not in known},
    )


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) pairs; each object carries its path under one of PATH_KEYS."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SidecarError(f"metadata file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SidecarError(f"cannot read metadata file {path}: {exc}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SidecarError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if isinstance(data, dict):
            items = []
            for key, value in data.items():
                if not isinstance(value, dict):
                    raise SidecarError(f"{path}: the value for {key!r} must be an object")
                items.append((f"{path}: {key}", {"image_path": key, **value}))
            return items
        if isinstance(data, list):
            return [(f"{path}: item {i + 1}", obj) for i, obj in enumerate(data)]
        raise SidecarError(f"{path}: expected a list of objects or a mapping from path")
    if suffix in (".jsonl", ".ndjson"):
        items = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise SidecarError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
        return items
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise SidecarError(f"{path}: empty CSV (a header row is required)")
        items = []
        for lineno, row in enumerate(reader, start=2):
            if None in row:
                raise SidecarError(f"{path}:{lineno}: more cells than header columns")
            cleaned = {
                k: (parse_scalar(v) if k not in TAG_KEYS + TITLE_KEYS + DESCRIPTION_KEYS else v)
                for k, v in row.items()
                if v not in (None, "")
            }
            items.append((f"{path}:{lineno}", cleaned))
        return items
    raise SidecarError(f"{path}: unknown metadata format {suffix!r} (use .json, .jsonl or .csv)")


def _resolver() -> Callable[[Path], Path]:
    """Path.resolve(), with each folder resolved once: resolving walks every component
    (an lstat each), which for a sidecar of 100,000 files cost more than the re-scan."""
    folders: dict[Path, Path] = {}

    def resolve(target: Path) -> Path:
        parent = target.parent
        if parent not in folders:
            folders[parent] = parent.resolve()
        joined = folders[parent] / target.name
        # The last component may itself be a link (or "..": a path to no file anyway).
        return joined.resolve() if target.name in ("", "..") or joined.is_symlink() else joined

    return resolve


def load_sidecar(path: Path) -> dict[Path, SidecarEntry]:
    """Parse a whole sidecar first, so a malformed one fails before anything is written."""
    entries: dict[Path, SidecarEntry] = {}
    resolve = _resolver()
    for where, obj in _records(path):
        if not isinstance(obj, dict):
            raise SidecarError(f"{where}: expected an object")
        ref = _pick(obj, PATH_KEYS)
        if not ref:
            raise SidecarError(f"{where}: no image path (one of: {', '.join(PATH_KEYS)})")
        target = Path(str(ref)).expanduser()
        if not target.is_absolute():
            target = path.parent / target
        entries[resolve(target)] = _entry(obj, where)
    return entries
