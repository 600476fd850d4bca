"""CLIP zero-shot primitives shared by classification, moderation and evaluation.

Labels become text prototypes: one prompt per template ("a photo of a {}"), each
embedding L2-normalised, averaged, and renormalised (prompt ensembling, as in the CLIP
paper). Probabilities are a softmax over cosine similarity times the model's logit scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assetdb.embedding.encoder import Encoder, softmax
from assetdb.errors import AssetdbError

DEFAULT_TEMPLATES = ("a photo of a {}.",)


def check_templates(templates: Sequence[str]) -> list[str]:
    out = [t for t in templates if t.strip()]
    if not out:
        raise AssetdbError("at least one template is needed, e.g. 'a photo of a {}'")
    for template in out:
        if "{}" not in template:
            raise AssetdbError(f"template {template!r} has no {{}} where the label goes")
        try:  # other braces ("{0}", "{x}", a second "{}", "{{}}") fail only at format time
            filled = template.format("\x00")
        except (IndexError, KeyError, ValueError):
            filled = ""
        if "\x00" not in filled:
            raise AssetdbError(
                f"template {template!r} must hold exactly one {{}} and no other braces"
            )
    return out


def check_labels(labels: Sequence[str]) -> list[str]:
    out = [label.strip() for label in labels if label.strip()]
    if not out:
        raise AssetdbError("the label list is empty")
    if len(set(out)) != len(out):
        raise AssetdbError("the label list has duplicates")
    return out


def text_prototypes(
    encoder: Encoder, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> np.ndarray:
    """(len(labels), D) unit vectors: the ensembled prompt embedding of each label."""
    labels, templates = check_labels(labels), check_templates(templates)
    prompts = [t.format(label) for label in labels for t in templates]
    vectors = encoder.encode_texts(prompts).reshape(len(labels), len(templates), -1)
    mean = vectors.mean(axis=1)
    return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


def probabilities(
    image_vectors: np.ndarray, prototypes: np.ndarray, logit_scale: float
) -> np.ndarray:
    """(N, L) label probabilities for N unit image vectors."""
    return softmax(logit_scale * (np.asarray(image_vectors) @ prototypes.T))
