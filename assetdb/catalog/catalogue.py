"""The catalogue as one object: a database (embedded or not), its home folder, the model
its vectors come from, and the rules that keep the two together.

Like sqlite-utils' `Database` or llm's `Collection`, it is what the surfaces hold: the
CLI, the API, the demo and the benchmarks ask it for connections, `init`, the recorded
model and the encoder to use (so every surface searches with the same model by the same
rule), and run the services through it: ingest, the searches, export, re-embedding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assetdb.config import Settings

if TYPE_CHECKING:  # light to import: commands hold a Catalog before any heavy work
    import numpy as np
    from PIL import Image
    from sqlalchemy import Connection

    from assetdb.embedding.encoder import Encoder


class Catalog:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in a transaction; failures become clear DatabaseErrors."""
        from assetdb.db.engine import connect

        with connect(self.settings) as conn:
            yield conn

    def meta(self) -> dict[str, str]:
        """What the database records about itself (model, dimension, ...); {} before init."""
        from assetdb.db import schema

        with self.connect() as conn:
            return schema.read_meta(conn)

    def require_meta(self) -> dict[str, str]:
        """As meta(), but a database never initialised is a clear error."""
        from assetdb.db import schema

        with self.connect() as conn:
            return schema.require_meta(conn)

    def model_name(self, meta: dict[str, str] | None = None) -> str:
        """The model to embed and search with: ASSETDB_MODEL when set, else the model the
        database records (a catalogue made with a local model needs no variable), else
        the default for a database that has none yet."""
        if self.settings.model_is_explicit:
            return self.settings.model
        recorded = (meta if meta is not None else self.meta()).get("model")
        return recorded or self.settings.model

    def load_encoder(self, name: str | None = None,
                     meta: dict[str, str] | None = None) -> Encoder:
        """Load the catalogue's model (or `name`), refusing one whose vectors cannot be
        compared with the stored ones."""
        from assetdb.db import schema
        from assetdb.embedding.encoder import load_encoder

        meta = meta if meta is not None else self.meta()
        model = name or self.model_name(meta)
        if meta and not name:
            self.check_text_model(model, meta)  # from manifests: before any weights load
        encoder = load_encoder(model, device=self.settings.device,
                               batch_size=self.settings.batch_size)
        if meta and not name:
            schema.check_model(meta, encoder.name, encoder.dimension)
        return encoder

    def check_text_model(self, model: str, meta: dict[str, str]) -> str | None:
        """The separate text model that would be paired with `model` (None: its own text
        tower), refused when its vectors are not of this catalogue's dimension."""
        from assetdb.embedding.encoder import text_model_for
        from assetdb.embedding.text_model import read_manifest
        from assetdb.errors import ModelError

        text = text_model_for(model)
        if text is None:
            return None
        manifest = read_manifest(text)
        if meta and manifest.dimension != int(meta["dimension"]):
            raise ModelError(
                f"the text model {manifest.name!r} makes {manifest.dimension}-d vectors, but "
                f"this catalogue holds {meta['dimension']}-d vectors from {meta['model']!r}: "
                "unset ASSETDB_TEXT_MODEL, or distil a text model from the catalogue's model"
            )
        return manifest.name

    def init(self, load_encoder: Callable[[], Encoder] | None = None) -> Any:
        """Migrate, record the model (loaded only on the first run), the search breadth
        and the read-only role, and the separate text models found compatible with the
        model (TEXT_MODELS_META_KEY). Returns assetdb.db.schema.Initialised."""
        from assetdb.db import schema

        done = schema.initialise(self.settings, load_encoder or self.load_encoder)
        text = self.check_text_model(self.model_name(done.meta), done.meta)
        if text is not None:
            from assetdb.embedding.text_model import check_pair, read_manifest

            check_pair(done.meta["model"], int(done.meta["dimension"]), read_manifest(text))
            with self.connect() as conn:
                done.meta = schema.record_text_model(conn, text)
        return done

    def text_models(self, meta: dict[str, str] | None = None) -> list[str]:
        """The separate text models recorded as compatible with the catalogue's model."""
        from assetdb.db.schema import recorded_text_models

        return recorded_text_models(meta if meta is not None else self.meta())

    def stats(self) -> dict[str, Any]:
        from assetdb.catalog.stats import catalogue_stats

        return catalogue_stats(self.settings)

    # --- the services, with this catalogue's settings -------------------------------

    def ingest(self, paths: list[str] | tuple[str, ...], **options: Any) -> Any:
        """Scan, register and embed files (assetdb.ingest.ingest_files.ingest); options
        include recursive, metadata_file, embed, and rehash=True to read every file even
        when its size, mtime, ctime and inode say it is unchanged."""
        from assetdb.ingest.ingest_files import ingest

        return ingest(self.settings, list(paths), **options)

    def search_text(self, encoder: Encoder, text: str, **options: Any) -> list[Any]:
        from assetdb.search.searches import search_text

        return search_text(self.settings, encoder, text, **options)

    def search(self, text: str, *, mode: str = "hybrid", encoder: Encoder | None = None,
               **options: Any) -> Any:
        """Search by words and meaning (assetdb.search.hybrid): mode hybrid, semantic or
        keyword (which needs no encoder). Returns a SearchResult (hits and warnings)."""
        from assetdb.search.hybrid import search

        return search(self.settings, text, mode=mode, encoder=encoder, **options)

    def search_image(self, encoder: Encoder, image: Path | Image.Image,
                     **options: Any) -> list[Any]:
        from assetdb.search.searches import search_image

        return search_image(self.settings, encoder, image, **options)

    def search_vector(self, vector: np.ndarray, **options: Any) -> list[Any]:
        from assetdb.search.searches import search_vector

        return search_vector(self.settings, vector, **options)

    def similar(self, asset_id: int, **options: Any) -> list[Any]:
        """Assets like a catalogued one, by its stored vector (no model needed)."""
        from assetdb.search.searches import similar_to_asset

        return similar_to_asset(self.settings, asset_id, **options)

    def export(self, filters: Any, fmt: str, out: Path, **options: Any) -> Any:
        from assetdb.sqlsurface.export import export

        return export(self.settings, filters, fmt, out, **options)

    def duplicates(self, **options: Any) -> Any:
        """Groups of near-duplicates, with keepers; tag, hide or unhide the rest
        (assetdb.duplicates.finder.find_duplicates). No model needed."""
        from assetdb.duplicates.finder import find_duplicates

        return find_duplicates(self.settings, **options)

    def mark_keeper(self, asset_id: int, keep: bool = True) -> Any:
        """Mark (or unmark) an asset as its group's keeper (the page, the API)."""
        from assetdb.duplicates.keepers import mark_keeper

        return mark_keeper(self.settings, asset_id, keep)

    def reembed(self, encoder: Encoder, **options: Any) -> Any:
        """Re-embed in place, or move to another model with one atomic switch."""
        from assetdb.ingest.model_switch import reembed

        return reembed(self.settings, encoder, **options)

    def abort_reembed(self) -> dict[str, Any]:
        from assetdb.ingest.model_switch import abort

        return abort(self.settings)

    def classify(self, encoder: Encoder, *, label_set: str | None = None,
                 **options: Any) -> Any:
        """Zero-shot labels for the catalogue: given labels, or a saved label set."""
        from assetdb.classify import labelling

        if label_set is not None:
            return labelling.classify_with_set(self.settings, encoder, label_set, **options)
        return labelling.classify_catalogue(self.settings, encoder, **options)

    def moderate(self, encoder: Encoder, policies: Any, **options: Any) -> Any:
        """Score the catalogue against moderation policies; flag or hide with apply=True."""
        from assetdb.classify import labelling

        return labelling.moderate(self.settings, encoder, policies, **options)

    def calibrate(self, encoder: Encoder, policies: Any, **options: Any) -> Any:
        """Each rule's score distribution over the catalogue, to choose thresholds."""
        from assetdb.classify import labelling

        return labelling.calibrate(self.settings, encoder, policies, **options)
