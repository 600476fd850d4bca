"""Typed models of the moments tables (migration 0008): the frames (or pages) of
time-based and paged assets with their vectors, and each such asset's probed facts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from assetdb.db.models import Base
from assetdb.db.vectors import NumpyVector


class AssetFrame(Base):
    """One moment of an asset: a video frame (`seconds`) or a document page (`page`),
    embedded by the catalogue's model. Searched through its own HNSW index."""

    __tablename__ = "asset_frames"

    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    seconds: Mapped[float | None] = mapped_column(Float)
    page: Mapped[int | None] = mapped_column(Integer)
    embedding: Mapped[Any] = mapped_column(NumpyVector())
    embedding_model: Mapped[str] = mapped_column(Text)


class AssetMedia(Base):
    """What the kind probed (duration, codec, frame rate, page count) and a note when
    its sampling was bounded (a frame cap, a decode time limit)."""

    __tablename__ = "asset_media"

    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    note: Mapped[str | None] = mapped_column(Text)
    frames: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
