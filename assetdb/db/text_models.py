"""Typed models of the keyword-search and OCR tables (migration 0007). The triggers there
keep `asset_text` in step with `assets`; the application writes only OCR results."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from assetdb.db.models import Base


class AssetText(Base):
    """The search text of one asset, its tsvectors and the document snippets come from."""

    __tablename__ = "asset_text"

    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    title: Mapped[str] = mapped_column(Text, server_default="")
    file_name: Mapped[str] = mapped_column(Text, server_default="")
    tags: Mapped[str] = mapped_column(Text, server_default="")
    description: Mapped[str] = mapped_column(Text, server_default="")
    meta: Mapped[str] = mapped_column(Text, server_default="")
    ocr: Mapped[str] = mapped_column(Text, server_default="")
    document: Mapped[str] = mapped_column(Text, server_default="")
    tsv_simple: Mapped[str] = mapped_column(TSVECTOR)
    tsv_lang: Mapped[str] = mapped_column(TSVECTOR)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AssetOcr(Base):
    """Whether OCR ran on an asset's content (sha256), and how it went."""

    __tablename__ = "asset_ocr"

    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # done | failed
    error: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    lines: Mapped[int] = mapped_column(Integer, server_default="0")
    seconds: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AssetOcrLine(Base):
    """One recognised line: its text, box (x1,y1..x4,y4) and confidence."""

    __tablename__ = "asset_ocr_lines"

    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    box: Mapped[list[float]] = mapped_column(ARRAY(Float))
    confidence: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(Text)
