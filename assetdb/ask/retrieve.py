"""Retrieval for `assetdb ask`: which catalogue assets become the sources.

By the user's image (image -> image, on the CLIP image vectors: no lossy captioning), by
a catalogued asset's stored vector, or else by the question's text. The text search is
called in one place (`_text_hits`), so that a hybrid (keyword + vector) search can take
its place when the catalogue has one.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assetdb.ask.pack import ContextPack, QueryImage, Source, chosen_metadata
from assetdb.catalog.assets import AssetNotFound, get_asset
from assetdb.errors import AssetdbError, FilterError
from assetdb.search.filters import Filters

if TYPE_CHECKING:
    from PIL import Image

    from assetdb.catalog.catalogue import Catalog
    from assetdb.embedding.encoder import Encoder

DEFAULT_K = 2
MAX_K = 10  # every source's text and image leave the machine: keep the pack small
MAX_QUESTION_CHARS = 2000
# Decoded as an upload is, at a fixed draft size, so that the CLI's file and the API's
# upload of the same bytes give the same pixels, hence the same vector and the same pack.
QUERY_DECODE_MIN_SIZE = 224


class AskError(AssetdbError):
    """A question that cannot be asked or answered; the message says why."""


class NothingFound(AskError):
    """No asset passes the filters (or the catalogue is empty)."""


def check_question(question: str, k: int) -> str:
    """The question, stripped; a clear error for an empty or overlong one, or a bad k."""
    question = (question or "").strip()
    if not question:
        raise FilterError("the question is empty: ask something, e.g. "
                          "\"What is the part number of this item?\"")
    if len(question) > MAX_QUESTION_CHARS:
        raise FilterError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    if not 1 <= k <= MAX_K:
        raise FilterError(f"k must lie between 1 and {MAX_K}, got {k}")
    return question


class UserImage:
    """The user's image: its bytes (attached as they came when the model takes their
    type), its decoded pixels (for the search) and how the pack names it."""

    def __init__(self, name: str, data: bytes, max_pixels: int | None = None) -> None:
        from PIL import Image as PILImage

        from assetdb.embedding.images import load_image_bytes

        self.data = data
        self.pixels: Image.Image = load_image_bytes(data, QUERY_DECODE_MIN_SIZE,
                                                    max_pixels=max_pixels)
        with PILImage.open(io.BytesIO(data)) as probe:
            fmt = (probe.format or "").upper()
        mime = PILImage.MIME.get(fmt, "application/octet-stream")
        self.query = QueryImage(name=name.rsplit("/", 1)[-1] or "upload",
                                sha256=hashlib.sha256(data).hexdigest(), mime=mime)


def _active_filters(filters: Filters) -> dict[str, Any]:
    return {k: v for k, v in filters.as_dict().items() if v not in (None, False, [], (), {})}


def _text_hits(catalog: Catalog, encoder: Encoder, question: str, k: int,
               filters: Filters) -> list[Any]:
    # The one place that chooses the text search (hybrid search replaces this call).
    return catalog.search_text(encoder, question, k=k, filters=filters)


def retrieve(
    catalog: Catalog,
    question: str,
    *,
    k: int = DEFAULT_K,
    filters: Filters | None = None,
    image: UserImage | None = None,
    asset_id: int | None = None,
    encoder: Callable[[], Encoder] | None = None,
) -> ContextPack:
    """The context pack for a question: its top-k sources with their descriptions, tags
    and metadata. `encoder` loads the model when one is needed (not for `asset_id`)."""
    question = check_question(question, k)
    filters = filters or Filters()
    if image is not None and asset_id is not None:
        raise FilterError("give an image or an asset id, not both")
    if asset_id is not None:
        from assetdb.search.searches import asset_vector

        mode = "asset"
        # A clear "no asset with id N" first; one hidden by moderation counts as unknown
        # unless the filters include hidden assets (as for "more like this").
        get_asset(catalog.settings, asset_id, include_hidden=filters.include_hidden)
        # The asset itself is a source (it comes first, at similarity 1), unlike `similar`.
        hits = catalog.search_vector(asset_vector(catalog.settings, asset_id), k=k,
                                     filters=filters)
    else:
        if encoder is None:
            raise AskError("retrieval by image or text needs the catalogue's model")
        model = encoder()
        if image is not None:
            mode = "image"
            hits = catalog.search_image(model, image.pixels, k=k, filters=filters)
        else:
            mode = "text"
            hits = _text_hits(catalog, model, question, k, filters)
    if not hits:
        raise NothingFound("no asset passes the filters: nothing to answer from (loosen "
                           "the filters, or check `assetdb stats`)")
    return ContextPack(question=question, mode=mode, k=k, filters=_active_filters(filters),
                       image=image.query if image else None, asset_id=asset_id,
                       sources=[_source(catalog, h) for h in hits])


def _source(catalog: Catalog, hit: Any) -> Source:  # noqa: ANN401 - search.query.Hit
    try:
        asset = get_asset(catalog.settings, hit.id)
    except AssetNotFound:  # deleted between the search and now: what the search saw
        return Source(id=hit.id, uri=hit.uri, title=hit.title, similarity=hit.similarity,
                      kind=hit.kind, mime=None, tags=list(hit.tags), description=None)
    return Source(id=asset.id, uri=asset.uri, title=asset.title, similarity=hit.similarity,
                  kind=asset.kind, mime=asset.mime, tags=list(asset.tags),
                  description=asset.description, metadata=chosen_metadata(asset.metadata))
