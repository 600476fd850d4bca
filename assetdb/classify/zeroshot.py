"""CLIP zero-shot primitives shared by classification, moderation and evaluation.

Labels become text prototypes: one prompt per template ("a photo of a {}"), each
embedding L2-normalised, averaged, and renormalised (prompt ensembling, as in the CLIP
paper). Probabilities follow the model's scoring: for CLIP a softmax over cosine
similarity times the model's logit scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assetdb.embedding.encoder import Encoder, Scoring
from assetdb.errors import AssetdbError

DEFAULT_TEMPLATES = ("a photo of a {}.",)


# Caps on what a user may hand to the text encoder (the API tightens the counts: see
# assetdb.api.limits). CLIP reads at most 77 tokens, so longer texts only cost tokenising.
MAX_LABEL_CHARS = 200
MAX_TEMPLATE_CHARS = 300
MAX_LABELS = 1000  # ImageNet-sized label files still fit
MAX_TEMPLATES = 100
SLOT = "{}"


def fill_template(template: str, label: str) -> str:
    """The prompt: `template` with its one {} replaced by `label`.

    Never str.format: a user's template such as "{:>1000000000}{}" would make format
    allocate gigabytes and hold the model for as long.
    """
    return template.replace(SLOT, label, 1)


def check_templates(templates: Sequence[str], max_count: int = MAX_TEMPLATES) -> list[str]:
    out = [t for t in templates if t.strip()]
    if not out:
        raise AssetdbError("at least one template is needed, e.g. 'a photo of a {}'")
    if len(out) > max_count:
        raise AssetdbError(f"too many templates: {len(out)} (at most {max_count})")
    for template in out:
        if len(template) > MAX_TEMPLATE_CHARS:
            raise AssetdbError(f"template {template[:40]!r}... is longer than "
                               f"{MAX_TEMPLATE_CHARS} characters")
        if SLOT not in template:
            raise AssetdbError(f"template {template!r} has no {{}} where the label goes")
        rest = template.replace(SLOT, "", 1)
        if "{" in rest or "}" in rest:
            raise AssetdbError(
                f"template {template!r} must hold exactly one {{}} and no other braces"
            )
    return out


def check_labels(labels: Sequence[str], max_count: int = MAX_LABELS) -> list[str]:
    out = [label.strip() for label in labels if label.strip()]
    if not out:
        raise AssetdbError("the label list is empty")
    if len(out) > max_count:
        raise AssetdbError(f"too many labels: {len(out)} (at most {max_count})")
    long = next((label for label in out if len(label) > MAX_LABEL_CHARS), None)
    if long is not None:
        raise AssetdbError(f"label {long[:40]!r}... is longer than {MAX_LABEL_CHARS} characters")
    if len(set(out)) != len(out):
        raise AssetdbError("the label list has duplicates")
    return out


def text_prototypes(
    encoder: Encoder, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> np.ndarray:
    """(len(labels), D) unit vectors: the ensembled prompt embedding of each label."""
    labels, templates = check_labels(labels), check_templates(templates)
    prompts = [fill_template(t, label) for label in labels for t in templates]
    vectors = encoder.encode_texts(prompts).reshape(len(labels), len(templates), -1)
    mean = vectors.mean(axis=1)
    return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


def probabilities(
    image_vectors: np.ndarray, prototypes: np.ndarray, scoring: Scoring
) -> np.ndarray:
    """(N, L) label probabilities for N unit image vectors, by the model's own rule
    (softmax x logit scale for CLIP, sigmoid + bias for SigLIP)."""
    return scoring.probabilities(np.asarray(image_vectors) @ prototypes.T)
