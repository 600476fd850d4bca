"""The ONNX backend against torch on the shipped demo model: vectors, meaning, and how fast
a fresh CLI process answers.

    python -m benchmarks.onnx_checks --out docs/results/onnx_checks.json

1. Vectors: min cosine of ONNX fp32 and int8 to torch on the held-out shape images and
   on the demo's queries.
2. Meaning, as tests/test_demo_model.py measures it, through each backend (exact cosine
   search over the held-out catalogue of 240 images, seed 99): text -> image precision@5
   over the 48 (colour, shape) queries, image -> image precision@3 over 48 queries, and
   zero-shot shape accuracy on 120 held-out images. The bar: int8 within 0.02 of torch.
3. Interchangeability: the catalogue embedded with torch, searched with ONNX query
   vectors (and the other way round): the share of the 48 queries whose top-10 is the
   same list.
4. Fresh processes: `assetdb search "text" --json` with ASSETDB_MODEL = the torch
   model and = the ONNX export, and `assetdb similar ID --json`, each --runs times, on a
   catalogue in a throwaway embedded server; wall and CPU seconds per run, and which
   heavy modules each process imported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import CACHE, bench_database, init_database, machine, median, report

HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime", "sqlalchemy")
PROBE = """
import runpy, sys
sys.argv = ["assetdb", *{args!r}]
try:
    runpy.run_module("assetdb", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


REFUSED: dict[str, str] = {}  # export -> why the export refused to save it


def demo_exports() -> dict[str, Path]:
    """fp32, int8 dynamic and int8 static exports of the demo model, made once; the
    static one is calibrated on 24 shape images of their own seed (7: none of the
    held-out sets below) and 8 of the camera-size JPEGs of benchmarks.embedding."""
    from assetdb.demo import shapes
    from assetdb.embedding.backends.onnx_clip import MANIFEST_NAME
    from assetdb.embedding.onnx_export import ExportError, export
    from assetdb.shipped import DEMO_MODEL_DIR

    out = {"fp32": CACHE / "demo-onnx", "int8": CACHE / "demo-onnx-int8",
           "int8-static": CACHE / "demo-onnx-int8-static"}
    for precision, path in list(out.items()):
        if not (path / MANIFEST_NAME).is_file():
            calibration: list[Path] = []
            if precision == "int8-static":
                folder = CACHE / "demo-calibration"
                if folder.exists():
                    import shutil

                    shutil.rmtree(folder)
                calibration = [p for p, _ in shapes.write_class_folders(folder, 24, seed=7)]
                # and a few photos: the export's own check embeds photo-like images too,
                # whose activations a shapes-only calibration would clip
                from benchmarks.embedding import generate_images

                calibration += generate_images(8, CACHE / "images")
            try:
                export(str(DEMO_MODEL_DIR), path, int8=precision != "fp32", overwrite=True,
                       calibration=calibration)
            except ExportError as exc:  # the export's own cosine check refused it
                if precision != "int8-static":
                    raise
                REFUSED[precision] = str(exc)
                del out[precision]
    return out


def _precision(hits: np.ndarray, truth: list[tuple[str, str]],
               wanted: list[tuple[str, str]]) -> float:
    right = sum(truth[j] == wanted[i] for i, row in enumerate(hits) for j in row)
    return right / hits.size


def meaning(encoders: dict[str, Any], work: Path) -> dict[str, Any]:
    from assetdb.classify.zeroshot import probabilities, text_prototypes
    from assetdb.demo import shapes
    from assetdb.embedding.images import load_image

    catalogue = shapes.write_class_folders(work / "catalogue", 240, seed=99)
    queries_img = shapes.write_class_folders(work / "q", 48, seed=4321)
    held_out = shapes.write_class_folders(work / "classes", 120, seed=31337)
    truth = [(item.shape, item.color) for _, item in catalogue]
    pairs = [(s, c) for s in shapes.SHAPES for c in shapes.COLORS]
    texts = [f"a {c} {s}" for s, c in pairs]
    out: dict[str, Any] = {"bars": {}, "vectors": {}}
    cat_vecs: dict[str, np.ndarray] = {}
    text_vecs: dict[str, np.ndarray] = {}
    for name, enc in encoders.items():
        load = [load_image(p, enc.image_size) for p, _ in catalogue]
        cat_vecs[name] = cat = enc.encode_images(load)
        text_vecs[name] = tv = enc.encode_texts(texts)
        t2i = np.argsort(-(tv @ cat.T), axis=1)[:, :5]
        qv = enc.encode_images([load_image(p, enc.image_size) for p, _ in queries_img])
        i2i = np.argsort(-(qv @ cat.T), axis=1)[:, :3]
        labels = list(shapes.SHAPES)
        hv = enc.encode_images([load_image(p, enc.image_size) for p, _ in held_out])
        probs = probabilities(hv, text_prototypes(enc, labels, shapes.SHAPE_TEMPLATES),
                              enc.scoring)
        accuracy = float(np.mean([labels[int(p.argmax())] == item.shape
                                  for p, (_, item) in zip(probs, held_out, strict=True)]))
        out["bars"][name] = {
            "text_to_image_precision_at_5": _precision(t2i, truth, pairs),
            "image_to_image_precision_at_3": _precision(
                i2i, truth, [(item.shape, item.color) for _, item in queries_img]),
            "zero_shot_accuracy": accuracy,
        }
    base = "torch fp32"
    for name in encoders:
        if name == base:
            continue
        out["vectors"][name] = {
            "min_cosine_images": float(np.min(np.sum(cat_vecs[name] * cat_vecs[base], 1))),
            "min_cosine_texts": float(np.min(np.sum(text_vecs[name] * text_vecs[base], 1))),
            # Catalogue from torch, queries from this backend (and the reverse).
            "same_top10_queries_on_torch_catalogue": _same_top(
                text_vecs[base], text_vecs[name], cat_vecs[base], cat_vecs[base]),
            "same_top10_torch_queries_on_its_catalogue": _same_top(
                text_vecs[base], text_vecs[base], cat_vecs[base], cat_vecs[name]),
        }
        for bar, value in out["bars"][name].items():
            out["vectors"][name][f"{bar}_minus_torch"] = value - out["bars"][base][bar]
    return out


def _same_top(q_a: np.ndarray, q_b: np.ndarray, c_a: np.ndarray, c_b: np.ndarray) -> float:
    a = np.argsort(-(q_a @ c_a.T), axis=1)[:, :10]
    b = np.argsort(-(q_b @ c_b.T), axis=1)[:, :10]
    return float(np.mean([list(x) == list(y) for x, y in zip(a, b, strict=True)]))


def fresh_process(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
                          env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{args} failed: {done.stderr[-2000:]}")
    heavy = next(line for line in done.stderr.splitlines() if line.startswith("HEAVY:"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "imported": heavy[6:].split(",") if heavy[6:] else []}


def cli_times(exports: dict[str, Path], work: Path, runs: int,
              extra_models: tuple[Path, ...] = ()) -> dict[str, Any]:
    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings
    from assetdb.db import embedded
    from assetdb.demo import shapes
    from assetdb.embedding.encoder import load_encoder
    from assetdb.shipped import DEMO_MODEL_DIR

    home = work / "home"
    home.mkdir(parents=True)
    for folder in (work.parent, work, home):  # the server may run as another user
        folder.chmod(0o711)
    os.environ["ASSETDB_HOME"] = str(home)
    # The export holds the model's own text tower: compare with the same (not the
    # multilingual text model the demo model directory names).
    torch_enc = load_encoder(str(DEMO_MODEL_DIR), text_model="builtin")
    sidecar = shapes.write_catalogue(work / "cat", 240, seed=99)
    (work / "cat").chmod(0o755)
    out: dict[str, Any] = {}
    with bench_database(home, "bench_cli") as url:
        init_database(url, torch_enc.name, torch_enc.dimension)
        Catalog(Settings.from_env()).ingest([str(work / "cat" / "images")],
                                            metadata_file=sidecar, encoder=torch_enc)
        env = {**os.environ, "ASSETDB_DATABASE_URL": url}
        cases = {
            "search, torch model": (["search", "a red circle", "--json"], str(DEMO_MODEL_DIR)),
            "search, ONNX fp32 export": (["search", "a red circle", "--json"],
                                         str(exports["fp32"])),
            "similar ID (no model)": (["similar", "5", "--json"], str(exports["fp32"])),
            "--help": (["--help"], str(exports["fp32"])),
        }
        for name, (args, model) in cases.items():
            rows = [fresh_process(args, {**env, "ASSETDB_MODEL": model,
                                         "ASSETDB_TEXT_MODEL": "builtin"})
                    for _ in range(runs)]
            out[name] = {"runs": rows, "median_wall_s": median([r["wall_s"] for r in rows]),
                         "median_cpu_s": median([r["cpu_s"] for r in rows]),
                         "imported": rows[-1]["imported"]}
        for extra in extra_models:
            out[f"search, {extra.name} export (1,000 rows)"] = _extra_model_times(
                home, extra, env, runs)
    embedded.stop(home)
    return out


def _extra_model_times(home: Path, model: Path, env: dict[str, str], runs: int
                       ) -> dict[str, Any]:
    """A fresh `assetdb search` with another export (e.g. ViT-B/32 from
    `benchmarks.embedding --backends`), on a catalogue of 1,000 random vectors made
    for that model: the cost of loading a full-size text tower in a new process."""
    import psycopg

    from assetdb.embedding.backends.onnx_clip import OnnxClip
    from assetdb.sqlsurface.vectors import vector_text

    enc = OnnxClip(str(model))
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((1000, enc.dimension)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with bench_database(home, "bench_cli_extra") as url:
        init_database(url, enc.name, enc.dimension)
        with psycopg.connect(url) as conn, conn.cursor().copy(
                "COPY assets (uri, embedding, embedding_model, status) FROM STDIN") as copy:
            for i, v in enumerate(vecs):
                copy.write_row((f"mem://{i}", vector_text(v), enc.name, "ready"))
        args = ["search", "a red circle", "--json"]
        rows = [fresh_process(args, {**env, "ASSETDB_DATABASE_URL": url,
                                     "ASSETDB_MODEL": str(model)}) for _ in range(runs)]
    return {"runs": rows, "median_wall_s": median([r["wall_s"] for r in rows]),
            "median_cpu_s": median([r["cpu_s"] for r in rows]), "imported": rows[-1]["imported"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per CLI case")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--cli-model", type=Path, action="append", default=[],
                    help="also time a fresh `assetdb search` with this ONNX export "
                    "(e.g. benchmarks/.cache/vit-b32-onnx); repeatable")
    ap.add_argument("--cli-only", action="store_true",
                    help="only the fresh-process times (skip vectors and meaning)")
    ap.add_argument("--no-cli", action="store_true",
                    help="only vectors and meaning (skip the fresh-process times)")
    args = ap.parse_args()

    from assetdb.embedding.backends.onnx_clip import OnnxClip
    from assetdb.embedding.encoder import load_encoder
    from assetdb.shipped import DEMO_MODEL_DIR

    info = machine()
    exports = demo_exports()
    encoders = {"torch fp32": load_encoder(str(DEMO_MODEL_DIR), text_model="builtin"),
                "onnx fp32": OnnxClip(str(exports["fp32"])),
                "onnx int8": OnnxClip(str(exports["int8"]))}
    if "int8-static" in exports:
        encoders["onnx int8 static"] = OnnxClip(str(exports["int8-static"]))
    from assetdb.embedding.backends import openvino_tower

    if openvino_tower.available():
        encoders["openvino fp32"] = OnnxClip(str(exports["fp32"]), provider="openvino")
        if "int8-static" in exports:
            encoders["openvino int8 static"] = OnnxClip(str(exports["int8-static"]),
                                                        provider="openvino")
    with tempfile.TemporaryDirectory(prefix="assetdb-onnx-checks-") as tmp:
        checks = ({"bars": {}, "vectors": {}} if args.cli_only
                  else meaning(encoders, Path(tmp) / "meaning"))
        cli = ({} if args.no_cli else
               cli_times(exports, Path(tmp) / "cli", args.runs, tuple(args.cli_model)))
    result = {"machine": info, **checks, "cli": cli, "exports_refused": REFUSED,
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    bars = [{"backend": k, **v} for k, v in checks["bars"].items()]
    vec = [{"backend": k, **{c: v[c] for c in ("min_cosine_images", "min_cosine_texts",
                                                "same_top10_queries_on_torch_catalogue")}}
           for k, v in checks["vectors"].items()]
    cli_rows = [{"command": k, "median_wall_s": v["median_wall_s"],
                 "median_cpu_s": v["median_cpu_s"], "imported": ",".join(v["imported"])}
                for k, v in cli.items()]
    report("ONNX checks (demo model)", result,
           {"meaning bars": bars, "vectors vs torch": vec, "fresh CLI processes": cli_rows},
           args.out)
    json.dumps(result)  # fails loudly on a value the JSON cannot hold


if __name__ == "__main__":
    main()
