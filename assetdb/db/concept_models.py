"""Typed model of the concepts table (migration 0002)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from assetdb.db.models import Base
from assetdb.db.vectors import NumpyVector


class Concept(Base):
    """A named text query stored as a vector, with the model that made it."""

    __tablename__ = "assetdb_concepts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    text: Mapped[str] = mapped_column(Text)
    # Prompt templates ("a photo of {}"), ensembled; empty: the text as it is.
    templates: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # Undimensioned, so that a switch to a model of another dimension rewrites it in place.
    vector: Mapped[Any] = mapped_column(NumpyVector())
    model: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
