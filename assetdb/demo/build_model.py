"""Reproduce the shipped demo model: generate shape images with captions, build a small
random-weight CLIP whose tokenizer spells the domain's words whole, and train it from
scratch with the same trainer `assetdb finetune` runs.

    python -m assetdb.demo.build_model --out assetdb/demo/model

CPU only; see docs/finetune.md for the wall time measured.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from assetdb.demo import shapes

# The recipe of the shipped model. Changing it changes the model: re-measure.
RECIPE = {
    "count": 8000, "seed": 0,
    # 64 px images are read at 48 px: 6x6 patches of 8 px.
    "model": {"embed_dim": 64, "text_width": 64, "vision_width": 64, "layers": 3, "heads": 4,
              "image_size": 48, "patch_size": 8},
    "train": {"epochs": 20, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.05,
              "val_fraction": 0.1, "warmup_fraction": 0.03},
}


def build(out: Path, work: Path, recipe: dict = RECIPE, threads: int | None = None) -> dict:
    from assetdb.embedding.tiny import build_tiny_clip
    from assetdb.training.pairs import load_pairs
    from assetdb.training.trainer import TrainConfig, finetune

    started = time.perf_counter()
    pairs_file = shapes.write_training_pairs(work / "data", recipe["count"], seed=recipe["seed"])
    base = build_tiny_clip(work / "base", words=shapes.vocabulary(), seed=recipe["seed"],
                           **recipe["model"])
    cpu0 = time.process_time()

    def on_step(step: int, total: int, loss: float) -> None:
        if step % 20 == 0 or step == total:
            print(f"step {step}/{total} loss {loss:.3f} "
                  f"({time.perf_counter() - started:.0f} s wall, "
                  f"{time.process_time() - cpu0:.0f} s CPU)", file=sys.stderr, flush=True)

    report = finetune(str(base), load_pairs(pairs_file), out,
                      TrainConfig(seed=recipe["seed"], threads=threads, **recipe["train"]),
                      on_step=on_step, log=lambda m: print(m, file=sys.stderr, flush=True))
    result = report.as_dict()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu0, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="new model directory")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    with tempfile.TemporaryDirectory(prefix="assetdb-shapes-") as tmp:
        result = build(args.out, Path(tmp), threads=args.threads)
    for name in ("README.md",):  # sentence-transformers' generic card says nothing true here
        (args.out / name).unlink(missing_ok=True)
    print(f"trained in {result['seconds']} s (total with data generation "
          f"{result['total_seconds']} s); saved to {args.out}")


if __name__ == "__main__":
    main()
