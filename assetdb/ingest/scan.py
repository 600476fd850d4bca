"""Turn PATH arguments (files, folders, globs) into the files to ingest."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from assetdb.embedding.images import IMAGE_SUFFIXES

_HASH_CHUNK = 1 << 20


@dataclass
class ScanResult:
    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # arguments that matched nothing
    skipped: list[Path] = field(default_factory=list)  # files in folders that are not images


def _has_glob(arg: str) -> bool:
    return any(ch in arg for ch in "*?[")


def scan(paths: Iterable[str], recursive: bool = False) -> ScanResult:
    """Files named explicitly are always taken (a non-image one then fails with its error);
    files found in folders are taken only if their suffix is an image type."""
    result = ScanResult()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            result.files.append(resolved)

    def walk(folder: Path) -> None:
        children = folder.rglob("*") if recursive else folder.iterdir()
        for child in sorted(children):
            if child.is_file() and not child.name.startswith("."):
                if child.suffix.lower() in IMAGE_SUFFIXES:
                    add(child)
                else:
                    result.skipped.append(child)

    for arg in paths:
        if _has_glob(arg) and not Path(arg).exists():
            matches = sorted(glob.glob(arg, recursive=recursive))
            if not matches:
                result.missing.append(arg)
            for match in matches:
                p = Path(match)
                walk(p) if p.is_dir() else add(p)
            continue
        p = Path(arg).expanduser()
        if p.is_dir():
            walk(p)
        elif p.exists():
            add(p)
        else:
            result.missing.append(arg)
    return result


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
