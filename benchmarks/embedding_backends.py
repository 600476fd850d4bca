"""Backends side by side in one run: torch fp32, ONNX Runtime fp32, int8 (dynamic) and
int8 static (calibrated on 32 of the benchmark's own JPEGs), and, when the `openvino`
extra is installed, OpenVINO's runtime on the fp32 and the static int8 export
(ASSETDB_ONNX_PROVIDER=openvino); model-only and end-to-end ingest, plus the plain
reference pipeline a user would write. Run through benchmarks.embedding:

    python -m benchmarks.embedding --backends --images 192 --out docs/results/backends.json

Model: the random-weight ViT-B/32 (benchmarks._common.build_vit_b32), exported to ONNX
once into benchmarks/.cache/. Every figure comes from this one run, so the ratios compare
backends under the same load (the JSON records the load average at start and end).

- model-only: encode_images on 224x224 images already decoded, batch 32; the CPU time per
  image (process_time) shows what each backend costs, whatever the load.
- end-to-end: Catalog.ingest on the camera-size JPEG mix into a fresh database (hash,
  probe, draft decode in threads one batch ahead, resize, encode, write).
- reference: Pillow full decode, one batch at a time, SentenceTransformer.encode, INSERT
  (psycopg executemany): the pipeline without assetdb's fast paths.
- decode account: the CPU per file of what ingest does besides the model (read + sha256,
  draft decode, perceptual hashes, resize, pixel arrays), one thread. With it, the
  ceiling of each backend: every core busy, cores x 1000 / (model ms + that) images/s.
- threads: decode workers x model threads on a slice of the files, no database, for the
  exported variant with the least CPU per image.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks._common import CACHE, Timer, bench_database, build_vit_b32, machine, report

OPENVINO = "OpenVINOExecutionProvider"


def exports(source: Path, calibration: list[Path]) -> dict[str, Path]:
    """fp32, int8 dynamic and int8 static (calibrated on `calibration`) ONNX exports of
    `source`, made once."""
    from assetdb.embedding.backends.onnx_clip import MANIFEST_NAME
    from assetdb.embedding.onnx_export import export

    out = {"fp32": CACHE / "vit-b32-onnx", "int8": CACHE / "vit-b32-onnx-int8",
           "int8-static": CACHE / "vit-b32-onnx-int8-static"}
    for precision, path in out.items():
        if not (path / MANIFEST_NAME).is_file():
            print(f"exporting {precision} to {path} (once) ...", flush=True)
            export(str(source), path, int8=precision != "fp32", overwrite=True,
                   calibration=calibration if precision == "int8-static" else (),
                   log=lambda m: print("  " + m, flush=True))
    return out


def model_only(encoder: Any, count: int, batch: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    size = encoder.image_size
    images = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
              for _ in range(batch)]
    encoder.encode_images(images[:2])  # warm-up
    done, cpu, start = 0, time.process_time(), time.perf_counter()
    while done < count:
        encoder.encode_images(images)
        done += batch
    wall = time.perf_counter() - start
    return {"images": done, "seconds": round(wall, 2), "images_per_s": done / wall,
            "cpu_ms_per_image": (time.process_time() - cpu) / done * 1000}


def end_to_end(encoder: Any, paths: list[Path], home: Path, workers: int) -> dict[str, Any]:
    from benchmarks.embedding import end_to_end as e2e

    os.environ["ASSETDB_DECODE_WORKERS"] = str(workers)
    cpu = time.process_time()
    result = e2e(encoder, paths, home)
    result["cpu_ms_per_image_this_process"] = (time.process_time() - cpu) / len(paths) * 1000
    return result


def reference(st_model: Any, paths: list[Path], home: Path, batch: int) -> dict[str, Any]:
    """What a user writes first: decode every file whole, encode a batch, insert it."""
    import psycopg

    with bench_database(home, "bench_reference") as url, psycopg.connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE ref (id serial PRIMARY KEY, path text, embedding vector)")
        conn.commit()
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(paths), batch):
            chunk = paths[i : i + batch]
            images = []
            for p in chunk:
                with Image.open(p) as im:
                    images.append(im.convert("RGB"))
            vectors = st_model.encode(images, batch_size=batch, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO ref (path, embedding) VALUES (%s, %s::vector)",
                                [(str(p), "[" + ",".join(f"{x:.7g}" for x in v) + "]")
                                 for p, v in zip(chunk, vectors, strict=True)])
            conn.commit()
        wall = time.perf_counter() - start
        rows = conn.execute("SELECT count(*) FROM ref").fetchone()[0]
    assert rows == len(paths)
    return {"images": len(paths), "seconds": round(wall, 2), "images_per_s": len(paths) / wall,
            "cpu_ms_per_image_this_process": (time.process_time() - cpu) / len(paths) * 1000}


def thread_balance(directory: Path, provider: str, paths: list[Path],
                   batch: int) -> list[dict[str, Any]]:
    """Decode workers x model threads through embed_paths (decode overlapped with the
    model, as ingest runs it), no database."""
    from assetdb.embedding.backends.onnx_clip import OnnxClip
    from assetdb.embedding.batches import embed_paths

    rows = []
    for workers, threads in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 2)):
        encoder = OnnxClip(str(directory), batch_size=batch, provider=provider,
                           threads=threads)
        list(embed_paths(encoder, paths[:batch], batch, workers))  # warm the caches
        cpu = time.process_time()
        with Timer() as t:
            n = sum(len(b) for b in embed_paths(encoder, paths, batch, workers))
        rows.append({"decode_workers": workers, "model_threads": threads,
                     "images_per_s": n / t.seconds,
                     "cpu_ms_per_image": (time.process_time() - cpu) / n * 1000})
    return rows


def decode_account(paths: list[Path], encoder: Any) -> dict[str, float]:
    """CPU ms per file of what ingest does besides the model, one thread, on this mix:
    read + sha256, draft decode, perceptual hashes, resize, the model's pixel arrays."""
    import hashlib
    import io

    from assetdb.duplicates.hashing import HASH_EDGE, collector_or_none
    from assetdb.embedding.preprocess import fit_shortest_edge
    from assetdb.kinds.registry import kind_for_file

    hashes = collector_or_none()
    spent = {"read + sha256": 0.0, "draft decode": 0.0, "perceptual hashes": 0.0,
             "resize": 0.0, "pixel arrays": 0.0}
    if hashes is not None:
        hashes(paths[0], Image.new("RGB", (64, 64)))  # its first call imports scipy
    small = []
    for p in paths:
        cpu = time.process_time()
        data = p.read_bytes()
        hashlib.sha256(data).hexdigest()
        spent["read + sha256"] += time.process_time() - cpu
        cpu = time.process_time()
        image = kind_for_file(p).decode(io.BytesIO(data), HASH_EDGE)
        spent["draft decode"] += time.process_time() - cpu
        cpu = time.process_time()
        if hashes is not None:
            hashes(p, image)
        spent["perceptual hashes"] += time.process_time() - cpu
        cpu = time.process_time()
        small.append(fit_shortest_edge(image, encoder.preprocess.resize_shortest_edge,
                                       encoder.preprocess.resample))
        spent["resize"] += time.process_time() - cpu
    cpu = time.process_time()
    encoder.pixels.batch(small)
    spent["pixel arrays"] += time.process_time() - cpu
    out = {k: v / len(paths) * 1000 for k, v in spent.items()}
    out["total"] = sum(out.values())
    return out


