"""Text, image and by-asset search: encode the query, then one SQL query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import Connection, text

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect_read
from assetdb.embedding.encoder import Encoder
from assetdb.embedding.images import load_image, load_image_bytes
from assetdb.errors import AssetdbError, FilterError
from assetdb.search import MAX_K
from assetdb.search.filters import Filters, check_min_similarity
from assetdb.search.moments import with_moments
from assetdb.search.query import Hit, nearest


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise FilterError(f"k must lie between 1 and {MAX_K}, got {k}")


def search_vector(
    settings: Settings,
    vector: np.ndarray,
    *,
    k: int = 10,
    filters: Filters | None = None,
    exclude_ids: tuple[int, ...] = (),
    model: str | None = None,
    min_similarity: float | None = None,
) -> list[Hit]:
    """`model`: the model that made `vector`; checked against the database's in the same
    transaction as the search, so a model switch (`assetdb reembed`) in between gives a
    clear ModelError, never a dimension error or a silent mismatch. `min_similarity`
    (-1..1) leaves out results below it."""
    _check_k(k)
    check_min_similarity(min_similarity)
    with connect_read(settings) as conn:
        meta = schema.require_meta(conn)
        if model is not None and model != meta["model"]:
            schema.check_model(meta, model, len(vector), followed=not settings.model_is_explicit)
        return _nearest(settings, conn, meta, vector, k, filters, exclude_ids, min_similarity)


def _nearest(settings: Settings, conn: Connection, meta: dict[str, str], vector: np.ndarray,
             k: int, filters: Filters | None, exclude_ids: tuple[int, ...],
             min_similarity: float | None) -> list[Hit]:
    hits = nearest(
        conn,
        vector,
        k=k,
        filters=filters or Filters(),
        model=meta["model"],
        exclude_ids=exclude_ids,
        exact_max_rows=settings.exact_search_max_rows,
        ef_search=settings.hnsw_ef_search,
        min_similarity=min_similarity,
    )
    # Videos and documents are also found by their best moment (assetdb.search.moments).
    return with_moments(conn, hits, vector, k=k, filters=filters or Filters(),
                        model=meta["model"], exclude_ids=exclude_ids,
                        min_similarity=min_similarity, ef_search=settings.hnsw_ef_search)


def _checked(settings: Settings, encoder: Encoder) -> None:
    with connect_read(settings) as conn:
        schema.check_model(schema.require_meta(conn), encoder.name, encoder.dimension,
                           followed=not settings.model_is_explicit)


def search_text(
    settings: Settings, encoder: Encoder, query: str, *, k: int = 10,
    filters: Filters | None = None, min_similarity: float | None = None,
) -> list[Hit]:
    if not query.strip():
        raise FilterError("the search text is empty")
    _check_k(k)
    check_min_similarity(min_similarity)
    _checked(settings, encoder)
    return search_vector(settings, encoder.encode_texts([query])[0], k=k, filters=filters,
                         model=encoder.name, min_similarity=min_similarity)


def search_image(
    settings: Settings, encoder: Encoder, image: Path | bytes | Image.Image, *, k: int = 10,
    filters: Filters | None = None, min_similarity: float | None = None,
) -> list[Hit]:
    """Search by an example image (a file, its bytes, or an image already decoded).

    Nothing is left out: an asset with the same content (the file itself, if it is
    catalogued) comes first at similarity 1.0, whether the image comes as a file (CLI)
    or as an upload (API). Only `similar_to_asset` leaves out its query asset."""
    _check_k(k)
    check_min_similarity(min_similarity)
    _checked(settings, encoder)
    if isinstance(image, Image.Image):
        img = image
    elif isinstance(image, bytes):
        img = load_image_bytes(image, encoder.image_size)
    else:
        img = load_image(image, encoder.image_size)
    vector = encoder.encode_images([img])[0]
    return search_vector(settings, vector, k=k, filters=filters, model=encoder.name,
                         min_similarity=min_similarity)


def asset_vector(settings: Settings, asset_id: int) -> np.ndarray:
    with connect_read(settings) as conn:
        return _asset_vector(conn, schema.require_meta(conn), asset_id)


def _asset_vector(conn: Connection, meta: dict[str, str], asset_id: int) -> np.ndarray:
    row = conn.execute(
        text("SELECT status, error, embedding, embedding_model FROM assets WHERE id = :i"),
        {"i": asset_id},
    ).first()
    if row is None:
        raise AssetdbError(f"no asset with id {asset_id}")
    if row.status != "ready" or row.embedding is None:
        detail = f": {row.error}" if row.error else ""
        raise AssetdbError(f"asset {asset_id} has no embedding (status {row.status}{detail})")
    if row.embedding_model != meta["model"]:
        raise AssetdbError(
            f"asset {asset_id} was embedded with {row.embedding_model!r}, not the database's "
            f"model {meta['model']!r}; re-embed it first"
        )
    return np.asarray(row.embedding, dtype=np.float32)


def similar_to_asset(
    settings: Settings, asset_id: int, *, k: int = 10, filters: Filters | None = None,
    min_similarity: float | None = None,
) -> list[Hit]:
    """Assets like a stored one (no model needed); the asset itself is left out."""
    _check_k(k)
    check_min_similarity(min_similarity)
    # One transaction: the stored vector and the search use the same model, even when a
    # model switch commits meanwhile.
    with connect_read(settings) as conn:
        meta = schema.require_meta(conn)
        vector = _asset_vector(conn, meta, asset_id)
        return _nearest(settings, conn, meta, vector, k, filters, (asset_id,), min_similarity)
