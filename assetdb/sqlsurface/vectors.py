"""Query vectors for ad-hoc SQL: a text's embedding as a pgvector literal or JSON."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect
from assetdb.db.vectors import vector_text  # noqa: F401 - the one text form, re-exported
from assetdb.embedding.encoder import Encoder
from assetdb.sqlsurface.concepts import checked_templates, concept_vector


def embed_text(
    settings: Settings, encoder: Encoder, text: str, templates: Sequence[str] = ()
) -> np.ndarray:
    """The text's vector, refused if the model differs from the database's (the vector
    would be compared with vectors of another model)."""
    templates = checked_templates(templates)
    with connect(settings) as conn:
        schema.check_model(schema.require_meta(conn), encoder.name, encoder.dimension)
    return concept_vector(encoder, text, templates)




def sql_literal(vector: np.ndarray) -> str:
    return f"'{vector_text(vector)}'::vector"
