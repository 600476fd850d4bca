"""Turn PATH arguments (files, folders, globs) into the files to ingest.

Only image files are taken (by suffix: IMAGE_SUFFIXES); anything else is skipped with
its reason, whether found in a folder or named on the command line, so an .html or .svg
never becomes an asset. Symlinks are not followed out of the roots given: a folder
argument is the root of its walk, a file (or folder) argument that is itself a symlink
must point inside the folder that holds it, and a glob match must stay inside the folder
above the pattern's first wildcard. A symlink that stays inside its
root is followed and stored under its target's real path; one that leaves is skipped,
unless follow_symlinks. Every stored path is a real path (no symlink in it), which is
what the API requires before it serves a file (assetdb.files).
"""

from __future__ import annotations

import glob
import mimetypes
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from assetdb.embedding.images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Skipped:
    uri: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "reason": self.reason}


@dataclass
class ScanResult:
    files: list[Path] = field(default_factory=list)  # real paths, in walk order
    missing: list[str] = field(default_factory=list)  # arguments that matched nothing
    skipped: list[Skipped] = field(default_factory=list)  # not images, or symlinks out


def _has_glob(arg: str) -> bool:
    return any(ch in arg for ch in "*?[")


def not_an_image(path: Path) -> str | None:
    """Why the file is not taken as an image (by its suffix), or None if it is."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return None
    return f"not an image: {mimetypes.guess_type(path.name)[0] or 'unknown type'}"


def _inside(real: Path, root: Path) -> bool:
    return real == root or real.is_relative_to(root)


def _outside(root: Path) -> str:
    return f"symlink to a path outside {root} (--follow-symlinks follows it)"


class _Scanner:
    def __init__(self, recursive: bool, follow_symlinks: bool) -> None:
        self.recursive = recursive
        self.follow = follow_symlinks
        self.result = ScanResult()
        self.seen: set[Path] = set()
        self.walked: set[Path] = set()

    def skip(self, path: str | Path, reason: str) -> None:
        self.result.skipped.append(Skipped(str(path), reason))

    def file(self, shown: str | Path, real: Path) -> None:
        """Take a file reached without leaving its root; `real` is its resolved path."""
        try:
            mode = os.stat(real).st_mode
        except OSError:
            self.skip(shown, "cannot be read")
            return
        if not stat.S_ISREG(mode):
            self.skip(shown, "not a regular file")
        elif reason := not_an_image(real):
            self.skip(shown, reason)
        elif real not in self.seen:
            self.seen.add(real)
            self.result.files.append(real)

    def argument(self, arg: str, glob_root: Path | None = None) -> None:
        """A command-line path: a folder is a root; a symlink must point inside the folder
        that holds it. A glob match must also stay inside the pattern's fixed folder."""
        path = Path(os.path.abspath(Path(arg).expanduser()))
        real = path.resolve()
        holder = glob_root or path.parent.resolve()
        if (path.is_symlink() or glob_root) and not self.follow and not _inside(real, holder):
            self.skip(path, _outside(holder))
            return
        if real.is_dir():
            self.walk(real, real)
        else:
            self.file(path, real)

    def walk(self, folder: Path, root: Path) -> None:
        if folder in self.walked:  # a followed symlink loop, or a folder named twice
            return
        self.walked.add(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.skip(folder, f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.is_symlink():
                self.link(entry, root)
            elif entry.is_dir(follow_symlinks=False):
                if self.recursive:
                    self.walk(Path(entry.path), root)
            elif not entry.name.startswith("."):
                self.file(entry.path, Path(entry.path))

    def link(self, entry: os.DirEntry[str], root: Path) -> None:
        real = Path(entry.path).resolve()
        inside = _inside(real, root)
        if not inside and not self.follow:
            if not entry.name.startswith("."):
                self.skip(entry.path, _outside(root))
        elif real.is_dir():
            # A folder inside the root is walked under its real path anyway.
            if self.recursive and not inside:
                self.walk(real, root)
        elif not entry.name.startswith("."):
            self.file(entry.path, real)


def _glob_root(pattern: str) -> Path:
    """The real folder above a pattern's first wildcard: what a match must stay inside
    (a symlinked folder matched by `*` can point anywhere)."""
    fixed: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if _has_glob(part):
            break
        fixed.append(part)
    return Path(*fixed).resolve()


def scan(paths: Iterable[str], recursive: bool = False,
         follow_symlinks: bool = False) -> ScanResult:
    """The image files to ingest, as real paths, and what was skipped and why."""
    scanner = _Scanner(recursive, follow_symlinks)
    for arg in paths:
        if _has_glob(arg) and not os.path.lexists(arg):
            pattern = os.path.abspath(os.path.expanduser(arg))
            matches = sorted(glob.glob(pattern, recursive=recursive))
            if not matches:
                scanner.result.missing.append(arg)
            for match in matches:
                scanner.argument(match, _glob_root(pattern))
        elif os.path.lexists(Path(arg).expanduser()):
            scanner.argument(arg)
        else:
            scanner.result.missing.append(arg)
    return scanner.result
