"""Image augmentation for fine-tuning, applied per batch to the preprocessed pixels.

The trainer decodes and preprocesses every image once (pixels in memory); augmentation
then draws a fresh geometric transform for every image at every step: one random affine
per image (random resized crop, rotation, flips, position and scale jitter, aspect) done
by one `grid_sample` over the batch, so it costs little next to the model's step. Pixels
that come from outside the image repeat its border (a uniform background stays uniform).

Colour jitter (brightness, contrast, saturation) is off by default: where colour is the
label ("a red star") it would teach the model that red and orange are one colour.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from assetdb.errors import AssetdbError

FLIPS = ("none", "horizontal", "both")


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = True
    crop_scale: float = 0.6  # random resized crop: the crop keeps this share of the area at least
    aspect: float = 1.33  # crop aspect ratio drawn in [1/aspect, aspect] (stretches the content)
    rotate: float = 30.0  # degrees, drawn in [-rotate, rotate]
    flip: str = "horizontal"  # none | horizontal | both (mirror images keep their label)
    translate: float = 0.1  # position jitter, a share of the side
    zoom_out: float = 1.3  # scale jitter: up to this factor smaller (content shrinks)
    color_jitter: float = 0.0  # brightness/contrast/saturation in [1 - j, 1 + j]; 0: off
    blur: float = 0.0  # share of images softened by a 3x3 Gaussian (focus, resampling)
    noise: float = 0.0  # pixel noise, std up to this (in normalised units; grain, JPEG)

    def __post_init__(self) -> None:
        if not 0.05 <= self.crop_scale <= 1:
            raise AssetdbError(f"crop scale must lie in 0.05..1, got {self.crop_scale}")
        if not 1 <= self.aspect <= 4:
            raise AssetdbError(f"aspect must lie in 1..4, got {self.aspect}")
        if not 0 <= self.rotate <= 180:
            raise AssetdbError(f"rotation must lie in 0..180 degrees, got {self.rotate}")
        if self.flip not in FLIPS:
            raise AssetdbError(f"flip must be one of {', '.join(FLIPS)}, got {self.flip!r}")
        if not 0 <= self.translate <= 0.5:
            raise AssetdbError(f"translate must lie in 0..0.5, got {self.translate}")
        if not 1 <= self.zoom_out <= 3:
            raise AssetdbError(f"zoom out must lie in 1..3, got {self.zoom_out}")
        if not 0 <= self.color_jitter < 1:
            raise AssetdbError(f"colour jitter must lie in 0..1, got {self.color_jitter}")
        if not 0 <= self.blur <= 1:
            raise AssetdbError(f"blur must lie in 0..1, got {self.blur}")
        if not 0 <= self.noise <= 1:
            raise AssetdbError(f"noise must lie in 0..1, got {self.noise}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


NO_AUGMENT = AugmentConfig(enabled=False)


def _uniform(n: int, lo: float, hi: float, gen: Any) -> Any:
    import torch

    return lo + (hi - lo) * torch.rand(n, generator=gen)


def affine_matrices(n: int, cfg: AugmentConfig, gen: Any) -> Any:
    """(n, 2, 3) matrices mapping output coordinates (-1..1) to input coordinates, as
    torch's affine_grid reads them."""
    import torch

    area = _uniform(n, cfg.crop_scale, 1.0, gen)
    log_ratio = _uniform(n, -math.log(cfg.aspect), math.log(cfg.aspect), gen)
    ratio = log_ratio.exp()
    # A crop of this area and aspect (<= the whole side), times a zoom out (> 1 reads more
    # than the image: the content shrinks, the border repeats around it).
    zoom = _uniform(n, 1.0, cfg.zoom_out, gen)
    sx = (area * ratio).sqrt().clamp(max=1.0) * zoom
    sy = (area / ratio).sqrt().clamp(max=1.0) * zoom
    if cfg.flip in ("horizontal", "both"):
        sx = sx * torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    if cfg.flip == "both":
        sy = sy * torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    angle = _uniform(n, -cfg.rotate, cfg.rotate, gen) * (math.pi / 180)
    # The crop may lie anywhere inside the image, plus the position jitter.
    tx = (1 - sx.abs()).clamp(min=0) * _uniform(n, -1, 1, gen) + _uniform(
        n, -2 * cfg.translate, 2 * cfg.translate, gen)
    ty = (1 - sy.abs()).clamp(min=0) * _uniform(n, -1, 1, gen) + _uniform(
        n, -2 * cfg.translate, 2 * cfg.translate, gen)
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([
        torch.stack([sx * cos, -sy * sin, tx], dim=1),
        torch.stack([sx * sin, sy * cos, ty], dim=1),
    ], dim=1)


def augment(pixels: Any, cfg: AugmentConfig, gen: Any, mean: Any = None, std: Any = None) -> Any:
    """A randomly transformed copy of a batch of normalised pixels (N, 3, H, W).

    mean/std (3 values each) undo the model's normalisation for colour jitter."""
    import torch
    import torch.nn.functional as F

    if not cfg.enabled:
        return pixels
    n = pixels.shape[0]
    theta = affine_matrices(n, cfg, gen).to(pixels.device, pixels.dtype)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    if cfg.color_jitter > 0:
        if mean is None or std is None:
            raise AssetdbError("colour jitter needs the model's normalisation (mean, std)")
        m = torch.as_tensor(mean, dtype=out.dtype, device=out.device).view(1, 3, 1, 1)
        s = torch.as_tensor(std, dtype=out.dtype, device=out.device).view(1, 3, 1, 1)
        rgb = out * s + m
        j = cfg.color_jitter

        def factor() -> Any:
            return _uniform(n, 1 - j, 1 + j, gen).to(out.device, out.dtype).view(n, 1, 1, 1)

        rgb = rgb * factor()  # brightness
        grey = rgb.mean(dim=(1, 2, 3), keepdim=True)
        rgb = (rgb - grey) * factor() + grey  # contrast
        luma = (0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
        rgb = (rgb - luma) * factor() + luma  # saturation
        out = (rgb.clamp(0, 1) - m) / s
    if cfg.blur > 0:
        kernel = torch.tensor([1.0, 2.0, 1.0], dtype=out.dtype, device=out.device)
        kernel = (kernel[:, None] * kernel[None, :] / 16).expand(out.shape[1], 1, 3, 3)
        soft = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), kernel,
                        groups=out.shape[1])
        pick = (torch.rand(n, generator=gen) < cfg.blur).to(out.device).view(n, 1, 1, 1)
        out = torch.where(pick, soft, out)
    if cfg.noise > 0:
        std = _uniform(n, 0.0, cfg.noise, gen).to(out.device, out.dtype).view(n, 1, 1, 1)
        grain = torch.randn(out.shape, generator=gen).to(out.device, out.dtype)
        out = out + std * grain
    return out
