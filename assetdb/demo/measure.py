"""The demo model's figures on held-out generated images, with exact cosine top-K in
numpy (what the tests check through the database): text -> image precision@5 and
zero-shot shape accuracy per language, image -> image top-3, on the training
generator's held-out seeds and on the second renderer (assetdb/demo/shapes_eval.py).

    python -m assetdb.demo.measure [--model DIR] [--text-model DIR|builtin] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assetdb.demo import languages, shapes, shapes_eval

CATALOGUE_SEED, CATALOGUE = 99, 240  # 5 images of every (shape, colour) pair
ZERO_SHOT_SEED, ZERO_SHOT = 31337, 120
QUERY_SEED = 4321  # image -> image queries, one per (shape, colour) pair


def _vectors(encoder: Any, paths: Sequence[Path]) -> np.ndarray:
    from assetdb.embedding.images import load_image

    out = []
    for i in range(0, len(paths), 64):
        out.append(encoder.encode_images([load_image(p, encoder.image_size)
                                          for p in paths[i : i + 64]]))
    return np.concatenate(out)


def precision_at_5(encoder: Any, items: Sequence[Any], vectors: np.ndarray, language: str,
                   combos: Sequence[tuple[str, str]]) -> float:
    queries = [languages.color_query(language, c, s) for c, s in combos]
    sims = encoder.encode_texts(queries) @ vectors.T
    right = 0
    for (color, shape), row in zip(combos, sims, strict=True):
        top = np.argsort(-row)[:5]
        right += sum(items[i].shape == shape and items[i].color == color for i in top)
    return right / (5 * len(combos))


def zero_shot(encoder: Any, items: Sequence[Any], vectors: np.ndarray, language: str) -> float:
    protos = []
    for shape in shapes.SHAPES:
        v = encoder.encode_texts(languages.shape_prompts(language, shape)).mean(axis=0)
        protos.append(v / np.linalg.norm(v))
    predicted = (vectors @ np.stack(protos).T).argmax(axis=1)
    return float(np.mean([shapes.SHAPES[p] == it.shape
                          for p, it in zip(predicted, items, strict=True)]))


def image_to_image_top3(q_items: Sequence[Any], q_vecs: np.ndarray, items: Sequence[Any],
                        vectors: np.ndarray) -> float:
    right = 0
    for item, row in zip(q_items, q_vecs @ vectors.T, strict=True):
        top = np.argsort(-row)[:3]
        right += sum(items[i].shape == item.shape and items[i].color == item.color
                     for i in top)
    return right / (3 * len(q_items))


def measure(encoder: Any, langs: Sequence[str] = languages.LANGUAGES,
            work: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="assetdb-measure-") as tmp:
        root = Path(work or tmp)
        all_combos = [(c, s) for s in shapes.SHAPES for c in shapes.COLORS]
        cat = list(shapes.generate(root / "cat", CATALOGUE, seed=CATALOGUE_SEED,
                                   balanced=True))
        zs = list(shapes.generate(root / "zs", ZERO_SHOT, seed=ZERO_SHOT_SEED, balanced=True))
        q = list(shapes.generate(root / "q", 48, seed=QUERY_SEED, balanced=True))
        cat2 = list(shapes_eval.generate(root / "cat2", CATALOGUE, seed=CATALOGUE_SEED))
        zs2 = list(shapes_eval.generate(root / "zs2", ZERO_SHOT * 2, seed=ZERO_SHOT_SEED))
        q2 = list(shapes_eval.generate(root / "q2", 48, seed=QUERY_SEED))
        vec = {name: _vectors(encoder, [p for p, _ in rows])
               for name, rows in (("cat", cat), ("zs", zs), ("q", q), ("cat2", cat2),
                                  ("zs2", zs2), ("q2", q2))}
        items = {name: [it for _, it in rows] for name, rows in
                 (("cat", cat), ("zs", zs), ("q", q), ("cat2", cat2), ("zs2", zs2),
                  ("q2", q2))}
    per_language = {}
    for lang in langs:
        per_language[lang] = {
            "p5_held_out": precision_at_5(encoder, items["cat"], vec["cat"], lang,
                                          languages.HELD_OUT_COMBOS),
            "p5_all": precision_at_5(encoder, items["cat"], vec["cat"], lang, all_combos),
            "zero_shot": zero_shot(encoder, items["zs"], vec["zs"], lang),
        }
    return {
        "model": encoder.name, "text_model": getattr(encoder, "text_name", None),
        "languages": per_language,
        "image_to_image_top3": image_to_image_top3(items["q"], vec["q"], items["cat"],
                                                   vec["cat"]),
        "second_renderer": {
            "zero_shot": zero_shot(encoder, items["zs2"], vec["zs2"], "en"),
            "image_to_image_top3": image_to_image_top3(items["q2"], vec["q2"], items["cat2"],
                                                       vec["cat2"]),
            "images": len(items["zs2"]),
        },
    }


def table(result: dict[str, Any]) -> str:
    en = result["languages"].get("en", {})
    lines = ["language  P@5 held-out  P@5 all  ratio to en  zero-shot"]
    for lang, fig in result["languages"].items():
        ratio = fig["p5_held_out"] / en["p5_held_out"] if en.get("p5_held_out") else float("nan")
        lines.append(f"{lang:8}  {fig['p5_held_out']:12.3f}  {fig['p5_all']:7.3f}  "
                     f"{ratio:11.3f}  {fig['zero_shot']:9.3f}")
    r2 = result["second_renderer"]
    lines.append(f"image -> image top-3: {result['image_to_image_top3']:.3f}")
    lines.append(f"second renderer: zero-shot {r2['zero_shot']:.3f} ({r2['images']} images), "
                 f"image -> image top-3 {r2['image_to_image_top3']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from assetdb.demo import MODEL_DIR
    from assetdb.embedding.encoder import load_encoder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(MODEL_DIR))
    parser.add_argument("--text-model", default=None,
                        help="a text model directory, or builtin (the model's own tower)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    encoder = load_encoder(args.model, text_model=args.text_model)
    langs = ["en"] if args.text_model == "builtin" else languages.LANGUAGES
    result = measure(encoder, langs)
    print(json.dumps(result, indent=1) if args.json else table(result))


if __name__ == "__main__":
    main()
