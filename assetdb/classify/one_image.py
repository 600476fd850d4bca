"""Classify one image (an upload) against labels: zero-shot, no database."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from assetdb.classify.zeroshot import DEFAULT_TEMPLATES, probabilities, text_prototypes
from assetdb.embedding.encoder import Encoder


def classify_image(
    encoder: Encoder,
    image: Image.Image,
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> list[tuple[str, float]]:
    """(label, probability) pairs, most likely first; probabilities sum to 1."""
    prototypes = text_prototypes(encoder, labels, templates)
    clean = [label.strip() for label in labels if label.strip()]
    probs = probabilities(encoder.encode_images([image]), prototypes, encoder.scoring)[0]
    ranked = sorted(zip(clean, probs.tolist(), strict=True), key=lambda p: -p[1])
    return [(label, round(float(p), 6)) for label, p in ranked]
