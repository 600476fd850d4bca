"""OpenVINO against ONNX Runtime on the same exported image tower, in one process.

OpenVINO is the optional extra `openvino` (in `dev`); run this on an export made by
`python -m benchmarks.embedding --backends` (benchmarks/.cache/vit-b32-onnx), or on its
int8 static export (vit-b32-onnx-int8-static):

    python -m benchmarks.openvino_probe --model benchmarks/.cache/vit-b32-onnx/image.onnx

Model-only: batch 32 of 224x224 pixel arrays, the runtimes alternating round by round so
that a change of load hits both alike; images/s and CPU ms per image, and the cosine of
OpenVINO's vectors to ONNX Runtime's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="an exported image.onnx")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import openvino as ov

    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((args.batch, 3, 224, 224)).astype(np.float32)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    start = time.perf_counter()
    core = ov.Core()
    compiled = core.compile_model(str(args.model), "CPU",
                                  {"PERFORMANCE_HINT": "THROUGHPUT"})
    compile_s = time.perf_counter() - start

    def run_ort() -> np.ndarray:
        return session.run(None, {"pixel_values": pixels})[0]

    def run_ov() -> np.ndarray:
        return compiled({"pixel_values": pixels})[compiled.output(0)]

    runners = {"onnxruntime": run_ort, "openvino": run_ov}
    rates: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    outputs = {k: fn() for k, fn in runners.items()}  # warm-up, and the vectors to compare
    for _ in range(args.rounds):
        for name, fn in runners.items():
            wall, c = time.perf_counter(), time.process_time()
            fn()
            rates[name].append(args.batch / (time.perf_counter() - wall))
            cpu[name].append((time.process_time() - c) / args.batch * 1000)
    a, b = outputs["onnxruntime"], outputs["openvino"]
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    result = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "onnxruntime": ort.__version__, "openvino": ov.__version__,
        "openvino_compile_s": compile_s,
        "median_images_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "median_cpu_ms_per_image": {k: statistics.median(v) for k, v in cpu.items()},
        "min_cosine_openvino_vs_onnxruntime": float(cos.min()),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
