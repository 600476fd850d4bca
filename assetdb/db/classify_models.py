"""Typed models of the classification tables (migration 0003): per-asset results, saved
label sets and stored moderation policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from assetdb.db.models import Base


class Classification(Base):
    """Zero-shot labels and moderation results of one asset (assets.hidden holds the
    outcome of 'hide' rules). A side table, so that writing results never rewrites the
    assets row and its HNSW index entry."""

    __tablename__ = "classifications"

    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    # {FIELD: {label, probability, top3: [{label, probability}]}}
    labels: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    # {RULE: {score, flagged, threshold, action, policy}}
    moderation: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LabelSet(Base):
    """Labels and templates saved by name; enabled sets are applied at ingest."""

    __tablename__ = "label_sets"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    field: Mapped[str] = mapped_column(Text)  # the key under classifications.labels
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text))
    templates: Mapped[list[str]] = mapped_column(ARRAY(Text))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModerationPolicy(Base):
    """A moderation policy ({"rules": [...]}); enabled policies are applied at ingest."""

    __tablename__ = "moderation_policies"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
