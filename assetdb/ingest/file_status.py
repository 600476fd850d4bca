"""What a re-scan trusts without reading a file: its status (device, inode, size, mtime,
ctime) recorded in `asset_files` when its content was last read, beside the sha256 read.

sha256 stays the identity of a file's content; the status only says when reading it again
is needed, as git's index does. A file is not read again while its status is the one
recorded *and* its asset row still holds the content recorded with it (a row written
since, by a worker or a failed claim, is read again). The rules:

- ctime is compared too: a rewrite that puts mtime back (`touch -d`, `exiftool -P` in
  place) still moves ctime, which no one can set. chmod, chown, a new hard link, or a
  rename on most file systems move it as well: such a file is read once more, and its
  row is not rewritten when its content is the same.
- A file modified within RACY_NS before it was read is "racy" (git's racy-clean rule):
  on a file system with coarse times (FAT: 2 s) a second write in the same tick leaves
  mtime as it was. Its status is not recorded, so the next re-scan reads it again.
- A moved or renamed file is a new path, hence a new row: it is read (its vectors are
  copied from the identical content already embedded, without model work).
- Device numbers can change when a file system is mounted again (NFS, some FUSE): then
  each file is read once more. Reading is the safe side of every doubt.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, text

# The window of assetdb.files' in-process hash cache: FAT's 2 s is the coarsest tick in
# common use.
RACY_NS = 2_000_000_000
_U64 = 1 << 64


def _signed(value: int) -> int:
    """An unsigned 64-bit device or inode number as the bigint with the same bits."""
    return value - _U64 if value >= 1 << 63 else value


def status_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (_signed(st.st_dev), _signed(st.st_ino), st.st_size, st.st_mtime_ns,
            st.st_ctime_ns)


def recorded_key(row: Row[Any]) -> tuple[int, int, int, int, int] | None:
    if row.f_device is None:
        return None
    return (row.f_device, row.f_inode, row.f_size, row.f_mtime_ns, row.f_ctime_ns)


def is_racy(st: os.stat_result, read_at_ns: int) -> bool:
    return read_at_ns - st.st_mtime_ns < RACY_NS


def unchanged_since_read(row: Row[Any] | None, st: os.stat_result | None) -> bool:
    """The file at this row's uri is, by its status, the content the row holds."""
    return (row is not None and st is not None and recorded_key(row) == status_key(st)
            and row.f_sha256 == row.sha256 and row.bytes == st.st_size)


# Columns of the row's recorded status, for the query that reads the rows of a scan.
JOIN_COLUMNS = ("f.sha256 AS f_sha256, f.device AS f_device, f.inode AS f_inode, "
                "f.size AS f_size, f.mtime_ns AS f_mtime_ns, f.ctime_ns AS f_ctime_ns")
JOIN = "LEFT JOIN asset_files AS f ON f.asset_id = a.id"

# Written only where it changed: an unchanged file costs no write, here either.
_RECORD = text(
    """
    INSERT INTO asset_files AS f (asset_id, sha256, device, inode, size, mtime_ns, ctime_ns)
    SELECT a.id, v.sha256, v.device, v.inode, v.size, v.mtime_ns, v.ctime_ns
    FROM unnest(CAST(:uris AS text[]), CAST(:shas AS text[]), CAST(:devices AS bigint[]),
                CAST(:inodes AS bigint[]), CAST(:sizes AS bigint[]),
                CAST(:mtimes AS bigint[]), CAST(:ctimes AS bigint[]))
         AS v(uri, sha256, device, inode, size, mtime_ns, ctime_ns)
    JOIN assets AS a ON a.uri = v.uri
    ON CONFLICT (asset_id) DO UPDATE SET sha256 = EXCLUDED.sha256,
        device = EXCLUDED.device, inode = EXCLUDED.inode, size = EXCLUDED.size,
        mtime_ns = EXCLUDED.mtime_ns, ctime_ns = EXCLUDED.ctime_ns
    WHERE (f.sha256, f.device, f.inode, f.size, f.mtime_ns, f.ctime_ns)
          IS DISTINCT FROM (EXCLUDED.sha256, EXCLUDED.device, EXCLUDED.inode,
                            EXCLUDED.size, EXCLUDED.mtime_ns, EXCLUDED.ctime_ns)
    """
)

# A racy file's old status must not vouch for it either.
_FORGET = text(
    "DELETE FROM asset_files WHERE asset_id IN (SELECT id FROM assets WHERE uri = ANY(:uris))"
)


def record(conn: Connection, read: Sequence[tuple[Path, str | None, os.stat_result, int]],
           chunk: int = 5000) -> None:
    """Record (path, sha256 read, status before reading, when reading began) for files
    just read; racy ones are forgotten instead."""
    settled = [(p, sha, st) for p, sha, st, at in read if not is_racy(st, at)]
    racy = [str(p) for p, _, st, at in read if is_racy(st, at)]
    for i in range(0, len(settled), chunk):
        part = settled[i : i + chunk]
        keys = [status_key(st) for _, _, st in part]
        conn.execute(_RECORD, {
            "uris": [str(p) for p, _, _ in part], "shas": [sha for _, sha, _ in part],
            "devices": [k[0] for k in keys], "inodes": [k[1] for k in keys],
            "sizes": [k[2] for k in keys], "mtimes": [k[3] for k in keys],
            "ctimes": [k[4] for k in keys],
        })
    for i in range(0, len(racy), chunk):
        conn.execute(_FORGET, {"uris": racy[i : i + chunk]})
