"""Concept rules on top of the zero-shot primitives: flag images that show a concept.

A rule names the concept to flag (one or more prompts) and contrast labels that
describe what else images show; an image is flagged when the concept's zero-shot
probability against the contrast labels reaches the threshold. Comparing against
contrasts, rather than thresholding raw cosine similarity, keeps one threshold
meaningful across models whose similarity scales differ.

Issue 5 (moderation policies) lands in parallel; this is the primitive the demo and its
tests need, and is meant to be reconciled with that work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assetdb.classify.zeroshot import (
    DEFAULT_TEMPLATES,
    check_labels,
    probabilities,
    text_prototypes,
)
from assetdb.embedding.encoder import Encoder
from assetdb.errors import AssetdbError


@dataclass(frozen=True)
class ConceptRule:
    concept: str
    contrasts: tuple[str, ...]
    threshold: float = 0.5
    templates: tuple[str, ...] = DEFAULT_TEMPLATES

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise AssetdbError(f"the threshold must lie between 0 and 1, got {self.threshold}")
        labels = check_labels([self.concept, *self.contrasts])
        if len(labels) < 2:
            raise AssetdbError("a concept rule needs at least one contrast label")


def concept_scores(encoder: Encoder, image_vectors: np.ndarray, rule: ConceptRule) -> np.ndarray:
    """(N,) probability that each image shows the rule's concept rather than a contrast."""
    prototypes = text_prototypes(encoder, [rule.concept, *rule.contrasts], rule.templates)
    return probabilities(np.asarray(image_vectors), prototypes, encoder.logit_scale)[:, 0]


def flag(encoder: Encoder, image_vectors: np.ndarray, rule: ConceptRule) -> np.ndarray:
    """(N,) booleans: the images the rule flags."""
    return concept_scores(encoder, image_vectors, rule) >= rule.threshold


def flagged_indices(
    encoder: Encoder, image_vectors: np.ndarray, rules: Sequence[ConceptRule]
) -> dict[str, list[int]]:
    """{concept: indices of the images each rule flags}."""
    return {r.concept: np.flatnonzero(flag(encoder, image_vectors, r)).tolist() for r in rules}
