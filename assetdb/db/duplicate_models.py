"""Typed models of the near-duplicate side tables (migration 0009): perceptual hashes,
the vector-neighbour scan kept between runs, the last run's groups, what ingest found,
hides and keepers. Side tables: none of this rewrites an assets row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, SmallInteger, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from assetdb.db.models import Base


def _asset(primary_key: bool = False) -> Mapped[int]:
    return mapped_column(BigInteger, ForeignKey("assets.id", ondelete="CASCADE"),
                         primary_key=primary_key)


def _when() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class AssetHash(Base):
    """64-bit perceptual hashes of an asset's content (the sha256 they were made from);
    band0..3 are the pHash's 16-bit quarters, indexed for candidate look-ups."""

    __tablename__ = "asset_hashes"

    asset_id: Mapped[int] = _asset(primary_key=True)
    sha256: Mapped[str] = mapped_column(Text)
    phash: Mapped[int] = mapped_column(BigInteger)
    dhash: Mapped[int] = mapped_column(BigInteger)
    band0: Mapped[int] = mapped_column(Integer)
    band1: Mapped[int] = mapped_column(Integer)
    band2: Mapped[int] = mapped_column(Integer)
    band3: Mapped[int] = mapped_column(Integer)
    hashed_at: Mapped[datetime] = _when()


class DuplicateScanned(Base):
    """An asset whose vector neighbours are in duplicate_neighbours (for this vector)."""

    __tablename__ = "duplicate_scanned"

    asset_id: Mapped[int] = _asset(primary_key=True)
    embedded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scanned_at: Mapped[datetime] = _when()


class DuplicateNeighbour(Base):
    """A pair of assets that are each other's vector neighbours (low < high)."""

    __tablename__ = "duplicate_neighbours"

    low: Mapped[int] = _asset(primary_key=True)
    high: Mapped[int] = _asset(primary_key=True)
    cosine: Mapped[float] = mapped_column(Float)


class DuplicateGroup(Base):
    """One member of a group of the last `duplicates` run; keeper_id names the group."""

    __tablename__ = "duplicate_groups"

    asset_id: Mapped[int] = _asset(primary_key=True)
    keeper_id: Mapped[int] = _asset()
    similarity: Mapped[float] = mapped_column(Float)
    distance: Mapped[int | None] = mapped_column(SmallInteger)
    rule: Mapped[str] = mapped_column(Text)
    threshold: Mapped[float] = mapped_column(Float)
    found_at: Mapped[datetime] = _when()


class AssetDuplicateOf(Base):
    """Ingest's finding: this asset near-duplicates an older one."""

    __tablename__ = "asset_duplicate_of"

    asset_id: Mapped[int] = _asset(primary_key=True)
    duplicate_of: Mapped[int] = _asset()
    similarity: Mapped[float] = mapped_column(Float)
    found_at: Mapped[datetime] = _when()


class DuplicateHide(Base):
    """An asset hidden as a duplicate of keeper_id (`duplicates --hide`; --unhide undoes)."""

    __tablename__ = "duplicate_hides"

    asset_id: Mapped[int] = _asset(primary_key=True)
    keeper_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="SET NULL"))
    hidden_at: Mapped[datetime] = _when()


class DuplicateKeeper(Base):
    """An asset a user marked as the keeper of its group (the page, the API)."""

    __tablename__ = "duplicate_keepers"

    asset_id: Mapped[int] = _asset(primary_key=True)
    marked_at: Mapped[datetime] = _when()
