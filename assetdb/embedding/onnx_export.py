"""`assetdb model export`: a sentence-transformers CLIP directory -> an ONNX model directory.

Each tower is exported as the product computes it (sentence-transformers calls
get_image_features / get_text_features, then L2-normalises): vision model, pooled output,
projection, normalisation; text model, pooled (end-of-text) output, projection,
normalisation. Beside them: tokenizer.json (read by `tokenizers`), the image processor's
settings (applied by assetdb.embedding.clip_pixels) and the manifest that names the
backend and the model identity. The export is checked before it is kept: torch and ONNX
Runtime embed the same images and texts, and an fp32 export whose cosine falls below
FP32_MIN_COSINE is refused.

int8 (never a default): dynamic quantization of the weights (`--int8`), or static
quantization calibrated on the user's own images (`--calibrate-images DIR`), by
onnxruntime.quantization. An int8 export records a model identity of its own, so that its
vectors never mix silently with the fp32 model's; `--same-identity` declares them
interchangeable (the user's explicit choice, after looking at the cosine it reports).

This module imports torch: it runs only for the export, never at search time.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from assetdb.embedding.backends.onnx_clip import (
    BACKEND_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    OnnxClip,
)
from assetdb.embedding.clip_pixels import ClipPixels
from assetdb.errors import AssetdbError, ModelError

FP32_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.99
OPSET = 17
CHECK_TEXTS = ["a photo of a dog", "a red circle", "sunset over a brutalist concrete building",
               "", "x " * 100]
INT8_SUFFIX = "#onnx-int8"

Log = Callable[[str], None]


class ExportError(AssetdbError):
    pass


@dataclass
class ExportReport:
    out: Path
    identity: str
    source: str
    precision: str
    dimension: int
    image_min_cosine: float
    text_min_cosine: float
    files: dict[str, int]  # name -> bytes

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "out": str(self.out)}


def _towers(clip: Any) -> tuple[Any, Any]:
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            pooled = self.clip.vision_model(pixel_values=pixel_values).pooler_output
            return torch.nn.functional.normalize(self.clip.visual_projection(pooled), dim=-1)

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            pooled = self.clip.text_model(input_ids=input_ids,
                                          attention_mask=attention_mask).pooler_output
            return torch.nn.functional.normalize(self.clip.text_projection(pooled), dim=-1)

    return ImageTower().eval(), TextTower().eval()


def _export_towers(clip: Any, pixels: ClipPixels, tokenizer: Any, out: Path) -> None:
    import warnings

    import torch

    # Eager attention: the SDPA path picks its mask by a test on the data, which a trace
    # would freeze for the example input; eager computes the same numbers for any input.
    if hasattr(clip, "set_attn_implementation"):
        clip.set_attn_implementation("eager")
    else:  # pragma: no cover - older transformers
        clip.config._attn_implementation = "eager"
    image_tower, text_tower = _towers(clip)
    example_pixels = torch.zeros(2, 3, pixels.crop_height, pixels.crop_width)
    enc = tokenizer(["a photo", "a photo of a dog"], padding=True, return_tensors="pt")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's and the legacy exporter's notices
        torch.onnx.export(image_tower, (example_pixels,), str(out / "image.onnx"),
                          input_names=["pixel_values"], output_names=["embedding"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
        torch.onnx.export(text_tower, (enc["input_ids"], enc["attention_mask"]),
                          str(out / "text.onnx"),
                          input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"},
                                        "embedding": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)


def _image_processor_config(processor: Any) -> dict[str, Any]:
    proc = getattr(processor, "image_processor", None)
    if proc is None:
        raise ExportError("the model has no image processor: it is not a CLIP model")
    config = proc.to_dict()
    try:
        return ClipPixels.from_config(config).as_config()
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"cannot export this image processor: {exc}") from None


def _save_tokenizer(tokenizer: Any, out: Path) -> int:
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer",
                                                                       None)
    if backend is None or not hasattr(backend, "save"):
        raise ExportError("the model's tokenizer has no tokenizers (Rust) form to export")
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(out / "tokenizer.json"))
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def check_images(image_size: int, extra: Sequence[Path] = ()) -> list[Image.Image]:
    """Images for the equality check: photo-like gradients with noise at several sizes
    and aspect ratios (resize and crop are exercised), plus the user's own when given."""
    rng = np.random.default_rng(0)
    out = []
    for w, h in ((640, 480), (300, 500), (image_size, image_size), (image_size // 2, 90)):
        base = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
        noisy = np.clip(np.asarray(img, np.int16) + rng.integers(-12, 13, (h, w, 3)), 0, 255)
        out.append(Image.fromarray(noisy.astype(np.uint8)))
    for path in extra:
        from assetdb.embedding.images import load_image

        out.append(load_image(path))
    return out


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def _calibration_reader(paths: Sequence[Path], pixels: ClipPixels, batch: int = 8) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    from assetdb.embedding.images import load_image

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(range(0, len(paths), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.batches, None)
            if start is None:
                return None
            images = [load_image(p, pixels.shortest_edge) for p in paths[start : start + batch]]
            return {"pixel_values": pixels.batch(images)}

    return Reader()


def _quantize(fp32_dir: Path, out: Path, pixels: ClipPixels,
              calibration: Sequence[Path]) -> str:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = fp32_dir / "prepared"
    prepared.mkdir()
    for tower in ("image", "text"):
        quant_pre_process(str(fp32_dir / f"{tower}.onnx"), str(prepared / f"{tower}.onnx"),
                          skip_symbolic_shape=True)
    quantize_dynamic(str(prepared / "text.onnx"), str(out / "text.onnx"),
                     weight_type=QuantType.QInt8)
    if not calibration:
        quantize_dynamic(str(prepared / "image.onnx"), str(out / "image.onnx"),
                         weight_type=QuantType.QInt8)
        return "int8-dynamic"
    quantize_static(str(prepared / "image.onnx"), str(out / "image.onnx"),
                    _calibration_reader(calibration, pixels), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=["MatMul", "Gemm", "Conv"])
    return "int8-static"


def export(
    model: str,
    out: Path,
    *,
    int8: bool = False,
    calibration: Sequence[Path] = (),
    same_identity: bool = False,
    check_files: Sequence[Path] = (),
    overwrite: bool = False,
    log: Log = lambda _m: None,
) -> ExportReport:
    """Export `model` (a sentence-transformers CLIP name or directory) to `out`."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # Only an earlier export is ever replaced: --overwrite never empties a folder of
        # other files.
        if not (out / MANIFEST_NAME).is_file():
            raise ExportError(f"{out} exists and is not an empty folder: choose a new --out")
        if not overwrite:
            raise ExportError(f"{out} holds an earlier export: add --overwrite to replace it")
    if calibration and not int8:
        raise ExportError("calibration images are for int8: add --int8")
    if same_identity and not int8:
        raise ExportError("--same-identity is for int8 (an fp32 export has it already)")
    try:
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"exporting needs torch and onnxruntime ({exc}): "
                         "pip install 'assetdb[onnx]'") from None
    from assetdb.embedding.backends.st_clip import SentenceTransformerClip

    log(f"Loading {model} with torch ...")
    source = SentenceTransformerClip(model, device="cpu", batch_size=8)
    clip, processor = source.clip_model, source.processor
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        raise ExportError("the model has no tokenizer: it cannot embed texts")
    pixels = ClipPixels.from_config(_image_processor_config(processor))
    images = check_images(pixels.crop_height, check_files)
    torch_images = source.encode_images(images)
    torch_texts = source.encode_texts(CHECK_TEXTS)

    with tempfile.TemporaryDirectory(prefix="assetdb-export-") as tmp:
        work = Path(tmp) / "fp32"
        work.mkdir()
        log("Exporting the image and text towers to ONNX ...")
        _export_towers(clip, pixels, tokenizer, work)
        pad_id = _save_tokenizer(tokenizer, work)
        manifest: dict[str, Any] = {
            "format": FORMAT_VERSION, "backend": BACKEND_NAME,
            "identity": source.name, "source_model": source.name, "precision": "fp32",
            "dimension": source.dimension, "logit_scale": source.scoring.logit_scale,
            "image_model": "image.onnx", "text_model": "text.onnx",
            "tokenizer": "tokenizer.json", "pad_token_id": pad_id,
            "max_tokens": int(tokenizer.model_max_length or 77),
            "image_processor": pixels.as_config(),
        }
        final = Path(tmp) / "out"
        final.mkdir()
        shutil.copy2(work / "tokenizer.json", final / "tokenizer.json")
        if int8:
            log("Quantizing to int8 ...")
            manifest["precision"] = _quantize(work, final, pixels, calibration)
            if not same_identity:
                manifest["identity"] = source.name + INT8_SUFFIX
            manifest["calibration_images"] = len(calibration)
        else:
            for tower in ("image.onnx", "text.onnx"):
                shutil.copy2(work / tower, final / tower)
        _versions(manifest)
        (final / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")

        log("Checking the ONNX towers against torch ...")
        exported = OnnxClip(str(final), device="cpu", batch_size=8, provider="cpu")
        image_cos = min_cosine(torch_images, exported.encode_images(images))
        text_cos = min_cosine(torch_texts, exported.encode_texts(CHECK_TEXTS))
        bound = INT8_MIN_COSINE if int8 else FP32_MIN_COSINE
        manifest["check"] = {"image_min_cosine": round(image_cos, 6),
                             "text_min_cosine": round(text_cos, 6), "bound": bound,
                             "images": len(images), "texts": len(CHECK_TEXTS)}
        if min(image_cos, text_cos) < bound:
            raise ExportError(
                f"the ONNX model's vectors differ from torch's (min cosine: images "
                f"{image_cos:.5f}, texts {text_cos:.5f}; the bound is {bound}): not saved")
        (final / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(final, out)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    return ExportReport(out=out.resolve(), identity=manifest["identity"], source=source.name,
                        precision=manifest["precision"], dimension=source.dimension,
                        image_min_cosine=image_cos, text_min_cosine=text_cos, files=files)


def _versions(manifest: dict[str, Any]) -> None:
    import onnxruntime
    import torch
    import transformers

    manifest["exported_with"] = {"torch": torch.__version__,
                                 "transformers": transformers.__version__,
                                 "onnxruntime": onnxruntime.__version__, "opset": OPSET}
