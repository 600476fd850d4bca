"""An exported image tower compiled by OpenVINO's own runtime (`pip install 'assetdb[openvino]'`).

Chosen with ASSETDB_ONNX_PROVIDER=openvino for batch work (ingest, re-embedding, workers)
on CPUs where it measures faster. On this project's 2-core AMD machine (AVX2, no VNNI) it
does not: 137 CPU-ms per image for fp32 and 140 for the static int8 export, against ONNX
Runtime's 133 and 67 (dynamic int8; docs/performance.md, "Backends"), so it stays a
setting, never the default. Importing OpenVINO and compiling a tower takes seconds,
so the tower is compiled on the first image batch, and the text tower stays on ONNX
Runtime: a one-off `assetdb search "text"` never pays for it.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from assetdb.errors import ModelError

MISSING = ("ASSETDB_ONNX_PROVIDER=openvino needs OpenVINO: pip install 'assetdb[openvino]' "
           "(or onnxruntime-openvino, ONNX Runtime's OpenVINO provider)")


def available() -> bool:
    """Whether the `openvino` package is installed (without importing it: seconds)."""
    return importlib.util.find_spec("openvino") is not None


class OpenVinoTower:
    """One ONNX tower, compiled for the CPU on first use; `run` is thread-safe."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        if not available():
            raise ModelError(MISSING)
        self.path = Path(path)
        self.threads = threads
        self._lock = threading.Lock()
        self._request = None
        self._output = None

    def _compile(self) -> None:
        import openvino as ov

        # LATENCY: one stream that uses every core for the one batch in flight (ingest
        # submits one batch at a time); THROUGHPUT would split the cores between streams.
        # No pinning: the decode threads share the cores, and a pinned thread waits for its
        # core while another one is idle.
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError for a damaged model
            raise ModelError(f"OpenVINO cannot compile {self.path}: {exc}") from None
        self._output = compiled.output(0)
        self._request = compiled.create_infer_request()

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:  # one infer request: calls from several threads take turns
            if self._request is None:
                self._compile()
            result = self._request.infer(feed)[self._output]
            return np.array(result, dtype=np.float32)  # a copy: the request reuses its buffer
