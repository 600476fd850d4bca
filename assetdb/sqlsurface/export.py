"""Export searchable assets (ids, uris, metadata, embeddings) for pandas, polars, DuckDB.

Rows are the ones a search could return (status 'ready', the database's model, the
filters of the one filter model), streamed from one REPEATABLE READ snapshot, in id
order, so that the row count, the npy matrix and its companion file always agree.

- parquet: one file; tags as list<string>, metadata as a JSON string, the embedding as
  fixed_size_list<float32>[D] (DuckDB: FLOAT[D]).
- csv: one file; tags, metadata and embedding as JSON text.
- npy: PATH holds the (N, D) float32 matrix; PATH with suffix .csv holds the other
  columns for the same rows in the same order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select, text

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect_read
from assetdb.db.models import Asset
from assetdb.errors import AssetdbError
from assetdb.search.filters import Filters
from assetdb.search.query import A, where_clauses

FORMATS = ("parquet", "csv", "npy")
COLUMNS = ("id", "uri", "sha256", "kind", "mime", "width", "height", "bytes", "title",
           "description", "tags", "metadata", "captured_at", "created_at", "embedding_model")
BATCH = 2_000


@dataclass
class ExportReport:
    rows: int
    dimension: int
    files: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _select(filters: Filters, model: str):  # noqa: ANN202 - Select
    columns = [A[name] for name in COLUMNS] + [A.embedding]
    return select(*columns).where(*where_clauses(filters, model)).order_by(A.id)


def _batches(conn: Connection, filters: Filters, model: str) -> Iterator[list[Any]]:
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
        _select(filters, model))
    yield from result.partitions()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _flat_row(row: Any) -> dict[str, Any]:
    """A row's non-vector columns as plain text-friendly values (csv, npy companion)."""
    out = {name: getattr(row, name) for name in COLUMNS}
    out["tags"] = _json(list(row.tags or []))
    out["metadata"] = _json(row.metadata)
    out["captured_at"], out["created_at"] = _iso(row.captured_at), _iso(row.created_at)
    return out


def check_format(fmt: str, out: Path, force: bool = False) -> None:
    if fmt not in FORMATS:
        raise AssetdbError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "npy" and out.suffix != ".npy":
        # the companion file is OUT with .csv: a path without .npy could collide with it
        raise AssetdbError(f"an npy export wants a path ending in .npy, got {out.name!r}")
    if out.exists() and out.is_dir():
        raise AssetdbError(f"{out} is a folder; --out wants a file path")
    if not out.parent.exists():
        raise AssetdbError(f"the folder {out.parent} does not exist")
    companion = out.with_suffix(".csv")
    if fmt == "npy" and companion.exists() and not force:
        # OUT was named; its companion was not: never replace it unasked.
        raise AssetdbError(f"{companion} exists: an npy export writes its other columns "
                           "there; move it away, or pass --force to replace it")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise AssetdbError(
                "parquet export needs pyarrow: pip install 'assetdb[export]' "
                "(or use --format csv or npy)"
            ) from None


