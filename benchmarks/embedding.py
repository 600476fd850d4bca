"""Embedding throughput: model-only against end-to-end ingest (files on disk -> rows).

Model-only: the encoder (processor + forward) on images already decoded at the model's
input size, batch 32. End-to-end: `assetdb.ingest.ingest_files.ingest` on generated camera-size
JPEGs (half 1600x1200, half 4000x3000) into a fresh database on the embedded server: hash,
probe, decode (draft mode, in threads, one batch ahead), resize, encode, write.
A smaller ablation shows what each fast path buys and how far its vectors move, and a
CPU-time account (decode per file size, model per image on 1 and on all threads) gives
the best ratio this machine allows.

    python -m benchmarks.embedding --images 1000 --out benchmarks/results/embedding.json
    python -m benchmarks.embedding --backends --images 320   # torch / ONNX / int8 / reference
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks._common import (
    CACHE,
    Timer,
    bench_database,
    build_vit_b32,
    init_database,
    machine,
    median,
    report,
)

SIZES = [(1600, 1200), (4000, 3000)]


_BASE: dict[tuple[int, int], np.ndarray] = {}


def _photo(path: Path, size: tuple[int, int], seed: int) -> None:
    """A photo-like JPEG: smooth colour fields plus sensor-like noise (noise-free images
    compress far better than camera files and would flatter the decoder). One base picture
    per size, made once; each file gets its own 256x256 block of new content, so ingest's
    sha256 de-duplication cannot skip any (decode and model cost do not depend on content)."""
    w, h = size
    if size not in _BASE:
        rng = np.random.default_rng(w)
        low = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        arr = np.asarray(low.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        arr += rng.integers(-10, 11, (h, w, 3), dtype=np.int16)
        _BASE[size] = np.clip(arr, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    arr = _BASE[size].copy()
    y, x = int(rng.integers(0, h - 256)), int(rng.integers(0, w - 256))
    arr[y : y + 256, x : x + 256] = rng.integers(0, 256, 3, dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=90)


def generate_images(count: int, folder: Path) -> list[Path]:
    """count JPEGs, alternating camera sizes; cached between runs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img{i:05d}_{SIZES[i % 2][0]}.jpg" for i in range(count)]
    todo = [(p, SIZES[i % 2], i) for i, p in enumerate(paths) if not p.exists()]
    if todo:
        print(f"generating {len(todo)} JPEGs in {folder} (once) ...", flush=True)

        def make(job: tuple[Path, tuple[int, int], int]) -> None:
            tmp = job[0].with_suffix(".tmp.jpg")
            _photo(tmp, job[1], job[2])
            tmp.rename(job[0])

        for size in SIZES:  # the base pictures, before the threads start
            _photo(folder / "warm.tmp.jpg", size, 0)
        (folder / "warm.tmp.jpg").unlink()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(make, todo))
    return paths


def model_only(encoder: Any, count: int, batch: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    size = encoder.image_size
    images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
              for _ in range(batch)]
    encoder.encode_images(images[:2])  # warm-up
    per_batch = []
    done = 0
    start = time.perf_counter()
    while done < count:
        with Timer() as t:
            encoder.encode_images(images)
        per_batch.append(batch / t.seconds)
        done += batch
    total = time.perf_counter() - start
    return {"images": done, "seconds": round(total, 2), "images_per_s": done / total,
            "median_batch_images_per_s": median(per_batch)}


