"""Open catalogue files without following symbolic links, and check them against their row.

A stored uri is a resolved path (ingest stores real paths), so a symlink anywhere in it
means the file was swapped after ingest: it is refused, not followed. Paths are opened
one component at a time with O_NOFOLLOW, from "/", so no step can be redirected, and the
caller reads from the returned descriptor, never by opening the path a second time.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from collections import OrderedDict

_CHUNK = 1 << 20
# Directories are opened only to walk through them: O_PATH (Linux) needs search
# permission alone, as plain path lookup does; elsewhere O_RDONLY.
_DIR_FLAGS = (getattr(os, "O_PATH", 0) or os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO must not hang the caller; fstat then refuses it.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)


class UnsafeFile(OSError):
    """The path is not a plain regular file reached without symlinks."""


def open_no_symlinks(path: str) -> int:
    """An fd for the regular file at absolute `path`; UnsafeFile if any step is a symlink.

    FileNotFoundError (and other OSErrors) pass through for missing or unreadable files.
    """
    if os.open not in os.supports_dir_fd:
        raise UnsafeFile("this platform cannot open files without following symlinks")
    norm = os.path.normpath(path)
    if not os.path.isabs(norm) or norm == os.sep:
        raise UnsafeFile(f"not an absolute file path: {path!r}")
    *dirs, name = norm.split(os.sep)[1:]
    dir_fd = os.open(os.sep, _DIR_FLAGS | _CLOEXEC)
    try:
        for part in dirs:
            dir_fd = _step(part, dir_fd)
        fd = _open_final(name, dir_fd)
    finally:
        os.close(dir_fd)
    return fd


def _step(part: str, dir_fd: int) -> int:
    """Open one directory below dir_fd (closing dir_fd); a symlink there is refused."""
    try:
        return os.open(part, _DIR_FLAGS | _CLOEXEC, dir_fd=dir_fd)
    except NotADirectoryError:
        raise UnsafeFile(f"{part!r} is a symlink or not a directory") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink under O_NOFOLLOW
            raise UnsafeFile(f"{part!r} is a symlink") from None
        raise
    finally:
        os.close(dir_fd)


def _open_final(name: str, dir_fd: int) -> int:
    try:
        fd = os.open(name, _FILE_FLAGS | _CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(f"{name!r} is a symlink") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{name!r} is not a regular file")
    return fd


def sha256_fd(fd: int) -> str:
    """The sha256 of the whole file behind fd (read with pread: the offset is untouched)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


# (dev, inode, size, mtime_ns, ctime_ns) -> sha256 of a file already hashed in this
# process. ctime is in the key because, unlike mtime, no one can set it back.
_verified: OrderedDict[tuple[int, ...], str] = OrderedDict()
_verified_lock = threading.Lock()
_VERIFIED_MAX = 20_000
# File times tick coarsely (a few ms): a write just after hashing can leave them as they
# were. So a file changed less than this long before it was hashed is not cached (the
# "racy git" rule); it is hashed again next time.
_RACY_NS = 2_000_000_000


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def content_sha256(fd: int) -> str:
    """sha256 of the open file, hashed once per (inode, size, times) in this process."""
    st = os.fstat(fd)
    key = _identity(st)
    with _verified_lock:
        known = _verified.get(key)
        if known is not None:
            _verified.move_to_end(key)
            return known
    hashed_at = time.time_ns()
    digest = sha256_fd(fd)
    if hashed_at - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
        return digest
    with _verified_lock:
        _verified[key] = digest
        while len(_verified) > _VERIFIED_MAX:
            _verified.popitem(last=False)
    return digest


def open_verified(path: str, sha256: str | None, size: int | None) -> int:
    """An fd for `path` only if it is reached without symlinks, is a regular file, and
    holds exactly the bytes recorded (size and sha256); UnsafeFile otherwise."""
    if not sha256 or size is None:
        raise UnsafeFile("no recorded content to check the file against")
    fd = open_no_symlinks(path)
    try:
        if os.fstat(fd).st_size != size or content_sha256(fd) != sha256:
            raise UnsafeFile("the file's content differs from what was ingested")
    except BaseException:
        os.close(fd)
        raise
    return fd
