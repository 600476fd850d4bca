"""Where the demo model's shape accuracy on the second renderer comes from: run only the
image stages of a recipe (no text step) and measure zero-shot shape accuracy with the
model's own text tower, on the second renderer (480 images, seed 31337, with the
breakdown by outline, background and shape) and on the training generator's held-out
images (120, seed 31337). A recipe of shape-only stages takes 4-12 minutes on the 2-core
machine, a quarter to a half of a full build: a quick way to compare what teaches shape.

    PYTHONPATH=. python benchmarks/shape_stages.py RECIPE.json [--threads 1] [--out F]

RECIPE.json holds the keys that replace the shipped recipe's (as `build_model --recipe`);
its `variety` and `augment` entries are added to the shipped ones.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks._common import machine, report


def shape_accuracy(model: Path) -> dict:
    from assetdb.demo import languages, measure, shapes, shapes_eval
    from assetdb.embedding.encoder import load_encoder

    encoder = load_encoder(str(model), text_model="builtin")
    with tempfile.TemporaryDirectory() as tmp:
        second = list(shapes_eval.generate(Path(tmp) / "second", 480, seed=31337))
        own = list(shapes.generate(Path(tmp) / "own", measure.ZERO_SHOT,
                                   seed=measure.ZERO_SHOT_SEED, balanced=True))
        second_vectors = measure._vectors(encoder, [p for p, _ in second])
        own_vectors = measure._vectors(encoder, [p for p, _ in own])
    protos = []
    for shape in shapes.SHAPES:
        v = encoder.encode_texts(languages.shape_prompts("en", shape)).mean(axis=0)
        protos.append(v / np.linalg.norm(v))
    protos_ = np.stack(protos)

    def right(vectors: np.ndarray, items: list) -> np.ndarray:
        guess = (vectors @ protos_.T).argmax(axis=1)
        return np.array([shapes.SHAPES[g] == it.shape for g, it in zip(guess, items,
                                                                       strict=True)])

    second_items = [it for _, it in second]
    ok = right(second_vectors, second_items)
    result = {"second_renderer_zero_shot": round(float(ok.mean()), 3),
              "own_zero_shot": round(float(right(own_vectors, [it for _, it in own]).mean()),
                                     3)}
    for name, key in (("outlined", lambda it: it.outline), ("texture", lambda it: it.texture),
                      ("shape", lambda it: it.shape)):
        groups: dict[str, list[bool]] = defaultdict(list)
        for hit, it in zip(ok, second_items, strict=True):
            groups[str(key(it))].append(bool(hit))
        result[name] = {k: round(float(np.mean(v)), 2) for k, v in groups.items()}
    return result


def main() -> None:
    from assetdb.demo.build_model import (
        RECIPE,
        recipe_problem,
        train_image_stages,
        with_recipe,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    spec = json.loads(args.recipe.read_text(encoding="utf-8"))
    recipe = with_recipe(RECIPE, spec)
    problem = recipe_problem(recipe)
    if problem:
        ap.error(problem)
    info = machine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="assetdb-shape-stages-") as tmp:
        stages = train_image_stages(recipe, Path(tmp), Path(tmp) / "model", args.threads,
                                    "cpu")
        seconds = round(time.perf_counter() - started, 1)
        result = shape_accuracy(Path(tmp) / "model")
    result.update(recipe=str(args.recipe), seconds=seconds,
                  steps=sum(s["steps"] for s in stages),
                  last_loss=[round(s["losses"][-1], 3) for s in stages], machine=info)
    rows = [{k: result[k] for k in ("second_renderer_zero_shot", "own_zero_shot", "steps",
                                    "seconds")}]
    report(f"shape stages of {args.recipe}", result, {"shape zero-shot": rows}, args.out)


if __name__ == "__main__":
    main()
