"""Turn PATH arguments (files, folders, globs) into the files to ingest.

Only files of a registered kind are taken (by suffix, assetdb.kinds: images, HEIC/AVIF,
RAW, video, PDF and SVG, and what plugins add); anything else is skipped with its reason,
whether found in a folder or named on the command line, so an .html never becomes an
asset.
Symlinks are not followed out of the roots given: a folder argument is the root of its
walk, a file (or folder) argument that is itself a symlink must point inside the folder
that holds it, and a glob match must stay inside the folder above the pattern's first
wildcard. A symlink that stays inside its root is followed and stored under its target's
real path; one that leaves is skipped, unless follow_symlinks. Every stored path is a
real path (no symlink in it), which is what the API requires before it serves a file
(assetdb.files).

Every path given or walked is accounted for: taken, or skipped with its reason. A walk
skips hidden names (a leading dot: files, and folders without walking them) and, without
--recursive, sub-folders; a hidden path named on the command line is taken. A second path
to a file already taken (a symlink inside the root, or a path named twice) is skipped as
"same file as <real path>", so no link silently collapses into its target's row. Broken
symlinks, FIFOs and devices (never opened: reading them could hang) and names that are not
valid UTF-8 (the database stores text) are skipped too.
"""

from __future__ import annotations

import glob
import mimetypes
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from assetdb.kinds.registry import kind_for_path


@dataclass(frozen=True)
class Skipped:
    uri: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"uri": self.uri, "reason": self.reason}


@dataclass
class ScanResult:
    files: list[Path] = field(default_factory=list)  # real UTF-8 paths, in walk order
    # The status of each file taken, from the stat the scan makes anyway: a re-scan
    # compares it with the one recorded when the file was last read.
    stats: dict[Path, os.stat_result] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # arguments that matched nothing
    # Not images, symlinks out, hidden, sub-folders without --recursive, duplicates, ...
    skipped: list[Skipped] = field(default_factory=list)


def _has_glob(arg: str) -> bool:
    return any(ch in arg for ch in "*?[")


def not_an_image(path: Path) -> str | None:
    """Why the file is not taken (no kind claims its suffix), or None if it is."""
    if kind_for_path(path) is not None:
        return None
    return f"not an image: {mimetypes.guess_type(path.name)[0] or 'unknown type'}"


def _inside(real: Path, root: Path) -> bool:
    return real == root or real.is_relative_to(root)


def _outside(root: Path) -> str:
    return f"symlink to a path outside {root} (--follow-symlinks follows it)"


def shown(path: str | Path) -> str:
    """A path as text that can be printed and stored: bytes of a file name that are not
    UTF-8 (kept by Python as surrogates) are written as backslash escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


HIDDEN = "hidden (name it to ingest it)"
HIDDEN_FOLDER = "hidden folder (name it to ingest it)"
NOT_RECURSIVE = "folder (--recursive descends into it)"
BROKEN = "broken symlink"
NOT_UTF8 = "file name is not valid UTF-8 (rename it to store it)"
TWICE = "named more than once"


class _Scanner:
    """Every path given or walked ends in `files` or in `skipped` with its reason."""

    def __init__(self, recursive: bool, follow_symlinks: bool) -> None:
        self.recursive = recursive
        self.follow = follow_symlinks
        self.result = ScanResult()
        self.seen: dict[Path, str] = {}  # real path -> the path that first reached it
        self.walked: set[Path] = set()

    def skip(self, path: str | Path, reason: str) -> None:
        self.result.skipped.append(Skipped(shown(path), reason))

    def file(self, given: str | Path, real: Path) -> None:
        """Take a file reached without leaving its root; `real` is its resolved path."""
        try:
            status = os.stat(real)
        except OSError:
            self.skip(given, "cannot be read")
            return
        if not stat.S_ISREG(status.st_mode):  # a FIFO or a device is never opened: it could hang
            self.skip(given, "not a regular file")
        elif reason := not_an_image(real):
            self.skip(given, reason)
        elif not _utf8(real):  # the database stores text; such a name cannot round-trip
            self.skip(given, NOT_UTF8)
        else:
            self.result.stats[real] = status
            self.take(str(given), real)

    def take(self, given: str, real: Path) -> None:
        """One row per real file: a second path to it (a symlink, or a path named twice)
        is skipped, and the message names the file that holds the row."""
        first = self.seen.get(real)
        if first is None:
            self.seen[real] = given
            self.result.files.append(real)
        elif given == first:
            self.skip(given, TWICE)
        elif given == str(real):  # the file itself, reached first through a symlink
            self.seen[real] = given
            self.skip(first, f"same file as {real}")
        else:
            self.skip(given, f"same file as {real}")

    def argument(self, arg: str, glob_root: Path | None = None) -> None:
        """A command-line path: a folder is a root; a symlink must point inside the folder
        that holds it. A glob match must also stay inside the pattern's fixed folder.
        Hidden paths named (not walked) are taken."""
        path = Path(os.path.abspath(Path(arg).expanduser()))
        if not path.exists():  # it lexists: a symlink to nothing (or a loop)
            self.skip(path, BROKEN)
            return
        real = path.resolve()
        holder = glob_root or path.parent.resolve()
        if (path.is_symlink() or glob_root) and not self.follow and not _inside(real, holder):
            self.skip(path, _outside(holder))
            return
        if real.is_dir():
            self.walk(real, real, path)
        else:
            self.file(path, real)

    def walk(self, folder: Path, root: Path, given: str | Path) -> None:
        if folder in self.walked:  # a followed symlink loop, or a folder named twice
            self.skip(given, TWICE if Path(given) == folder else f"same folder as {folder}")
            return
        self.walked.add(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.skip(given, f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            self.entry(entry, root)

    def entry(self, entry: os.DirEntry[str], root: Path) -> None:
        if entry.name.startswith("."):  # .git, .thumbnails, ._IMG_1.jpg: named, they count
            folder = entry.is_dir(follow_symlinks=False)
            self.skip(entry.path, HIDDEN_FOLDER if folder else HIDDEN)
        elif entry.is_symlink():
            self.link(entry, root)
        elif entry.is_dir(follow_symlinks=False):
            if self.recursive:
                self.walk(Path(entry.path), root, entry.path)
            else:
                self.skip(entry.path, NOT_RECURSIVE)
        else:
            self.file(entry.path, Path(entry.path))

    def link(self, entry: os.DirEntry[str], root: Path) -> None:
        if not os.path.exists(entry.path):
            self.skip(entry.path, BROKEN)
            return
        real = Path(entry.path).resolve()
        inside = _inside(real, root)
        if not inside and not self.follow:
            self.skip(entry.path, _outside(root))
        elif not real.is_dir():
            self.file(entry.path, real)
        elif not self.recursive:
            self.skip(entry.path, NOT_RECURSIVE)
        elif inside:  # the walk reaches that folder under its real path
            self.skip(entry.path, f"same folder as {real}")
        else:
            self.walk(real, root, entry.path)


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
                scanner.result.missing.append(shown(arg))
            for match in matches:
                scanner.argument(match, _glob_root(pattern))
        elif os.path.lexists(Path(arg).expanduser()):
            scanner.argument(arg)
        else:
            scanner.result.missing.append(shown(arg))
    return scanner.result