def end_to_end(encoder: Any, paths: list[Path], home: Path) -> dict[str, Any]:
    from sqlalchemy import text

    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings
    from assetdb.db.engine import connect, reset_engines

    with bench_database(home, "bench_embed") as url:
        init_database(url, encoder.name, encoder.dimension)
        settings = Settings.from_env()
        marks: list[float] = []
        start = time.perf_counter()
        rep = Catalog(settings).ingest([str(p) for p in paths], encoder=encoder,
                                       progress=lambda n: marks.append(time.perf_counter()))
        total = time.perf_counter() - start
        with connect(settings) as conn:
            ready = conn.execute(text("SELECT count(*) FROM assets WHERE status = 'ready'"))
            ready_rows = ready.scalar_one()
        reset_engines()
    if rep.failed or ready_rows != len(paths):
        raise SystemExit(f"ingest did not embed every file: {rep.as_dict()}")
    scan_s = marks[0] - start if marks else 0.0  # first progress call: hashing + probing done
    return {"images": len(paths), "seconds": round(total, 2),
            "images_per_s": len(paths) / total, "hash_probe_seconds": round(scan_s, 2),
            "embed_write_seconds": round(total - scan_s, 2), "rows_ready": ready_rows,
            "decode_workers": settings.decode_workers, "batch_size": settings.batch_size}


def ablation(encoder: Any, paths: list[Path], batch: int) -> list[dict[str, Any]]:
    """Decode + encode without the database, one variant at a time, on the same files."""
    from assetdb.embedding.batches import embed_paths
    from assetdb.embedding.images import load_image
    from assetdb.embedding.preprocess import fit_shortest_edge

    edge = encoder.preprocess.resize_shortest_edge

    def sequential(min_size: int, resize: bool) -> np.ndarray:
        out = []
        for i in range(0, len(paths), batch):
            imgs = [load_image(p, min_size) for p in paths[i : i + batch]]
            if resize:
                imgs = [fit_shortest_edge(im, edge) for im in imgs]
            out.append(encoder.encode_images(imgs))
        return np.concatenate(out)

    def overlapped() -> np.ndarray:
        rows = [r for b in embed_paths(encoder, paths, batch, 2) for r in b]
        return np.stack([r[1] for r in rows])

    variants = [
        ("plain: full decode, no overlap", lambda: sequential(0, False)),
        ("draft decode, no overlap", lambda: sequential(encoder.image_size, False)),
        ("draft + resize in decode, no overlap", lambda: sequential(encoder.image_size, True)),
        ("default: draft + resize + overlap (embed_paths)", overlapped),
    ]
    rows: list[dict[str, Any]] = []
    reference = None
    for name, fn in variants:
        with Timer() as t:
            vectors = fn()
        if reference is None:
            reference = vectors
        cos = np.sum(vectors * reference, axis=1)
        rows.append({"variant": name, "images": len(paths), "seconds": round(t.seconds, 2),
                     "images_per_s": len(paths) / t.seconds,
                     "min_cosine_vs_plain": float(cos.min())})
    return rows


