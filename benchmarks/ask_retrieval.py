"""`assetdb ask` on the demo catalogue: is the right product among the sources, and does
the prompt that reaches the LLM carry its made-up facts?

The demo catalogue (288 shapes, 6 of each (shape, colour) product, each product with a
description carrying a made-up part number and weight) is built with `assetdb demo`'s
own code and the shipped demo model, in a throwaway embedded PostgreSQL. User photos are
drawn fresh with the demo renderer from other seeds (other positions, sizes, angles,
backgrounds): none is in the catalogue. For each photo, "What is the part number of this
item?" is asked through the ask service with k sources (default 2):

- retrieval: the right product (same shape and colour) is among the sources;
- through llm-echo (a real llm plugin that answers with the prompt it got): the prompt
  carries the right product's part number, and the photo is the first attachment.

    PYTHONPATH=. python benchmarks/ask_retrieval.py --out docs/results/ask_retrieval.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks._common import machine, report

QUESTION = "What is the part number of this item?"


def main(tmp: Path) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=192, help="fresh user photos (4 a product)")
    ap.add_argument("-k", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    info = machine()
    os.environ["LLM_USER_PATH"] = str(tmp / "llm")  # llm's config: never the user's

    from assetdb.ask.models import resolve_model, start_answer
    from assetdb.ask.retrieve import UserImage, retrieve
    from assetdb.catalog.catalogue import Catalog
    from assetdb.demo import shapes, walkthrough

    settings = walkthrough.demo_settings(tmp / "demo")
    walkthrough.start_server(settings)
    encoder = walkthrough.load_demo_model(settings)
    t0 = time.perf_counter()
    walkthrough.prepare(settings, encoder)
    build_s = time.perf_counter() - t0
    catalogue = Catalog(settings)
    echo = resolve_model("echo")

    photos = list(shapes.generate(tmp / "photos", args.photos, seed=args.seed, balanced=True))
    found = top1 = carried = 0
    misses: Counter[str] = Counter()
    t0 = time.perf_counter()
    for path, item in photos:
        image = UserImage(path.name, path.read_bytes())
        pack = retrieve(catalogue, QUESTION, k=args.k, image=image, encoder=lambda: encoder)
        right = [item.shape in s.tags and item.color in s.tags for s in pack.sources]
        found += any(right)
        top1 += right[0]
        if not any(right):
            misses[f"{item.color} {item.shape}"] += 1
        echoed = json.loads("".join(start_answer(settings, pack, echo, image).chunks()))
        part = shapes.product_facts(item.shape, item.color)[0]
        carried += (part in echoed["prompt"]
                    and echoed["attachments"][0]["id"] == image.query.sha256)
    ask_s = time.perf_counter() - t0
    n = len(photos)
    result = {
        "benchmark": "ask_retrieval", **info,
        "catalogue": walkthrough.CATALOGUE_SIZE, "photos": n, "k": args.k,
        "seed": args.seed, "question": QUESTION,
        "right_product_among_sources": round(found / n, 4),
        "right_product_first": round(top1 / n, 4),
        "echo_prompt_carries_right_part_no": round(carried / n, 4),
        "misses": dict(misses.most_common()),
        "catalogue_build_s": round(build_s, 1),
        "seconds_per_question": round(ask_s / n, 3),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    report("assetdb ask on the demo catalogue", result,
           {"results": [{"photos": n, "k": args.k,
                         "right among sources": result["right_product_among_sources"],
                         "right first": result["right_product_first"],
                         "echo prompt has part no.":
                             result["echo_prompt_carries_right_part_no"]}]},
           args.out)
    from assetdb.db import embedded

    embedded.stop(settings.home)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="assetdb-ask-bench-") as d:
        os.chmod(d, 0o755)  # the embedded server's own user must reach its data folder
        main(Path(d))
