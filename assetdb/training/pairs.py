"""(image path, caption) pairs from JSONL or CSV, for fine-tuning and evaluation."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from assetdb.errors import AssetdbError

T = TypeVar("T")

IMAGE_KEYS = ("image", "image_path", "path", "file", "filename", "file_name")
CAPTION_KEYS = ("caption", "text", "description", "title")


LANGUAGE_KEYS = ("language", "lang")


@dataclass(frozen=True)
class Pair:
    image: Path
    caption: str
    language: str | None = None  # optional: `assetdb eval --pairs` reports each apart


def _pick(row: dict, keys: tuple[str, ...]) -> object:
    for key in keys:
        if row.get(key) not in (None, ""):
            return row[key]
    return None


def read_rows(path: Path, what: str = "pairs", *, tsv: bool = False
              ) -> list[tuple[str, dict]]:
    """(where, row) for each row of a .jsonl or .csv file (and .tsv where allowed);
    `where` is path:line for error messages."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssetdbError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise AssetdbError(f"{path}:{n}: each line must be a JSON object")
            out.append((f"{path}:{n}", row))
        return out
    if suffix == ".csv" or (tsv and suffix == ".tsv"):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            return [(f"{path}:{n}", dict(row)) for n, row in enumerate(reader, 2)]
    kinds = ".jsonl, .csv or .tsv" if tsv else ".jsonl or .csv"
    raise AssetdbError(f"{path}: {what} must be a {kinds} file")


def load_pairs(path: Path) -> list[Pair]:
    """Read pairs; image paths are relative to the pairs file's folder. Every image must
    exist and every caption be non-empty, or nothing is returned (one clear error)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AssetdbError(f"pairs file not found: {path}")
    pairs: list[Pair] = []
    for where, row in read_rows(path):
        image, caption = _pick(row, IMAGE_KEYS), _pick(row, CAPTION_KEYS)
        if image is None or caption is None:
            raise AssetdbError(
                f"{where}: needs an image path ({'/'.join(IMAGE_KEYS[:2])}) and a caption "
                f"({'/'.join(CAPTION_KEYS[:2])})"
            )
        file = (path.parent / str(image)).expanduser()
        if not file.is_file():
            raise AssetdbError(f"{where}: image not found: {file}")
        language = _pick(row, LANGUAGE_KEYS)
        pairs.append(Pair(file.resolve(), str(caption).strip(),
                          str(language).strip().lower() if language is not None else None))
    if not pairs:
        raise AssetdbError(f"{path}: no pairs")
    return pairs


def split_by(items: Sequence[T], key: Callable[[T], str], fraction: float, seed: int,
             noun: str) -> tuple[list[T], list[T]]:
    """A seeded split by key, so that no key sits on both sides (no image of the training
    set in validation, no English sentence of a held-out translation in training)."""
    if not 0 < fraction < 1:
        raise AssetdbError(f"the validation fraction must lie between 0 and 1, got {fraction}")
    keys = sorted({key(item) for item in items})
    random.Random(seed).shuffle(keys)
    n_val = max(1, round(len(keys) * fraction))
    if n_val >= len(keys):
        raise AssetdbError(f"too few {noun} ({len(keys)}) to hold out a validation split")
    held = set(keys[:n_val])
    return ([item for item in items if key(item) not in held],
            [item for item in items if key(item) in held])


def split_pairs(
    pairs: Sequence[Pair], val_fraction: float, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """A seeded split by image, so no image sits on both sides."""
    return split_by(pairs, lambda p: p.image, val_fraction, seed, "images")
