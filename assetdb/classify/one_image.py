"""Classify one image (a file or an upload) against labels: zero-shot, no database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from assetdb.classify.zeroshot import (
    DEFAULT_TEMPLATES,
    check_labels,
    check_templates,
    probabilities,
    text_prototypes,
)
from assetdb.embedding.encoder import Encoder


def classify_image(
    encoder: Encoder,
    image: Image.Image,
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> list[dict[str, Any]]:
    """{label, probability} for every label, most likely first (ties keep the labels'
    order); probabilities sum to 1. Stores nothing."""
    labels, templates = check_labels(labels), check_templates(templates)
    prototypes = text_prototypes(encoder, labels, templates)
    probs = probabilities(encoder.encode_images([image]), prototypes, encoder.scoring)[0]
    order = np.argsort(-probs, kind="stable")
    return [{"label": labels[i], "probability": round(float(probs[i]), 6)} for i in order]
