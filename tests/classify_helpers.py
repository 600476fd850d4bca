"""Helpers shared by the classification and moderation tests: a small catalogue, and
plain SQL reads of what the commands stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, text

from assetdb.config import Settings
from assetdb.db.engine import connect
from tests.conftest import run_cli
from tests.images import noise


def catalogue(tmp_path: Path, n: int = 6, folder: str = "imgs") -> Path:
    """n distinct images, ingested."""
    for i in range(n):
        noise(tmp_path / folder / f"n{i}.png", seed=100 + i)
    result = run_cli("ingest", str(tmp_path / folder))
    assert result.exit_code == 0, result.output
    return tmp_path / folder


def rows(settings: Settings) -> list[Any]:
    """Every asset with its vector (numpy), labels, moderation and hidden flag, by id."""
    from assetdb.db.classify_models import Classification
    from assetdb.db.models import Asset

    a, c = Asset.__table__.c, Classification.__table__.c
    with connect(settings) as conn:
        return conn.execute(
            select(a.id, a.uri, a.embedding, a.hidden, a.updated_at,
                   func.coalesce(c.labels, text("'{}'::jsonb")).label("labels"),
                   func.coalesce(c.moderation, text("'{}'::jsonb")).label("moderation"))
            .select_from(Asset.__table__.outerjoin(Classification.__table__,
                                                   c.asset_id == a.id))
            .order_by(a.id)
        ).all()


def state(settings: Settings) -> list[tuple[Any, ...]]:
    """What classification and moderation may write (to compare before and after)."""
    with connect(settings) as conn:
        assets = conn.execute(text(
            "SELECT id, hidden, updated_at FROM assets ORDER BY id")).all()
        results = conn.execute(text(
            "SELECT asset_id, labels, moderation, updated_at FROM classifications "
            "ORDER BY asset_id")).all()
    return [tuple(r) for r in assets] + [tuple(r) for r in results]


def sql(settings: Settings, query: str, **params: Any) -> list[Any]:
    with connect(settings) as conn:
        result = conn.execute(text(query), params)
        return result.all() if result.returns_rows else []


def vec(row: Any) -> np.ndarray:
    v = np.asarray(row.embedding, dtype=np.float64)
    return v / np.linalg.norm(v)


def cli_json(*args: str) -> Any:
    result = run_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    # "Loading model ..." goes to stderr, which CliRunner mixes in: take the JSON part.
    out = result.stdout
    start = min(i for i in (out.find("{"), out.find("[")) if i >= 0)
    return json.loads(out[start:])


def error(*args: str) -> str:
    result = run_cli(*args)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output, result.output
    return result.output
