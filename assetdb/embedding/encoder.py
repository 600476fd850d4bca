"""What callers may ask of a model (the Encoder protocol), and how one is loaded.

A backend (assetdb.embedding.registry) turns a model name or directory into an Encoder.
Callers use only what the protocol declares: the towers it has, its dimension, how its
similarities become probabilities (`scoring`), the preprocessing the decode threads may
do ahead of time (`preprocess`), and its batch size. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from assetdb.errors import ModelError

CLIP_MAX_TOKENS = 77
IMAGE, TEXT = "image", "text"


@dataclass(frozen=True)
class Preprocess:
    """What the model's own image preprocessing does, so that decode threads can shrink
    an image ahead of time without changing the pixels the model sees."""

    image_size: int  # the square edge the model reads
    resize_shortest_edge: int | None = None  # None: unknown, decode threads do not resize
    resample: int = int(Image.Resampling.BICUBIC)


@dataclass(frozen=True)
class SoftmaxScoring:
    """CLIP: a softmax over the labels of cosine similarity times the logit scale."""

    logit_scale: float = 100.0

    def probabilities(self, similarities: np.ndarray) -> np.ndarray:
        return softmax(self.logit_scale * np.asarray(similarities, dtype=np.float64))


@dataclass(frozen=True)
class SigmoidScoring:
    """SigLIP: each label on its own, sigmoid(scale * similarity + bias)."""

    logit_scale: float
    logit_bias: float

    def probabilities(self, similarities: np.ndarray) -> np.ndarray:
        logits = self.logit_scale * np.asarray(similarities, dtype=np.float64) + self.logit_bias
        return 1.0 / (1.0 + np.exp(-logits))


class Scoring(Protocol):
    def probabilities(self, similarities: np.ndarray) -> np.ndarray:
        """(N, L) cosine similarities of N images to L labels -> (N, L) probabilities."""
        ...


@runtime_checkable
class Encoder(Protocol):
    name: str  # recorded with every vector: the identity of the vector space
    dimension: int
    towers: frozenset[str]  # IMAGE and/or TEXT
    preprocess: Preprocess
    scoring: Scoring
    batch_size: int

    @property
    def image_size(self) -> int: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dimension) float32, L2-normalised."""
        ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, dimension) float32, L2-normalised."""
        ...


class PairedEncoder:
    """An image encoder with a separate text encoder trained into the same space (a
    multilingual student of CLIP's text tower, say). The pair is named by the image
    encoder: stored vectors come from it, and stay valid with any compatible text side."""

    def __init__(self, image: Encoder, text: Encoder) -> None:
        if IMAGE not in image.towers or TEXT not in text.towers:
            raise ModelError("a paired encoder needs an image tower and a text tower")
        if image.dimension != text.dimension:
            raise ModelError(
                f"the text model {text.name!r} makes {text.dimension}-d vectors, the image "
                f"model {image.name!r} {image.dimension}-d: they are not one space"
            )
        self.image, self.text = image, text
        self.name, self.dimension = image.name, image.dimension
        self.text_name = text.name
        self.towers = frozenset({IMAGE, TEXT})
        self.preprocess, self.scoring = image.preprocess, image.scoring
        self.batch_size = image.batch_size

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text.encode_texts(texts)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.image.encode_images(images)


def canonical_model_name(name: str) -> str:
    """Local directories are stored by absolute path; hub names as given."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


_LOADED: dict[tuple[str, str | None, int], Encoder] = {}


def _load_one(name: str, device: str | None, batch_size: int) -> Encoder:
    from assetdb.embedding.registry import backend_for

    key = (canonical_model_name(name), device, batch_size)
    if key not in _LOADED:
        _LOADED[key] = backend_for(name).load(name, device, batch_size)
    return _LOADED[key]


def text_model_for(name: str, text_model: str | None = None) -> str | None:
    """The separate text model to pair with the image model `name`: `text_model` when
    given, else ASSETDB_TEXT_MODEL, else the one the model directory names; None (or
    `builtin`): the model's own text tower."""
    from assetdb.config import read_setting
    from assetdb.embedding.text_model import BUILTIN, is_text_model, referenced_text_model

    if is_text_model(name):
        return None  # a text model on its own
    chosen = text_model or read_setting("ASSETDB_TEXT_MODEL")
    if chosen == BUILTIN:
        return None
    return chosen or referenced_text_model(name)


def load_encoder(name: str, device: str | None = None, batch_size: int = 32,
                 text_model: str | None = None) -> Encoder:
    """Load (once per process) the model named by ASSETDB_MODEL or a CLI option, through
    the first registered backend that claims it (assetdb.embedding.registry), paired with
    its separate text model when there is one (text_model_for). The pair is checked from
    the manifests (dimension, teacher) before any weights load."""
    from assetdb.embedding.text_model import check_pair, declared_dimension, read_manifest

    text_name = text_model_for(name, text_model)
    if text_name is None:
        return _load_one(name, device, batch_size)
    manifest = read_manifest(text_name)
    check_pair(name, declared_dimension(name), manifest)
    key = (canonical_model_name(name) + "\n" + manifest.name, device, batch_size)
    if key not in _LOADED:
        image = _load_one(name, device, batch_size)
        check_pair(name, image.dimension, manifest)
        _LOADED[key] = PairedEncoder(image, _load_one(manifest.name, device, batch_size))
    return _LOADED[key]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


__all__ = ["Encoder", "PairedEncoder", "Preprocess", "Scoring", "SigmoidScoring",
           "SoftmaxScoring", "canonical_model_name", "load_encoder", "softmax",
           "text_model_for"]
