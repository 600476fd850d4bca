"""The issue-19 figures of the shipped demo model (assetdb/demo/model), on held-out
generated images, exact cosine top-K in numpy (the same as the tests through the
database; assetdb/demo/measure.py):

- per language, text -> image precision@5 on the (colour, shape) pairs the text
  distillation never saw, its ratio to English, and zero-shot shape accuracy with labels
  in that language;
- the second renderer (assetdb/demo/shapes_eval.py): zero-shot shape accuracy and
  image -> image top-3;
- English through the multilingual text model and through the model's own text tower,
  against the model shipped before issue 19 (docs/results/demo_model_before_19.json).

    PYTHONPATH=. python benchmarks/multilingual_demo.py [--out docs/results/multilingual_demo.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks._common import machine, report

BEFORE = Path(__file__).resolve().parents[1] / "docs" / "results" / "demo_model_before_19.json"
BARS = {"p5": 0.9, "p5_ratio": 0.95, "zero_shot": 0.9, "r2_zero_shot": 0.9, "r2_i2i": 0.8,
        "english_drop": 0.02}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="default: the shipped demo model")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from assetdb.demo import MODEL_DIR
    from assetdb.demo.languages import LANGUAGES
    from assetdb.demo.measure import measure
    from assetdb.embedding.encoder import load_encoder

    model = args.model or str(MODEL_DIR)
    info = machine()
    multi = measure(load_encoder(model), LANGUAGES)
    own = measure(load_encoder(model, text_model="builtin"), ["en"])
    before = json.loads(BEFORE.read_text()) if BEFORE.is_file() else None
    en = multi["languages"]["en"]
    rows = []
    for lang, fig in multi["languages"].items():
        ratio = fig["p5_held_out"] / en["p5_held_out"]
        rows.append({"language": lang, "P@5 held-out": fig["p5_held_out"],
                     "P@5 all 48": fig["p5_all"], "ratio to en": ratio,
                     "zero-shot": fig["zero_shot"],
                     "bars hold": fig["p5_held_out"] >= BARS["p5"]
                     and ratio >= BARS["p5_ratio"] and fig["zero_shot"] >= BARS["zero_shot"]})
    r2 = multi["second_renderer"]
    english = []
    for name, fig, i2i in (("multilingual text model", en, multi["image_to_image_top3"]),
                           ("own text tower", own["languages"]["en"],
                            own["image_to_image_top3"])):
        english.append({"english via": name, "P@5 held-out": fig["p5_held_out"],
                        "P@5 all 48": fig["p5_all"], "zero-shot": fig["zero_shot"],
                        "image->image": i2i})
    if before:
        b = before["languages"]["en"]
        english.append({"english via": "model shipped before (own tower)",
                        "P@5 held-out": b["p5_held_out"], "P@5 all 48": b["p5_all"],
                        "zero-shot": b["zero_shot"], "image->image": before["image_to_image_top3"]})
    generalisation = [{"renderer": "second (eval only)", "zero-shot": r2["zero_shot"],
                       "image->image top-3": r2["image_to_image_top3"],
                       "bars hold": r2["zero_shot"] >= BARS["r2_zero_shot"]
                       and r2["image_to_image_top3"] >= BARS["r2_i2i"]}]
    if before:
        b2 = before["second_renderer"]
        generalisation.append({"renderer": "second, model shipped before",
                               "zero-shot": b2["zero_shot"],
                               "image->image top-3": b2["image_to_image_top3"],
                               "bars hold": None})
    info["load_average_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    report("issue 19: the demo model's figures",
           {"machine": info, "model": model, "bars": BARS, "multilingual": multi,
            "own_text_tower": own, "before": before},
           {"per language": rows, "english": english, "generalisation": generalisation},
           args.out)


if __name__ == "__main__":
    main()
