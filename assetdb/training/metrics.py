"""Retrieval recall@K both ways, from unit image and text vectors of aligned pairs.

Pairs whose captions are the same text are interchangeable (a generated domain, or a
catalogue, often has many images with one caption): a result counts as a hit when its
caption equals the query's. With distinct captions this is the usual recall@K.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (1, 5, 10)


def recall_at_k(
    image_vectors: np.ndarray, text_vectors: np.ndarray, captions: Sequence[str],
    ks: Sequence[int] = KS,
) -> dict[str, float]:
    """{'t2i@1': ..., 'i2t@1': ...}: text-to-image and image-to-text recall."""
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    group = np.array([ids[c] for c in captions])
    sims = np.asarray(text_vectors) @ np.asarray(image_vectors).T  # (texts, images)
    same = group[:, None] == group[None, :]
    out: dict[str, float] = {}
    for name, matrix in (("t2i", sims), ("i2t", sims.T)):
        order = np.argsort(-matrix, axis=1)
        hits = np.take_along_axis(same, order, axis=1)
        for k in ks:
            out[f"{name}@{k}"] = float(hits[:, :k].any(axis=1).mean())
    return out
