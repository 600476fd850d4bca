"""A CLIP model exported to ONNX (`assetdb model export`), run with ONNX Runtime.

No torch, no transformers, no sentence-transformers: the towers run in ONNX Runtime, the
tokenizer is the `tokenizers` library (Rust) reading the exported tokenizer.json, and the
images are prepared with Pillow + numpy exactly as CLIPImageProcessor does
(assetdb.embedding.clip_pixels). A process that searches with it starts in about a second.

The directory holds a manifest (MANIFEST_NAME) that names this backend, so that
ASSETDB_MODEL=DIR picks it without any other setting, and the model identity its vectors
are recorded under: the source model's own for an fp32 export (its vectors are the
torch model's, within cosine 0.9999), a distinct one for int8 unless the export chose
otherwise (`--same-identity`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from assetdb.embedding.backends import openvino_tower
from assetdb.embedding.clip_pixels import ClipPixels
from assetdb.embedding.encoder import IMAGE, TEXT, Preprocess, SoftmaxScoring
from assetdb.errors import ModelError

MANIFEST_NAME = "assetdb-model.json"
BACKEND_NAME = "onnx-clip"
FORMAT_VERSION = 1
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "openvino": "OpenVINOExecutionProvider"}
MISSING = ("the ONNX backend needs onnxruntime: pip install 'assetdb[onnx]' "
           "(or onnxruntime-gpu / onnxruntime-openvino)")


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The directory's manifest when it is an ONNX export of this backend, else None."""
    path = Path(directory).expanduser() / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model manifest {path}: {exc}") from None
    return manifest if manifest.get("backend") == BACKEND_NAME else None


def claims(model: str) -> bool:
    try:
        return read_manifest(model) is not None
    except (OSError, ValueError):
        return False


def choose_providers(available: Sequence[str], wanted: str, device: str | None) -> list[str]:
    """ONNX Runtime execution providers, best first. `wanted`: ASSETDB_ONNX_PROVIDER
    (auto, cpu, cuda, openvino); auto takes CUDA when installed and the device is not
    forced to cpu, else the CPU (OpenVINO only when asked: docs/performance.md). With
    the `openvino` package installed, OnnxClip runs the image tower in OpenVINO's own
    runtime instead (backends/openvino_tower.py) and asks here only for the CPU."""
    wanted = (wanted or "auto").lower()
    if wanted == "auto":
        if device != "cpu" and PROVIDERS["cuda"] in available:
            return [PROVIDERS["cuda"], PROVIDERS["cpu"]]
        return [PROVIDERS["cpu"]]
    if wanted not in PROVIDERS:
        raise ModelError(f"ASSETDB_ONNX_PROVIDER must be one of auto, {', '.join(PROVIDERS)}; "
                         f"got {wanted!r}")
    if PROVIDERS[wanted] not in available:
        raise ModelError(f"ONNX Runtime here has no {PROVIDERS[wanted]} (it has "
                         f"{', '.join(available)}): install onnxruntime-gpu for cuda; "
                         "for openvino: pip install 'assetdb[openvino]' (OpenVINO's own "
                         "runtime) or onnxruntime-openvino")
    return [PROVIDERS[wanted]] + ([PROVIDERS["cpu"]] if wanted != "cpu" else [])


class OnnxClip:
    """The image and text towers of an exported CLIP: batched, L2-normalised float32."""

    towers = frozenset({IMAGE, TEXT})

    def __init__(self, directory: str, device: str | None = None, batch_size: int = 32,
                 *, provider: str | None = None, threads: int | None = None) -> None:
        from assetdb.config import read_setting

        root = Path(directory).expanduser().resolve()
        manifest = read_manifest(root)
        if manifest is None:
            raise ModelError(f"{directory} holds no ONNX model export ({MANIFEST_NAME})")
        if int(manifest.get("format", 0)) > FORMAT_VERSION:
            raise ModelError(f"{directory} was exported by a newer assetdb (format "
                             f"{manifest.get('format')}); upgrade assetdb to load it")
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelError(MISSING) from None
        self.manifest = manifest
        self.directory = root
        self.name = str(manifest["identity"])
        self.precision = str(manifest.get("precision", "fp32"))
        self.batch_size = batch_size
        self.dimension = int(manifest["dimension"])
        self.max_tokens = int(manifest.get("max_tokens", 77))
        self.pixels = ClipPixels.from_config(manifest["image_processor"])
        self.preprocess = Preprocess(self.pixels.crop_height,
                                     self.pixels.shortest_edge if self.pixels.do_resize
                                     else None, self.pixels.resample)
        self.scoring = SoftmaxScoring(float(manifest.get("logit_scale", 100.0)))
        provider = str(provider or read_setting("ASSETDB_ONNX_PROVIDER")).lower()
        threads = read_setting("ASSETDB_ONNX_THREADS") if threads is None else threads
        # openvino: OpenVINO's own runtime runs the image tower when installed (compiled
        # on the first batch), ONNX Runtime's CPU provider the text tower; without it,
        # ONNX Runtime's OpenVINO provider (onnxruntime-openvino) if that is installed.
        native_openvino = provider == "openvino" and openvino_tower.available()
        self.providers = (choose_providers(ort.get_available_providers(), "cpu", device)
                          if native_openvino else
                          choose_providers(ort.get_available_providers(), provider, device))
        self.device = "cuda" if self.providers[0] == PROVIDERS["cuda"] else "cpu"
        self.image_runtime = "openvino" if native_openvino else "onnxruntime"
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle ORT threads spin by default: on a small machine that spinning takes the
        # cores the decode threads need between two batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        image_path = root / manifest["image_model"]
        try:
            if native_openvino:
                if not image_path.is_file():
                    raise FileNotFoundError(f"no {image_path.name}")
                self._run_image = openvino_tower.OpenVinoTower(image_path, threads or 0).run
            else:
                session = ort.InferenceSession(str(image_path), options,
                                               providers=self.providers)
                self._run_image = lambda feed: session.run(None, feed)[0]
            self._text = ort.InferenceSession(str(root / manifest["text_model"]), options,
                                              providers=self.providers)
            self._tokenizer = Tokenizer.from_file(str(root / manifest["tokenizer"]))
        except Exception as exc:  # a missing or damaged file: ORT raises its own types
            raise ModelError(f"cannot load the ONNX model in {directory}: {exc}") from None
        self._tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer.enable_padding(pad_id=int(manifest["pad_token_id"]))
        self._text_inputs = {i.name for i in self._text.get_inputs()}

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    def _batches(self, n: int) -> range:
        return range(0, n, max(1, self.batch_size))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        # CLIP reads at most 77 tokens: longer texts are truncated, as in the torch path.
        texts = [str(t) for t in texts]
        out = [np.zeros((0, self.dimension), np.float32)]
        for i in self._batches(len(texts)):
            encodings = self._tokenizer.encode_batch(texts[i : i + self.batch_size])
            feed = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64)}
            if "attention_mask" in self._text_inputs:
                feed["attention_mask"] = np.array([e.attention_mask for e in encodings],
                                                  dtype=np.int64)
            out.append(self._text.run(None, feed)[0])
        return _normalised(np.concatenate(out))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = [np.zeros((0, self.dimension), np.float32)]
        for i in self._batches(len(images)):
            pixels = self.pixels.batch(images[i : i + self.batch_size])
            out.append(self._run_image({"pixel_values": pixels}))
        return _normalised(np.concatenate(out))


def _normalised(vectors: np.ndarray) -> np.ndarray:
    # The towers normalise already; again here so that int8 rounding cannot leave a norm
    # of 0.999 (pgvector's cosine does not mind, inner products do).
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
