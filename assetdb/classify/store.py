"""SQL of classification: saved label sets, stored policies, and writing results to
assets. Every value is a bind parameter; the jsonb keys (field and rule names) too."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, func, select, text

from assetdb.classify.policy import Policy, PolicyError, check_name, parse_policy
from assetdb.classify.zeroshot import check_labels, check_templates
from assetdb.db.classify_models import LabelSet, ModerationPolicy
from assetdb.db.models import Asset
from assetdb.db.vectors import from_binary
from assetdb.search.filters import Filters
from assetdb.search.query import where_clauses

A = Asset.__table__.c
L = LabelSet.__table__.c
P = ModerationPolicy.__table__.c


class LabelSetError(PolicyError):
    pass


@dataclass(frozen=True)
class SavedLabelSet:
    name: str
    field: str
    labels: tuple[str, ...]
    templates: tuple[str, ...]
    enabled: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "field": self.field, "labels": list(self.labels),
                "templates": list(self.templates), "enabled": self.enabled}


# --- label sets ----------------------------------------------------------------------


def _label_set(row: Any) -> SavedLabelSet:
    return SavedLabelSet(name=row.name, field=row.field, labels=tuple(row.labels),
                         templates=tuple(row.templates), enabled=row.enabled)


def save_label_set(conn: Connection, s: SavedLabelSet, *, replace: bool = False) -> None:
    check_name(s.name, "label set name")
    check_name(s.field, "field name")
    labels, templates = check_labels(s.labels), check_templates(s.templates)
    exists = conn.execute(select(L.name).where(L.name == s.name)).first() is not None
    if exists and not replace:
        raise LabelSetError(f"label set {s.name!r} exists already (use --replace)")
    conn.execute(
        text(
            "INSERT INTO label_sets (name, field, labels, templates, enabled) "
            "VALUES (:n, :f, :l, :t, :e) ON CONFLICT (name) DO UPDATE SET field = :f, "
            "labels = :l, templates = :t, enabled = :e, updated_at = now()"
        ),
        {"n": s.name, "f": s.field, "l": labels, "t": templates, "e": s.enabled},
    )


def get_label_set(conn: Connection, name: str) -> SavedLabelSet:
    row = conn.execute(select(LabelSet.__table__).where(L.name == name)).first()
    if row is None:
        raise LabelSetError(f"no label set named {name!r} (see `assetdb labels list`)")
    return _label_set(row)


def list_label_sets(conn: Connection, *, enabled_only: bool = False) -> list[SavedLabelSet]:
    q = select(LabelSet.__table__).order_by(L.name)
    if enabled_only:
        q = q.where(L.enabled.is_(True))
    return [_label_set(r) for r in conn.execute(q).all()]


def remove_label_set(conn: Connection, name: str) -> None:
    if conn.execute(LabelSet.__table__.delete().where(L.name == name)).rowcount == 0:
        raise LabelSetError(f"no label set named {name!r}")


def enable_label_set(conn: Connection, name: str, enabled: bool) -> None:
    result = conn.execute(LabelSet.__table__.update().where(L.name == name)
                          .values(enabled=enabled, updated_at=func.now()))
    if result.rowcount == 0:
        raise LabelSetError(f"no label set named {name!r}")


# --- policies ------------------------------------------------------------------------


def save_policy(conn: Connection, policy: Policy, *, enabled: bool = True,
                replace: bool = False) -> None:
    exists = conn.execute(select(P.name).where(P.name == policy.name)).first() is not None
    if exists and not replace:
        raise PolicyError(f"policy {policy.name!r} exists already (use --replace)")
    # Results are stored by rule name, so a rule name belongs to one stored policy.
    taken = conn.execute(
        text("SELECT p.name, r->>'name' AS rule FROM moderation_policies AS p, "
             "jsonb_array_elements(p.policy->'rules') AS r "
             "WHERE p.name <> :n AND r->>'name' = ANY(:rules)"),
        {"n": policy.name, "rules": [r.name for r in policy.rules]},
    ).first()
    if taken:
        raise PolicyError(f"rule {taken.rule!r} belongs to the stored policy {taken.name!r} "
                          "already; rename the rule")
    doc = policy.as_dict()
    doc.pop("name")
    conn.execute(
        text(
            "INSERT INTO moderation_policies (name, policy, enabled) VALUES (:n, :p, :e) "
            "ON CONFLICT (name) DO UPDATE SET policy = :p, enabled = :e, updated_at = now()"
        ),
        {"n": policy.name, "p": Jsonb(doc), "e": enabled},
    )


def _policy(row: Any) -> Policy:
    return parse_policy(dict(row.policy), default_name=row.name, source=f"policy {row.name!r}")


def get_policy(conn: Connection, name: str) -> Policy:
    row = conn.execute(select(P.name, P.policy).where(P.name == name)).first()
    if row is None:
        raise PolicyError(f"no stored policy named {name!r} (see `assetdb policies list`)")
    return _policy(row)


def list_policies(conn: Connection, *, enabled_only: bool = False) -> list[tuple[Policy, bool]]:
    q = select(P.name, P.policy, P.enabled).order_by(P.name)
    if enabled_only:
        q = q.where(P.enabled.is_(True))
    return [(_policy(r), r.enabled) for r in conn.execute(q).all()]


def remove_policy(conn: Connection, name: str) -> None:
    if conn.execute(ModerationPolicy.__table__.delete().where(P.name == name)).rowcount == 0:
        raise PolicyError(f"no stored policy named {name!r}")


def enable_policy(conn: Connection, name: str, enabled: bool) -> None:
    result = conn.execute(ModerationPolicy.__table__.update().where(P.name == name)
                          .values(enabled=enabled, updated_at=func.now()))
    if result.rowcount == 0:
        raise PolicyError(f"no stored policy named {name!r}")


# --- assets ----------------------------------------------------------------------------


def count_assets(conn: Connection, filters: Filters, model: str) -> int:
    q = select(func.count()).select_from(Asset.__table__).where(*where_clauses(filters, model))
    return conn.execute(q).scalar_one()


def iter_vectors(
    conn: Connection, filters: Filters, model: str, batch: int = 1000
) -> Iterator[tuple[list[int], list[str], np.ndarray]]:
    """Embedded assets that pass the filters, in id order, a batch at a time."""
    clauses = where_clauses(filters, model)
    # vector_send: the binary form, decoded by pgvector's own codec. Parsing the text
    # form costs ~1 ms per 512-d vector in Python, far more than the rest.
    raw = func.vector_send(A.embedding).label("raw")
    last = 0
    while True:
        rows = conn.execute(
            select(A.id, A.uri, raw).where(*clauses, A.id > last).order_by(A.id).limit(batch)
        ).all()
        if not rows:
            return
        vectors = np.stack([from_binary(r.raw) for r in rows])
        yield [r.id for r in rows], [r.uri for r in rows], vectors.astype(np.float32)
        last = rows[-1].id


_WRITE_LABELS = text(
    """
    INSERT INTO classifications AS c (asset_id, labels)
    SELECT v.id, jsonb_build_object(CAST(:field AS text), CAST(v.value AS jsonb))
    FROM unnest(CAST(:ids AS bigint[]), CAST(:vals AS text[])) AS v(id, value)
    ON CONFLICT (asset_id) DO UPDATE
    SET labels = c.labels || EXCLUDED.labels, updated_at = now()
    """
)

# New rule results replace stored ones of the same rule name. An asset is hidden while
# any stored result says flagged with action 'hide' (or `duplicates --hide` hid it);
# assets rows are written only where hidden changes (each write of an assets row costs an
# HNSW index insertion).
_WRITE_MODERATION = text(
    """
    WITH up AS (
        INSERT INTO classifications AS c (asset_id, moderation)
        SELECT v.id, CAST(v.value AS jsonb)
        FROM unnest(CAST(:ids AS bigint[]), CAST(:vals AS text[])) AS v(id, value)
        ON CONFLICT (asset_id) DO UPDATE
        SET moderation = c.moderation || EXCLUDED.moderation, updated_at = now()
        RETURNING c.asset_id, c.moderation
    ), h AS (
        SELECT asset_id, EXISTS (
            SELECT 1 FROM jsonb_each(moderation) AS e
            WHERE e.value @> '{"flagged": true, "action": "hide"}'
        ) OR EXISTS (  -- hidden as a near-duplicate (assetdb duplicates --hide)
            SELECT 1 FROM duplicate_hides d WHERE d.asset_id = up.asset_id
        ) AS hide
        FROM up
    )
    UPDATE assets AS a SET hidden = h.hide, updated_at = now()
    FROM h
    WHERE a.id = h.asset_id AND a.hidden IS DISTINCT FROM h.hide
    """
)


def write_labels(conn: Connection, field: str, ids: Sequence[int],
                 values: Sequence[dict[str, Any]]) -> None:
    if ids:
        conn.execute(_WRITE_LABELS, {"field": field, "ids": list(ids),
                                     "vals": [json.dumps(v) for v in values]})


def write_moderation(conn: Connection, ids: Sequence[int],
                     values: Sequence[dict[str, Any]]) -> None:
    """values[i]: {rule name: result} for asset ids[i]."""
    if ids:
        conn.execute(_WRITE_MODERATION, {"ids": list(ids),
                                         "vals": [json.dumps(v) for v in values]})