def export(
    settings: Settings, filters: Filters, fmt: str, out: Path,
    *, on_total: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> ExportReport:
    """Write the matching assets to OUT in FMT; returns the row count and files written.
    An npy export's companion .csv is replaced only with force."""
    check_format(fmt, out, force)
    with connect_read(settings) as conn:  # a long read: the replica's, when there is one
        # First statement of the transaction: one snapshot for the count and the rows.
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        meta = schema.require_meta(conn)
        model, dim = meta["model"], int(meta["dimension"])
        total = conn.execute(
            select(func.count()).select_from(Asset.__table__).where(*where_clauses(filters, model))
        ).scalar_one()
        if on_total:
            on_total(total)
        batches = _batches(conn, filters, model)
        tick = progress or (lambda _n: None)
        tmp = out.with_name(out.name + ".part")
        try:
            if fmt == "parquet":
                files = _write_parquet(batches, tmp, dim, tick)
            elif fmt == "csv":
                files = _write_csv(batches, tmp, tick)
            else:
                files = _write_npy(batches, tmp, out.with_suffix(".csv"), total, dim, tick)
            files += _write_frames(conn, filters, model, dim, out)
            tmp.replace(out)  # a failed export leaves no half-written file at OUT
        finally:
            tmp.unlink(missing_ok=True)
    return ExportReport(rows=total, dimension=dim, files=[str(out), *files])


def _write_frames(conn: Connection, filters: Filters, model: str, dim: int,
                  out: Path) -> list[str]:
    """The moments of the exported videos and documents (asset_frames), beside OUT:
    OUT.frames.npy (one float32 row a frame) and OUT.frames.jsonl (asset id, uri,
    position, seconds, page of each row, in the same order). None: no file."""
    from assetdb.db.media_models import AssetFrame

    F = AssetFrame.__table__.c  # noqa: N806
    q = (select(F.asset_id, A.uri, F.position, F.seconds, F.page, F.embedding)
         .join(Asset.__table__, A.id == F.asset_id)
         .where(F.embedding_model == model, *where_clauses(filters, model))
         .order_by(F.asset_id, F.position))
    rows = conn.execute(q).all()
    if not rows:
        return []
    vectors = out.with_name(out.stem + ".frames.npy")
    index = out.with_name(out.stem + ".frames.jsonl")
    np.save(vectors, np.stack([np.asarray(r.embedding, dtype=np.float32) for r in rows])
            .reshape(len(rows), dim))
    with index.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"asset_id": r.asset_id, "uri": r.uri, "position": r.position,
                                 "seconds": r.seconds, "page": r.page}) + "\n")
    return [str(vectors), str(index)]


def _write_csv(batches: Iterator[list[Any]], path: Path, tick: Callable[[int], None]) -> list[str]:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, "embedding"])
        writer.writeheader()
        for batch in batches:
            for row in batch:
                writer.writerow({**_flat_row(row), "embedding": _json(
                    np.asarray(row.embedding, dtype=np.float32).tolist())})
            tick(len(batch))
    return []


def _write_npy(batches: Iterator[list[Any]], path: Path, companion: Path, total: int, dim: int,
               tick: Callable[[int], None]) -> list[str]:
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(total, dim))
    tmp_companion = companion.with_name(companion.name + ".part")
    done = 0
    try:
        with tmp_companion.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
            writer.writeheader()
            for batch in batches:
                for row in batch:
                    matrix[done] = np.asarray(row.embedding, dtype=np.float32)
                    writer.writerow(_flat_row(row))
                    done += 1
                tick(len(batch))
        matrix.flush()
        del matrix
        if done != total:  # cannot happen in one snapshot; guard the pairing anyway
            raise AssetdbError(f"export read {done} rows, expected {total}")
        tmp_companion.replace(companion)
    finally:
        tmp_companion.unlink(missing_ok=True)
    return [str(companion)]


def _write_parquet(batches: Iterator[list[Any]], path: Path, dim: int,
                   tick: Callable[[int], None]) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema_ = pa.schema([
        ("id", pa.int64()), ("uri", pa.string()), ("sha256", pa.string()),
        ("kind", pa.string()), ("mime", pa.string()), ("width", pa.int32()),
        ("height", pa.int32()), ("bytes", pa.int64()), ("title", pa.string()),
        ("description", pa.string()), ("tags", pa.list_(pa.string())),
        ("metadata", pa.string()), ("captured_at", pa.timestamp("us", tz="UTC")),
        ("created_at", pa.timestamp("us", tz="UTC")), ("embedding_model", pa.string()),
        ("embedding", pa.list_(pa.float32(), dim)),
    ])
    with pq.ParquetWriter(path, schema_) as writer:
        wrote = False
        for batch in batches:
            columns: dict[str, list[Any]] = {name: [] for name in schema_.names}
            for row in batch:
                for name in COLUMNS:
                    columns[name].append(getattr(row, name))
                columns["tags"][-1] = list(row.tags or [])
                columns["metadata"][-1] = _json(row.metadata)
            vectors = np.asarray([np.asarray(r.embedding, dtype=np.float32) for r in batch],
                                 dtype=np.float32).reshape(-1)
            arrays = [pa.array(columns[name], type=schema_.field(name).type)
                      for name in COLUMNS]
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(vectors), dim))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema_))
            wrote = True
            tick(len(batch))
        if not wrote:
            writer.write_table(schema_.empty_table())
    return []
