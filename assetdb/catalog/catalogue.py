"""The catalogue as one object: a database (embedded or not), its home folder, the model
its vectors come from, and the rules that keep the two together.

Like sqlite-utils' `Database` or llm's `Collection`, it is what the surfaces hold: the
CLI, the API and the demo ask it for connections, `init`, the recorded model and the
encoder to use, so that every surface searches with the same model by the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from assetdb.config import Settings
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
        encoder = load_encoder(name or self.model_name(meta), device=self.settings.device,
                               batch_size=self.settings.batch_size)
        if meta and not name:
            schema.check_model(meta, encoder.name, encoder.dimension)
        return encoder

    def init(self, load_encoder: Callable[[], Encoder] | None = None) -> Any:
        """Migrate, record the model (loaded only on the first run), the search breadth
        and the read-only role. Returns assetdb.db.schema.Initialised."""
        from assetdb.db import schema

        return schema.initialise(self.settings, load_encoder or self.load_encoder)

    def stats(self) -> dict[str, Any]:
        from assetdb.catalog.stats import catalogue_stats

        return catalogue_stats(self.settings)
