"""Evaluate a model: zero-shot accuracy on a folder of class folders, or retrieval
recall@K on (image, caption) pairs. Uses the Encoder, exactly as search does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assetdb.classify.zeroshot import DEFAULT_TEMPLATES, probabilities, text_prototypes
from assetdb.embedding.batches import embed_paths
from assetdb.embedding.encoder import Encoder
from assetdb.errors import AssetdbError
from assetdb.kinds.registry import kind_for_path
from assetdb.training.metrics import KS, recall_at_k
from assetdb.training.pairs import Pair

Progress = Callable[[int], None]


def _embed(encoder: Encoder, paths: Sequence[Path], batch_size: int, workers: int,
           progress: Progress | None) -> np.ndarray:
    vectors: dict[Path, np.ndarray] = {}
    for batch in embed_paths(encoder, paths, batch_size, workers):
        for path, vector, error in batch:
            if vector is None:
                raise AssetdbError(f"cannot embed {path}: {error}")
            vectors[path] = vector
        if progress:
            progress(len(batch))
    return np.stack([vectors[p] for p in paths])


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """{label: image files} from a folder whose sub-folders are classes. The label is
    the sub-folder's name with '_' and '-' read as spaces."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise AssetdbError(f"not a folder: {folder}")
    classes: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*")
                       if p.is_file() and kind_for_path(p) is not None)
        if files:
            classes[sub.name.replace("_", " ").replace("-", " ").strip()] = files
    if len(classes) < 2:
        raise AssetdbError(f"{folder} needs at least two sub-folders of images (one per class)")
    return classes


def zero_shot_accuracy(
    encoder: Encoder, folder: Path, templates: Sequence[str] = DEFAULT_TEMPLATES, *,
    batch_size: int = 32, workers: int = 2, progress: Progress | None = None,
) -> dict[str, Any]:
    classes = class_folders(folder)
    labels = list(classes)
    prototypes = text_prototypes(encoder, labels, templates)  # validates the templates
    paths = [p for files in classes.values() for p in files]
    truth = np.array([i for i, files in enumerate(classes.values()) for _ in files])
    probs = probabilities(_embed(encoder, paths, batch_size, workers, progress), prototypes,
                          encoder.scoring)
    predicted = probs.argmax(axis=1)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    per_class = {
        label: {"images": int((truth == i).sum()),
                "accuracy": float((predicted[truth == i] == i).mean())}
        for i, label in enumerate(labels)
    }
    return {
        "mode": "zero-shot", "model": encoder.name, "images": len(paths), "classes": labels,
        "templates": list(templates), "accuracy": float((predicted == truth).mean()),
        "top5_accuracy": float((top5 == truth[:, None]).any(axis=1).mean()),
        "per_class": per_class,
    }


def retrieval_recall(
    encoder: Encoder, pairs: Sequence[Pair], ks: Sequence[int] = KS, *,
    batch_size: int = 32, workers: int = 2, progress: Progress | None = None,
) -> dict[str, Any]:
    if not pairs:
        raise AssetdbError("no pairs to evaluate")
    images = _embed(encoder, [p.image for p in pairs], batch_size, workers, progress)
    texts = encoder.encode_texts([p.caption for p in pairs])
    result = {"mode": "retrieval", "model": encoder.name,
              "text_model": getattr(encoder, "text_name", None), "pairs": len(pairs),
              "recall": recall_at_k(images, texts, [p.caption for p in pairs], ks)}
    langs = sorted({p.language for p in pairs if p.language})
    if langs:  # each language's captions against the images they describe
        result["per_language"] = {}
        for lang in langs:
            rows = [i for i, p in enumerate(pairs) if p.language == lang]
            result["per_language"][lang] = {
                "pairs": len(rows),
                "recall": recall_at_k(images[rows], texts[rows],
                                      [pairs[i].caption for i in rows], ks)}
    return result