def cosines(torch_enc: Any, others: dict[str, Any], paths: list[Path]) -> dict[str, float]:
    """Min cosine to torch on real decoded files and on texts."""
    from assetdb.embedding.images import load_image

    images = [load_image(p, 224) for p in paths]
    texts = ["a photo of a dog", "sunset over a brutalist concrete building", "a red car"]
    ref_i, ref_t = torch_enc.encode_images(images), torch_enc.encode_texts(texts)
    out = {}
    for name, enc in others.items():
        out[f"{name} images"] = float(np.min(np.sum(enc.encode_images(images) * ref_i, 1)))
        out[f"{name} texts"] = float(np.min(np.sum(enc.encode_texts(texts) * ref_t, 1)))
    return out


def run(args: Any) -> None:
    import tempfile

    import onnxruntime as ort

    from assetdb.db import embedded
    from assetdb.embedding.backends import openvino_tower
    from assetdb.embedding.backends.onnx_clip import OnnxClip
    from assetdb.embedding.backends.st_clip import SentenceTransformerClip
    from benchmarks.embedding import generate_images

    info = machine()
    source = Path(args.model) if args.model else build_vit_b32()
    paths = generate_images(args.images, CACHE / "images")
    # Calibration: the user's own kind of photos; the last 32 of the set, not the 16
    # the cosines are measured on.
    onnx_dirs = exports(source, paths[-32:])
    batch = args.batch
    threads = args.onnx_threads
    # name -> (export, ASSETDB_ONNX_PROVIDER) of each exported variant
    variants = {"onnx fp32": ("fp32", "cpu"), "onnx int8": ("int8", "cpu"),
                "onnx int8 static": ("int8-static", "cpu")}
    if openvino_tower.available() or OPENVINO in ort.get_available_providers():
        variants.update({"openvino fp32": ("fp32", "openvino"),
                         "openvino int8 static": ("int8-static", "openvino")})
        info["openvino"] = _openvino_version()
    encoders: dict[str, Any] = {
        "torch fp32": SentenceTransformerClip(str(source), batch_size=batch),
        **{name: OnnxClip(str(onnx_dirs[key]), batch_size=batch, provider=provider,
                          threads=threads) for name, (key, provider) in variants.items()},
    }
    info["onnx_providers"] = ort.get_available_providers()
    info["devices"] = {k: getattr(e, "device", "cpu") for k, e in encoders.items()}
    info["image_runtimes"] = {k: getattr(e, "image_runtime", "torch")
                              for k, e in encoders.items()}
    result: dict[str, Any] = {"machine": info, "images": len(paths), "batch": batch,
                              "decode_workers": args.decode_workers, "onnx_threads": threads}
    print("model-only ...", flush=True)
    result["model_only"] = {k: model_only(e, args.model_images, batch)
                            for k, e in encoders.items()}
    print("cosines ...", flush=True)
    result["min_cosine_vs_torch"] = cosines(
        encoders["torch fp32"], {k: e for k, e in encoders.items() if k != "torch fp32"},
        paths[: min(16, len(paths))])
    with tempfile.TemporaryDirectory(prefix="assetdb-bench-") as tmp:
        home = Path(tmp)
        home.chmod(0o711)
        os.environ["ASSETDB_HOME"] = str(home)
        e2e: dict[str, Any] = {}
        print("reference pipeline ...", flush=True)
        e2e["reference (full decode, batch, ST encode, INSERT)"] = reference(
            encoders["torch fp32"].model, paths, home, batch)
        for name, enc in encoders.items():
            print(f"end-to-end {name} ...", flush=True)
            e2e[name] = end_to_end(enc, paths, home, args.decode_workers)
        embedded.stop(home)
    result["end_to_end"] = e2e
    print("decode account ...", flush=True)
    result["decode_cpu_ms_per_image"] = decode_account(paths[:32], encoders["onnx fp32"])
    if args.thread_images:
        # The balance for the exported variant that costs the least CPU per image (the
        # one the 2x bar is about).
        fastest = min(variants, key=lambda k: result["model_only"][k]["cpu_ms_per_image"])
        key, provider = variants[fastest]
        print(f"thread balance ({fastest}) ...", flush=True)
        result["thread_balance"] = {"backend": fastest, "rows": thread_balance(
            onnx_dirs[key], provider, paths[: args.thread_images], batch)}
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    torch_e2e = e2e["torch fp32"]["images_per_s"]
    ref = e2e["reference (full decode, batch, ST encode, INSERT)"]["images_per_s"]
    # The ceiling: every core busy with this model plus the decode account's work.
    cores = os.cpu_count() or 1
    other = result["decode_cpu_ms_per_image"]["total"]
    table = []
    for name in encoders:
        mo, ee = result["model_only"][name], e2e[name]
        ceiling = cores * 1000 / (mo["cpu_ms_per_image"] + other)
        table.append({"backend": name, "model_only_images_per_s": mo["images_per_s"],
                      "model_cpu_ms_per_image": mo["cpu_ms_per_image"],
                      "end_to_end_images_per_s": ee["images_per_s"],
                      "e2e_cpu_ms_per_image": ee["cpu_ms_per_image_this_process"],
                      "e2e_vs_torch_e2e": ee["images_per_s"] / torch_e2e,
                      "e2e_vs_reference": ee["images_per_s"] / ref,
                      "ceiling_images_per_s": ceiling,
                      "ceiling_vs_torch_e2e": ceiling / torch_e2e})
    table.append({"backend": "reference pipeline", "model_only_images_per_s": None,
                  "model_cpu_ms_per_image": None, "end_to_end_images_per_s": ref,
                  "e2e_cpu_ms_per_image": e2e["reference (full decode, batch, ST encode, "
                                              "INSERT)"]["cpu_ms_per_image_this_process"],
                  "e2e_vs_torch_e2e": ref / torch_e2e, "e2e_vs_reference": 1.0,
                  "ceiling_images_per_s": None, "ceiling_vs_torch_e2e": None})
    result["table"] = table
    cos_rows = [{"compared": k, "min_cosine": v} for k, v in result["min_cosine_vs_torch"].items()]
    report("embedding backends", result,
           {"backends (one run)": table, "cosine vs torch": cos_rows,
            "CPU ms per image besides the model (one thread)": [
                {"stage": k, "cpu_ms": v} for k, v in result["decode_cpu_ms_per_image"].items()],
            "thread balance (no database)": result.get("thread_balance", {}).get("rows", [])},
           args.out)


def _openvino_version() -> str | None:
    try:
        import openvino

        return str(openvino.__version__)
    except ImportError:
        return None
