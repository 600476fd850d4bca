"""Typed models of the classification tables (migration 0004): saved label sets and
stored moderation policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from assetdb.db.models import Base


class LabelSet(Base):
    """Labels and templates saved by name; enabled sets are applied at ingest."""

    __tablename__ = "label_sets"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    field: Mapped[str] = mapped_column(Text)  # the key under assets.labels
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
