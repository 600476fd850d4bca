"""Where a demo model fails on the second renderer (assetdb/demo/shapes_eval.py): zero-shot
shape accuracy by outline, background texture, shape, image shape and rotation, and
colour accuracy by texture, on 480 images (seed 31337).

    PYTHONPATH=. python benchmarks/second_renderer_breakdown.py [MODEL_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    from assetdb.demo import MODEL_DIR, languages, measure, shapes, shapes_eval
    from assetdb.embedding.encoder import load_encoder

    model = sys.argv[1] if len(sys.argv) > 1 else str(MODEL_DIR)
    encoder = load_encoder(model, text_model="builtin")
    with tempfile.TemporaryDirectory() as tmp:
        rows = list(shapes_eval.generate(Path(tmp), 480, seed=31337))
        vectors = measure._vectors(encoder, [p for p, _ in rows])
    items = [item for _, item in rows]

    def prototypes(texts_of: list[list[str]]) -> np.ndarray:
        out = []
        for texts in texts_of:
            v = encoder.encode_texts(texts).mean(axis=0)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)

    shape_of = (vectors @ prototypes([languages.shape_prompts("en", s)
                                      for s in shapes.SHAPES]).T).argmax(axis=1)
    right = np.array([shapes.SHAPES[p] == it.shape for p, it in zip(shape_of, items,
                                                                    strict=True)])
    colour_of = (vectors @ prototypes([[f"a {c} {s}" for s in shapes.SHAPES]
                                       for c in shapes.COLORS]).T).argmax(axis=1)
    colour_right = np.array([list(shapes.COLORS)[p] == it.color
                             for p, it in zip(colour_of, items, strict=True)])
    print(f"model {model}: zero-shot {right.mean():.3f}, colour {colour_right.mean():.3f}")
    for name, key in (("outlined", lambda it: it.outline), ("texture", lambda it: it.texture),
                      ("shape", lambda it: it.shape),
                      ("square image", lambda it: it.width == it.height),
                      ("turned > 30 degrees", lambda it: abs(it.angle) > 30)):
        groups: dict = defaultdict(list)
        for ok, it in zip(right, items, strict=True):
            groups[key(it)].append(ok)
        print(f"  {name}: " + ", ".join(f"{k} {np.mean(v):.2f} ({len(v)})"
                                        for k, v in groups.items()))
    groups = defaultdict(list)
    for ok, it in zip(colour_right, items, strict=True):
        groups[it.texture].append(ok)
    print("  colour by texture: " + ", ".join(f"{k} {np.mean(v):.2f}"
                                               for k, v in groups.items()))


if __name__ == "__main__":
    main()
