"""The OCR model: rapidocr's PP-OCR detection, orientation and recognition models, which
its wheel carries (nothing is downloaded), run with ONNX Runtime on the CPU.

rapidocr is an optional extra (`pip install 'assetdb[ocr]'`); loading it is the only
place that imports it, and any failure there becomes one clear OcrUnavailable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from assetdb.errors import AssetdbError

EXTRA_HINT = "install the OCR extra: pip install 'assetdb[ocr]'"
# Detection reads the image with its longer side scaled down to this (rapidocr's default
# scales the shorter side *up* to 736: 5x slower here on slide-sized images, same words).
DET_MAX_SIDE = 960
MAX_SIDE = 2000  # larger images are reduced before OCR (rapidocr's own upper bound)


class OcrUnavailable(AssetdbError):
    """The OCR model cannot be loaded (extra missing, broken install)."""


@dataclass(frozen=True)
class Line:
    text: str
    box: list[float]  # x1,y1,..,x4,y4 in pixels of the image as stored
    confidence: float


class OcrEngine:
    def __init__(self, impl: Any, name: str) -> None:  # noqa: ANN401
        self._impl, self.name = impl, name

    def read(self, image: Image.Image) -> list[Line]:
        """The text lines of an (RGB) image, top to bottom, with boxes in its pixels."""
        factor = 1.0
        if max(image.size) > MAX_SIDE:
            factor = max(image.size) / MAX_SIDE
            image = image.resize((round(image.width / factor), round(image.height / factor)))
        result = self._impl(image)
        if result is None or result.txts is None or result.boxes is None:
            return []
        lines = []
        for text, score, box in zip(result.txts, result.scores, result.boxes, strict=True):
            text = str(text).strip()
            if text:
                points = [round(float(v) * factor, 1) for point in box for v in point]
                lines.append(Line(text, points, round(float(score), 4)))
        lines.sort(key=lambda ln: (min(ln.box[1::2]), min(ln.box[0::2])))
        return lines


def load_engine() -> OcrEngine:
    """rapidocr with its bundled models; OcrUnavailable says what to do when it fails."""
    try:
        from importlib.metadata import version

        from rapidocr import RapidOCR
    except ImportError as exc:
        raise OcrUnavailable(f"OCR is not installed ({exc.name or exc}): {EXTRA_HINT}") from None
    try:
        impl = RapidOCR(params={"Global.log_level": "error",
                                "Det.limit_type": "max", "Det.limit_side_len": DET_MAX_SIDE})
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party load
        raise OcrUnavailable(f"the OCR model failed to load ({type(exc).__name__}: {exc}); "
                             f"reinstall it: pip install --force-reinstall 'assetdb[ocr]'"
                             ) from None
    return OcrEngine(impl, f"rapidocr {version('rapidocr')} PP-OCRv6-small")
