"""CLIP's image preprocessing with Pillow and numpy only, for backends without torch.

It does what transformers' CLIPImageProcessor (its Pillow backend, which
sentence-transformers uses) does, step for step, so that the pixels, and therefore the
vectors, are those of the torch path (tests/test_onnx_backend.py compares them):
RGB (transparency composited on white), resize so the shortest side is `shortest_edge`
(Pillow, the configured filter), centre crop (zero padding when the image is smaller),
rescale by 1/255 in float64 then float32, normalise by the mean and std.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from assetdb.embedding.preprocess import shortest_edge_size

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipPixels:
    shortest_edge: int
    crop_height: int
    crop_width: int
    resample: int = int(Image.Resampling.BICUBIC)
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    rescale_factor: float = 1 / 255
    do_resize: bool = True
    do_center_crop: bool = True
    do_rescale: bool = True
    do_normalize: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ClipPixels:
        """From an `image_processor` block of processor_config.json (or
        preprocessor_config.json). Only the shortest-edge resize of CLIP is supported."""
        size = config.get("size") or {"shortest_edge": 224}
        if "shortest_edge" not in size or size.get("longest_edge"):
            raise ValueError(f"unsupported CLIP image resize {size!r}: only shortest_edge")
        crop = config.get("crop_size") or {"height": size["shortest_edge"],
                                           "width": size["shortest_edge"]}
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        return cls(
            shortest_edge=int(size["shortest_edge"]),
            crop_height=int(crop["height"]), crop_width=int(crop["width"]),
            resample=int(config.get("resample", Image.Resampling.BICUBIC)),
            mean=tuple(config.get("image_mean") or OPENAI_CLIP_MEAN),
            std=tuple(config.get("image_std") or OPENAI_CLIP_STD),
            rescale_factor=float(config.get("rescale_factor", 1 / 255)),
            do_resize=bool(config.get("do_resize", True)),
            do_center_crop=bool(config.get("do_center_crop", True)),
            do_rescale=bool(config.get("do_rescale", True)),
            do_normalize=bool(config.get("do_normalize", True)),
        )

    def as_config(self) -> dict[str, Any]:
        return {"size": {"shortest_edge": self.shortest_edge},
                "crop_size": {"height": self.crop_height, "width": self.crop_width},
                "resample": self.resample, "image_mean": list(self.mean),
                "image_std": list(self.std), "rescale_factor": self.rescale_factor,
                "do_resize": self.do_resize, "do_center_crop": self.do_center_crop,
                "do_rescale": self.do_rescale, "do_normalize": self.do_normalize}

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One image -> (3, crop_height, crop_width) float32."""
        image = _rgb(image)
        if self.do_resize:
            image = image.resize(shortest_edge_size(*image.size, self.shortest_edge),
                                 self.resample)
        arr = np.asarray(image)  # (H, W, 3) uint8
        if self.do_center_crop:
            arr = _center_crop(arr, self.crop_height, self.crop_width)
        out = arr.astype(np.float64) * self.rescale_factor if self.do_rescale else arr
        out = out.astype(np.float32)
        if self.do_normalize:
            out = (out - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Images -> (N, 3, H, W) float32, the tower's pixel_values."""
        return np.stack([self.pixels(im) for im in images])


def _rgb(image: Image.Image) -> Image.Image:
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _center_crop(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """transformers' center_crop: a plain crop, or zero padding around a smaller image."""
    h, w = arr.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    if top >= 0 and left >= 0:
        return arr[top : top + height, left : left + width]
    new_h, new_w = max(height, h), max(width, w)
    padded = np.zeros((new_h, new_w, arr.shape[2]), dtype=arr.dtype)
    top_pad, left_pad = math.ceil((new_h - h) / 2), math.ceil((new_w - w) / 2)
    padded[top_pad : top_pad + h, left_pad : left_pad + w] = arr
    top, left = top + top_pad, left + left_pad
    return padded[max(0, top) : min(new_h, top + height), max(0, left) : min(new_w, left + width)]
