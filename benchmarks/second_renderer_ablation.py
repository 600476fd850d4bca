"""Which of the second renderer's differences costs a demo model its shape accuracy:
144 images (every (shape, colour) pair 3 times, seed 7) drawn by
assetdb/demo/shapes_eval.py with every difference switched off (upright, filled, plain,
centred, square, no shade, JPEG 95), then with one difference at a time switched back on.

    PYTHONPATH=. python benchmarks/second_renderer_ablation.py [MODEL_DIR]
"""

from __future__ import annotations

import dataclasses
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

CLEAN = {"outline": False, "texture": "plain", "angle": 0.0, "stretch": 1.0, "width": 64,
         "height": 64, "dx": 0.0, "dy": 0.0, "shade": 0.0, "jpeg": 95}
FACTORS = [["jpeg"], ["shade"], ["stretch"], ["width", "height"], ["dx", "dy"], ["angle"],
           ["texture"], ["outline"], ["radius"]]


def main() -> None:
    from assetdb.demo import MODEL_DIR, languages, measure, shapes, shapes_eval
    from assetdb.embedding.encoder import load_encoder

    model = sys.argv[1] if len(sys.argv) > 1 else str(MODEL_DIR)
    encoder = load_encoder(model, text_model="builtin")
    protos = []
    for s in shapes.SHAPES:
        v = encoder.encode_texts(languages.shape_prompts("en", s)).mean(axis=0)
        protos.append(v / np.linalg.norm(v))
    rng = random.Random(7)
    base = [shapes_eval.sample(rng, shape=s, color=c)
            for s, c in [(s, c) for s in shapes.SHAPES for c in shapes.COLORS] * 3]

    def accuracy(keep: list[str]) -> tuple[float, dict[str, float]]:
        items = [dataclasses.replace(it, **{**CLEAN, **{k: getattr(it, k) for k in keep}})
                 for it in base]
        draw = random.Random(1)
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, it in enumerate(items):
                path = Path(tmp) / f"{i}.png"
                shapes_eval.render(it, draw).save(path)
                paths.append(path)
            vectors = measure._vectors(encoder, paths)
        ok = [shapes.SHAPES[p] == it.shape
              for p, it in zip((vectors @ np.stack(protos).T).argmax(axis=1), items,
                               strict=True)]
        per = {s: float(np.mean([o for o, it in zip(ok, items, strict=True) if it.shape == s]))
               for s in shapes.SHAPES}
        return float(np.mean(ok)), per

    print(f"model {model}")
    for name, keep in [("all off", [])] + [(f"+ {f[0]}", f) for f in FACTORS]:
        acc, per = accuracy(keep)
        print(f"{name:12} {acc:.2f}  " + " ".join(f"{s} {v:.2f}" for s, v in per.items()),
              flush=True)


if __name__ == "__main__":
    main()
