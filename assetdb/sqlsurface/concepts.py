"""Concepts: named text queries stored as vectors, for SQL (assetdb_concept_search).

A concept keeps its text and prompt templates, so that a switch to another model can
re-embed it (refresh_concepts); its `model` column says which model made the vector,
and the SQL functions ignore concepts of any other model than the database's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from assetdb import names
from assetdb.classify.zeroshot import check_templates, text_prototypes
from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.concept_models import Concept
from assetdb.db.engine import connect
from assetdb.embedding.encoder import Encoder
from assetdb.errors import AssetdbError

C = Concept.__table__.c


@dataclass
class ConceptInfo:
    name: str
    text: str
    templates: list[str]
    model: str
    current: bool  # made by the database's model (else the SQL functions ignore it)
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_name(name: str) -> str:
    return names.check_name(name, "concept name", colon=True, hint=(
        " (it is quoted in SQL: assetdb_concept_search('red-sneakers', 10))"))


def concept_vector(encoder: Encoder, text: str, templates: Sequence[str] = ()) -> np.ndarray:
    """The text's unit vector; with templates, the ensemble of its prompts."""
    if not text.strip():
        raise AssetdbError("the concept text is empty")
    if not templates:  # exactly the vector `assetdb search TEXT` uses
        return encoder.encode_texts([text.strip()])[0]
    return text_prototypes(encoder, [text.strip()], templates)[0]


def checked_templates(templates: Sequence[str]) -> list[str]:
    return check_templates(templates) if templates else []


def add_concept(
    settings: Settings, encoder: Encoder, name: str, text: str,
    templates: Sequence[str] = (), *, replace: bool = False,
) -> ConceptInfo:
    """Embed TEXT with the database's model and store it as NAME."""
    check_name(name)
    templates = checked_templates(templates)
    with connect(settings) as conn:
        schema.check_model(schema.require_meta(conn), encoder.name, encoder.dimension)
    vector = concept_vector(encoder, text, templates)
    values = {"name": name, "text": text.strip(), "templates": templates, "vector": vector,
              "model": encoder.name}
    stmt = insert(Concept).values(**values)
    if replace:
        stmt = stmt.on_conflict_do_update(
            index_elements=[C.name], set_={**values, "updated_at": func.now()})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[C.name])
    with connect(settings) as conn:
        if conn.execute(stmt.returning(C.id)).first() is None:
            raise AssetdbError(f"a concept named {name!r} exists already (use --replace)")
        return _infos(conn, name)[0]


def _infos(conn: Connection, name: str | None = None) -> list[ConceptInfo]:
    model = schema.require_meta(conn)["model"]
    query = select(C.name, C.text, C.templates, C.model, C.created_at, C.updated_at)
    if name is not None:
        query = query.where(C.name == name)
    rows = conn.execute(query.order_by(C.name)).all()
    return [ConceptInfo(name=r.name, text=r.text, templates=list(r.templates), model=r.model,
                        current=r.model == model, created_at=r.created_at,
                        updated_at=r.updated_at) for r in rows]


def list_concepts(settings: Settings) -> list[ConceptInfo]:
    with connect(settings) as conn:
        return _infos(conn)


def remove_concept(settings: Settings, name: str) -> None:
    with connect(settings) as conn:
        schema.require_meta(conn)
        if conn.execute(delete(Concept).where(C.name == name).returning(C.id)).first() is None:
            raise AssetdbError(f"no concept named {name!r} (see assetdb concept list)")


def refresh_concepts(conn: Connection, encoder: Encoder) -> int:
    """Re-embed every concept with ENCODER and record its model; returns how many.

    Called inside the model switch's transaction (re-embedding the catalogue), so that
    concepts and assets move to the new model together.
    """
    rows = conn.execute(select(C.id, C.text, C.templates).order_by(C.id)).all()
    for row in rows:
        vector = concept_vector(encoder, row.text, row.templates)
        conn.execute(update(Concept).where(C.id == row.id).values(
            vector=vector, model=encoder.name, updated_at=func.now()))
    return len(rows)
