"""Every runtime variant of the exported ViT-B/32 image tower, model-only: ONNX Runtime
(fp32, int8 dynamic, int8 static), ONNX Runtime's transformer optimizer (model_type vit and
clip, fp32 and + int8 dynamic), and OpenVINO (fp32, on the int8 exports, and NNCF
post-training int8 when `nncf` is installed: it is not a dependency, `pip install nncf`).

    python -m benchmarks.backend_variants --out docs/results/backend_variants_probe.json

Run `python -m benchmarks.embedding --backends` first: it makes the exports in
benchmarks/.cache/. Batch 32 of real camera JPEGs (files 32-63 of the benchmark's mix)
through the product's pixels, 2 threads, median of 3 batches after a warm-up; CPU ms per
image (process_time, all threads) and the min cosine to ONNX Runtime fp32.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import CACHE, machine, report

BATCH = 32
Run = Callable[[np.ndarray], np.ndarray]


def ort_runner(path: Path, threads: int) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"pixel_values": x})[0]


def ov_runner(path: Path, threads: int, pinning: bool = False) -> Run:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
        "ENABLE_CPU_PINNING": pinning})
    request, output = compiled.create_infer_request(), compiled.output(0)
    return lambda x: np.array(request.infer({"pixel_values": x})[output])


def fused(src: Path, out: Path, model_type: str, int8: bool) -> Path:
    """ONNX Runtime's transformer optimizer (and dynamic int8 after it), made once."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    fp32 = out / f"fused-{model_type}.onnx"
    if not fp32.exists():
        model = optimize_model(str(src), model_type=model_type, num_heads=12, hidden_size=768,
                               opt_level=1, use_gpu=False)
        print(model_type, {k: v for k, v in model.get_fused_operator_statistics().items()
                           if v}, flush=True)
        model.save_model_to_file(str(fp32))
    if not int8:
        return fp32
    q = out / f"fused-{model_type}-int8.onnx"
    if not q.exists():  # the fused ops have no shape inference: say the default type
        quantize_dynamic(str(fp32), str(q), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return q


def nncf_int8(src: Path, out: Path, calibration: list[np.ndarray]) -> Path | None:
    try:
        import nncf
        import openvino as ov
    except ImportError:
        print("nncf not installed: no NNCF row", flush=True)
        return None
    xml = out / "nncf-int8.xml"
    if not xml.exists():
        model = ov.Core().read_model(str(src))
        quantized = nncf.quantize(model, nncf.Dataset(calibration, lambda x: {"pixel_values": x}),
                                  model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(calibration))
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
    return xml


def measure(run: Run, pixels: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    run(pixels[:2])
    got = run(pixels)
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    rates, cpus = [], []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        run(pixels)
        rates.append(len(pixels) / (time.perf_counter() - wall))
        cpus.append((time.process_time() - cpu) / len(pixels) * 1000)
    return {"images_per_s": float(np.median(rates)), "cpu_ms_per_image": float(np.median(cpus)),
            "min_cosine_vs_onnxruntime_fp32": float(np.min(np.sum(got * reference, axis=1)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    from assetdb.embedding.backends import openvino_tower
    from assetdb.embedding.backends.onnx_clip import read_manifest
    from assetdb.embedding.clip_pixels import ClipPixels
    from assetdb.embedding.images import load_image

    dirs = {k: CACHE / f"vit-b32-onnx{k}" for k in ("", "-int8", "-int8-static")}
    if not all((d / "image.onnx").is_file() for d in dirs.values()):
        raise SystemExit("run `python -m benchmarks.embedding --backends` first (exports)")
    info = machine()
    pixels_of = ClipPixels.from_config(read_manifest(dirs[""])["image_processor"])
    files = sorted((CACHE / "images").glob("img*.jpg"))
    pixels = pixels_of.batch([load_image(p, 224) for p in files[32 : 32 + BATCH]])
    work = CACHE / "variants"
    work.mkdir(exist_ok=True)
    src = dirs[""] / "image.onnx"
    t = args.threads
    variants: dict[str, Callable[[], Run]] = {
        "onnxruntime fp32": lambda: ort_runner(src, t),
        "onnxruntime int8 dynamic": lambda: ort_runner(dirs["-int8"] / "image.onnx", t),
        "onnxruntime int8 static (QDQ)": lambda: ort_runner(
            dirs["-int8-static"] / "image.onnx", t),
        "onnxruntime optimizer clip, fp32": lambda: ort_runner(
            fused(src, work, "clip", False), t),
        "onnxruntime optimizer clip + int8 dynamic": lambda: ort_runner(
            fused(src, work, "clip", True), t),
        "onnxruntime optimizer vit + int8 dynamic": lambda: ort_runner(
            fused(src, work, "vit", True), t),
    }
    if openvino_tower.available():
        calibration = [pixels_of.batch([load_image(p, 224)]) for p in files[64:96]]
        nncf_model = nncf_int8(src, work, calibration)
        variants.update({
            "openvino fp32": lambda: ov_runner(src, t),
            "openvino fp32, CPU pinning": lambda: ov_runner(src, t, pinning=True),
            "openvino on the int8 static (QDQ) export": lambda: ov_runner(
                dirs["-int8-static"] / "image.onnx", t),
            "openvino on the int8 dynamic export": lambda: ov_runner(
                dirs["-int8"] / "image.onnx", t),
        })
        if nncf_model is not None:
            variants["openvino NNCF int8 (TRANSFORMER)"] = lambda: ov_runner(nncf_model, t)
    reference = ort_runner(src, t)(pixels)
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    rows = []
    for name, make in variants.items():
        print(name, "...", flush=True)
        rows.append({"variant": name, **measure(make(), pixels, reference)})
    report("image tower variants (model-only)", {"machine": info, "rows": rows},
           {"variants": rows}, args.out)


if __name__ == "__main__":
    main()