def cpu_accounting(encoder: Any, paths: list[Path], batch: int,
                   files: int = 20) -> dict[str, Any]:
    """CPU time per image of each stage, to bound the end-to-end ratio: when torch keeps
    every core busy, each CPU-ms of decoding is taken from the model, so at best
    end-to-end / model-only = model / (model + decode)."""
    import torch

    from assetdb.embedding.images import load_image
    from assetdb.embedding.preprocess import fit_shortest_edge

    edge = encoder.preprocess.resize_shortest_edge
    decode: dict[str, float] = {}
    for w, h in SIZES:
        chosen = [p for p in paths if p.name.endswith(f"_{w}.jpg")][:files]
        for label, min_size in (("full", 0), ("draft", encoder.image_size)):
            cpu = time.process_time()
            for p in chosen:
                image = fit_shortest_edge(load_image(p, min_size), edge)
                image.close()
            decode[f"{w}x{h} {label}"] = (time.process_time() - cpu) / len(chosen) * 1000
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
              for _ in range(batch)]
    model: dict[str, dict[str, float]] = {}
    threads = torch.get_num_threads()
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        encoder.encode_images(images[:2])
        walls, cpus = [], []
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            encoder.encode_images(images)
            walls.append(batch / (time.perf_counter() - wall))
            cpus.append((time.process_time() - cpu) / batch * 1000)
        model[f"{n} threads"] = {"images_per_s": median(walls), "cpu_ms_per_image": median(cpus)}
    torch.set_num_threads(threads)
    mix = sum(decode[f"{w}x{h} draft"] for w, h in SIZES) / len(SIZES)
    per_image = model[f"{threads} threads"]["cpu_ms_per_image"]
    return {"decode_cpu_ms_per_file": decode, "model": model,
            "decode_cpu_ms_per_image_on_this_mix": mix,
            "ratio_bound": per_image / (per_image + mix)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000, help="JPEGs for end-to-end ingest")
    ap.add_argument("--model-images", type=int, default=192,
                    help="images for model-only throughput (a multiple of the batch)")
    ap.add_argument("--ablation-images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", help="model directory (default: a random ViT-B/32, built once)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--backends", action="store_true",
                    help="compare torch fp32, ONNX fp32, ONNX int8 and the reference pipeline "
                         "in one run (benchmarks/embedding_backends.py)")
    ap.add_argument("--decode-workers", type=int, default=2, help="with --backends")
    ap.add_argument("--onnx-threads", type=int, default=0,
                    help="with --backends: ONNX Runtime threads (0: one per core)")
    ap.add_argument("--thread-images", type=int, default=64,
                    help="with --backends: files for the thread-balance sweep (0: skip it)")
    args = ap.parse_args()
    if args.backends:
        from benchmarks.embedding_backends import run

        os.environ["ASSETDB_BATCH_SIZE"] = str(args.batch)
        run(args)
        return

    os.environ["ASSETDB_BATCH_SIZE"] = str(args.batch)
    from assetdb.embedding.encoder import load_encoder

    info = machine()
    encoder = load_encoder(str(args.model or build_vit_b32()), batch_size=args.batch)
    paths = generate_images(args.images, CACHE / "images")
    with tempfile.TemporaryDirectory(prefix="assetdb-bench-") as tmp:
        home = Path(tmp)
        home.chmod(0o711)  # the server may run as another user (under root)
        os.environ["ASSETDB_HOME"] = str(home)
        before = model_only(encoder, args.model_images, args.batch)
        e2e = end_to_end(encoder, paths, home)
        after = model_only(encoder, args.model_images, args.batch)
        from assetdb.db import embedded

        embedded.stop(home)
    # The machine may be shared: model-only runs before and after, and the ratio uses both.
    model_rate = (before["images_per_s"] + after["images_per_s"]) / 2
    ablate = ablation(encoder, paths[: args.ablation_images], args.batch)
    accounting = cpu_accounting(encoder, paths, args.batch)
    result = {
        "machine": info,
        "model": {"name": "ViT-B/32 architecture, random weights", "dimension": encoder.dimension,
                  "device": getattr(encoder, "device", "cpu")},
        "model_only_before": before,
        "end_to_end": e2e,
        "model_only_after": after,
        "end_to_end_vs_model_only": e2e["images_per_s"] / model_rate,
        "ablation": ablate,
        "cpu_accounting": accounting,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    table = [
        {"run": "model-only (before)", "images": before["images"],
         "images_per_s": before["images_per_s"]},
        {"run": "end-to-end ingest", "images": e2e["images"], "images_per_s": e2e["images_per_s"]},
        {"run": "model-only (after)", "images": after["images"],
         "images_per_s": after["images_per_s"]},
        {"run": "ratio end-to-end / model-only", "images": None,
         "images_per_s": result["end_to_end_vs_model_only"]},
    ]
    cpu_table = [{"stage": f"decode + resize {k}", "cpu_ms": v, "images_per_s": None}
                 for k, v in accounting["decode_cpu_ms_per_file"].items()]
    cpu_table += [{"stage": f"model, {k}", "cpu_ms": v["cpu_ms_per_image"],
                   "images_per_s": v["images_per_s"]} for k, v in accounting["model"].items()]
    cpu_table.append({"stage": "bound: model / (model + draft decode on this mix)",
                      "cpu_ms": None, "images_per_s": accounting["ratio_bound"]})
    report("embedding throughput", result,
           {"throughput": table, "ablation": ablate, "CPU time per image": cpu_table}, args.out)


if __name__ == "__main__":
    main()
