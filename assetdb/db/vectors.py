"""The one vector codec: how pgvector's `vector` values reach Python, built on pgvector's
own types (its psycopg loaders, `Vector.from_binary`, its SQLAlchemy column type).

The product works on float32 numpy arrays; the analysts' SQL surface gives plain float
lists (what JSON and tables print).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pgvector import Vector
from pgvector.sqlalchemy import Vector as VectorType


def to_numpy(value: Vector) -> np.ndarray:
    return np.asarray(value.to_numpy(), dtype=np.float32)


def to_list(value: Vector) -> list[float]:
    return value.to_list()


def from_binary(data: bytes) -> np.ndarray:
    """A vector in PostgreSQL's binary form (`vector_send`, binary COPY) as float32."""
    return to_numpy(Vector.from_binary(data))


def register_numpy_vectors(dbapi_conn: Any) -> bool:  # noqa: ANN401 - a psycopg connection
    """numpy arrays bind as `vector`, and `vector` values load as float32 numpy arrays."""
    return _register(dbapi_conn, to_numpy, with_other_types=False)


def register_list_vectors(dbapi_conn: Any) -> bool:  # noqa: ANN401 - a psycopg connection
    """For analysts' results: `vector` values load as float lists; halfvec, bit and
    sparsevec as pgvector's own types."""
    return _register(dbapi_conn, to_list, with_other_types=True)


def _register(dbapi_conn: Any, convert: Callable[[Vector], Any],  # noqa: ANN401
              *, with_other_types: bool) -> bool:
    """False, registering nothing, before `assetdb init` created the extension. Leaves no
    transaction open on the connection."""
    from pgvector.psycopg import register_vector
    from pgvector.psycopg.vector import VectorBinaryLoader, VectorLoader, register_vector_info
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(dbapi_conn, "vector")
    if info is not None:
        if with_other_types:
            register_vector(dbapi_conn)
        else:
            register_vector_info(dbapi_conn, info)

        class Loader(VectorLoader):
            def load(self, data):  # noqa: ANN001, ANN201
                return convert(super().load(data))

        class BinaryLoader(VectorBinaryLoader):
            def load(self, data):  # noqa: ANN001, ANN201
                return convert(super().load(data))

        dbapi_conn.adapters.register_loader(info.oid, Loader)
        dbapi_conn.adapters.register_loader(info.oid, BinaryLoader)
    dbapi_conn.rollback()
    return info is not None


class NumpyVector(VectorType):
    """pgvector's column type, loading values as float32 numpy arrays.

    Connections made by assetdb.db.engine already load `vector` values as numpy; this
    keeps SQLAlchemy's result processing from parsing them a second time as text.
    """

    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> Any:  # noqa: ANN401
        parent = super().result_processor(dialect, coltype)

        def process(value: Any) -> Any:  # noqa: ANN401
            if value is None or isinstance(value, np.ndarray):
                return value
            return np.asarray(parent(value), dtype=np.float32)

        return process


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form, '[0.1,-0.2,...]': shortest digits that round-trip float32."""
    values = np.asarray(vector, dtype=np.float32)
    return "[" + ",".join(np.format_float_positional(v, unique=True, trim="-")
                          for v in values) + "]"
