"""Classification and moderation of freshly embedded assets, at ingest (and in workers).

`apply_auto_classification` runs inside the caller's transaction, right after the
embedded rows are written: every enabled label set writes its field under
classifications.labels, every enabled stored policy writes its rule results under
classifications.moderation (and hides what a 'hide' rule flags)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from assetdb.classify import store
from assetdb.classify.labelling import label_results, moderation_with_moments
from assetdb.classify.policy import encode_policies
from assetdb.classify.zeroshot import probabilities, text_prototypes
from assetdb.embedding.encoder import Encoder

_PROTOTYPES: dict[tuple[str, tuple[str, ...], tuple[str, ...]], np.ndarray] = {}


def _prototypes(encoder: Encoder, s: store.SavedLabelSet) -> np.ndarray:
    # Called once per ingest batch: encode each set's prompts once per process.
    key = (encoder.name, s.labels, s.templates)
    if key not in _PROTOTYPES:
        if len(_PROTOTYPES) > 256:
            _PROTOTYPES.clear()
        _PROTOTYPES[key] = text_prototypes(encoder, s.labels, s.templates)
    return _PROTOTYPES[key]


def apply_auto_classification(
    conn: Connection, items: Sequence[tuple[int, np.ndarray]], encoder: Encoder
) -> None:
    """Apply enabled label sets and stored policies to (asset id, vector) pairs."""
    if not items:
        return
    label_sets = store.list_label_sets(conn, enabled_only=True)
    policies = [p for p, _ in store.list_policies(conn, enabled_only=True)]
    if not label_sets and not policies:
        return
    ids = [asset_id for asset_id, _ in items]
    vectors = np.stack([np.asarray(v, dtype=np.float32) for _, v in items])
    for s in label_sets:
        probs = probabilities(vectors, _prototypes(encoder, s), encoder.scoring)
        store.write_labels(conn, s.field, ids, label_results(probs, list(s.labels)))
    if policies:  # a video is flagged when any of its frames is
        results = moderation_with_moments(conn, ids, vectors,
                                          encode_policies(encoder, policies), encoder.name)
        store.write_moderation(conn, ids, results)


def apply_to_upserted(
    conn: Connection, rows: Sequence[dict[str, Any]], encoder: Encoder
) -> None:
    """Ingest's hook: `rows` are the parameter dicts just upserted (uri, embedding,
    status); the embedded ones are classified, found by their unique uri."""
    vectors = {r["uri"]: r["embedding"] for r in rows
               if r.get("status") == "ready" and r.get("embedding") is not None}
    if not vectors:
        return
    found = conn.execute(text("SELECT id, uri FROM assets WHERE uri = ANY(:uris)"),
                         {"uris": list(vectors)}).all()
    # Re-embedded content: its labels described the old image, so they go. Moderation
    # results stay (and keep hiding) until the next `moderate` run: the safe direction.
    conn.execute(text("UPDATE classifications SET labels = '{}', updated_at = now() "
                      "WHERE asset_id = ANY(:ids) AND labels <> '{}'"),
                 {"ids": [r.id for r in found]})
    apply_auto_classification(conn, [(r.id, vectors[r.uri]) for r in found], encoder)
