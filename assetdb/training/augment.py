"""Image augmentation for fine-tuning, applied per batch to the preprocessed pixels.

The trainer decodes and preprocesses every image once (pixels in memory); augmentation
then draws a fresh geometric transform for every image at every step: one random affine
per image (random resized crop, rotation, flips, position and scale jitter, aspect) done
by one `grid_sample` over the batch, so it costs little next to the model's step. Pixels
that come from outside the image repeat its border (a uniform background stays uniform).

Colour jitter (brightness, contrast, saturation) is off by default: where colour is the
label ("a red star") it would teach the model that red and orange are one colour.

Three domain-randomisation transforms (each off by default) change what a geometric
transform cannot: `outline` keeps only the boundary of the foreground (a filled shape
becomes its outline, of random stroke width), `texture` lays a random procedural texture
(smooth or hard-edged value noise, or a random-phase 1/f field) over the background in
shades of the background's own colour, and `shade` makes foreground and background
lighter or darker apart, keeping their hue. They are label-agnostic: the foreground is
whatever differs from the image's background colour (the median of its border pixels),
so they suit images of an object on a mostly uniform ground (product shots, icons,
generated domains); on photographs the mask is noise and they should stay off.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from assetdb.errors import AssetdbError

# "dihedral" adds transposes (mirroring across a diagonal) to both flips: with them every
# turn by a multiple of 90 degrees, the 8 symmetries of a square (aerial and microscope
# images, icons of symmetric things). A turn by 90 degrees keeps a square a square, unlike
# one by 45.
FLIPS = ("none", "horizontal", "both", "dihedral")


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = True
    crop_scale: float = 0.6  # random resized crop: the crop keeps this share of the area at least
    aspect: float = 1.33  # crop aspect ratio drawn in [1/aspect, aspect] (stretches the content)
    rotate: float = 30.0  # degrees, drawn in [-rotate, rotate]
    flip: str = "horizontal"  # none | horizontal | both | dihedral (+ turns by 90 degrees)
    translate: float = 0.1  # position jitter, a share of the side
    zoom_out: float = 1.3  # scale jitter: up to this factor smaller (content shrinks)
    color_jitter: float = 0.0  # brightness/contrast/saturation in [1 - j, 1 + j]; 0: off
    blur: float = 0.0  # share of images softened by a 3x3 Gaussian (focus, resampling)
    noise: float = 0.0  # pixel noise, std up to this (in normalised units; grain, JPEG)
    outline: float = 0.0  # share of images whose foreground is reduced to its outline
    texture: float = 0.0  # share of images whose background gets a random texture
    shade: float = 0.0  # foreground and background lighter/darker apart, up to this share

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
        for name in ("outline", "texture"):
            if not 0 <= getattr(self, name) <= 1:
                raise AssetdbError(f"{name} must lie in 0..1, got {getattr(self, name)}")
        if not 0 <= self.shade < 1:
            raise AssetdbError(f"shade must lie in 0..1, got {self.shade}")

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
    if cfg.flip in ("horizontal", "both", "dihedral"):
        sx = sx * torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    if cfg.flip in ("both", "dihedral"):
        sy = sy * torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    angle = _uniform(n, -cfg.rotate, cfg.rotate, gen) * (math.pi / 180)
    # The crop may lie anywhere inside the image, plus the position jitter.
    tx = (1 - sx.abs()).clamp(min=0) * _uniform(n, -1, 1, gen) + _uniform(
        n, -2 * cfg.translate, 2 * cfg.translate, gen)
    ty = (1 - sy.abs()).clamp(min=0) * _uniform(n, -1, 1, gen) + _uniform(
        n, -2 * cfg.translate, 2 * cfg.translate, gen)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([
        torch.stack([sx * cos, -sy * sin, tx], dim=1),
        torch.stack([sx * sin, sy * cos, ty], dim=1),
    ], dim=1)
    if cfg.flip == "dihedral":  # swap the output's x and y for half the images
        swap = torch.rand(n, generator=gen) < 0.5
        theta[swap] = theta[swap][:, :, [1, 0, 2]]
    return theta


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
    if cfg.outline > 0 or cfg.texture > 0 or cfg.shade > 0:
        m, s = _normalisation(mean, std, out, "outline, texture and shade need")
        out = (restyle(out * s + m, cfg, gen).clamp(0, 1) - m) / s
    if cfg.color_jitter > 0:
        m, s = _normalisation(mean, std, out, "colour jitter needs")
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


def _normalisation(mean: Any, std: Any, like: Any, what: str) -> tuple[Any, Any]:  # noqa: ANN401
    """The model's mean and std as (1, 3, 1, 1) tensors, to go from its inputs to RGB."""
    import torch

    if mean is None or std is None:
        raise AssetdbError(f"{what} the model's normalisation (mean, std)")
    return tuple(torch.as_tensor(v, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
                 for v in (mean, std))


# --- domain randomisation: outline, background texture, shade -----------------------------

def _pick(n: int, share: float, gen: Any, like: Any) -> Any:
    import torch

    return (torch.rand(n, generator=gen) < share).to(like.device, like.dtype).view(n, 1, 1, 1)


def _lighten(rgb: Any, amount: Any) -> Any:
    """Towards white for amount > 0, towards black for amount < 0 (hue kept)."""
    import torch

    return torch.where(amount > 0, rgb + amount * (1 - rgb), rgb * (1 + amount))


def foreground(rgb: Any) -> tuple[Any, Any]:
    """(background colour (N, 3, 1, 1), soft foreground mask (N, 1, H, W)): the background
    is the median of the border pixels; foreground is what differs from it."""
    import torch

    border = torch.cat([rgb[:, :, 0], rgb[:, :, -1], rgb[:, :, :, 0], rgb[:, :, :, -1]],
                       dim=2)
    bg = border.median(dim=2).values.view(-1, 3, 1, 1)
    diff = (rgb - bg).abs().amax(dim=1, keepdim=True)
    return bg, ((diff - 0.06) / 0.12).clamp(0, 1)


def _extreme(alpha: Any, r: int, pick: Any) -> Any:
    """min (erosion) or max (dilation) over a (2r+1)-square, by shifted copies (torch's
    stride-1 max_pool2d is far slower on CPU); the border repeats."""
    import torch.nn.functional as F

    out = alpha
    h, w = alpha.shape[-2:]
    for _ in range(r):
        p = F.pad(out, (1, 1, 1, 1), mode="replicate")
        rows = pick(pick(p[..., :, :w], p[..., :, 1:w + 1]), p[..., :, 2:])
        out = pick(pick(rows[..., :h, :], rows[..., 1:h + 1, :]), rows[..., 2:, :])
    return out


def outline_of(rgb: Any, bg: Any, alpha: Any, gen: Any) -> tuple[Any, Any]:
    """The foreground's boundary in its own (mean) colour on the background colour, with a
    random stroke: 0-1 px outward and 1-3 px inward (at the model's input size)."""
    import torch

    n = rgb.shape[0]
    weight = alpha.sum(dim=(2, 3), keepdim=True).clamp(min=1e-6)
    fg = (rgb * alpha).sum(dim=(2, 3), keepdim=True) / weight  # the foreground's colour
    view = (n, 1, 1, 1)
    inner = torch.randint(1, 4, (n,), generator=gen).to(alpha.device).view(view)
    outer = torch.randint(0, 2, (n,), generator=gen).to(alpha.device).view(view)
    eroded = [_extreme(alpha, 1, torch.minimum)]
    for _ in range(2):
        eroded.append(_extreme(eroded[-1], 1, torch.minimum))
    inside = torch.where(inner == 1, eroded[0], torch.where(inner == 2, eroded[1], eroded[2]))
    outside = torch.where(outer == 1, _extreme(alpha, 1, torch.maximum), alpha)
    ring = (outside - inside).clamp(0, 1)
    return bg + ring * (fg - bg), ring


def texture_field(n: int, h: int, w: int, gen: Any) -> Any:
    """(n, 1, h, w) random patterns in -1..1, one of three procedural families per image:
    smooth value noise (random cells, bicubic), hard-edged blotches (value noise cut at
    a random level) and a random-phase field with a 1/f spectrum (clouds)."""
    import torch
    import torch.nn.functional as F

    view = (n, 1, 1, 1)
    family = torch.randint(0, 3, (n,), generator=gen).view(view)
    cells = torch.randint(3, 13, (n,), generator=gen)
    noise = torch.zeros(n, 1, h, w)
    for c in cells.unique().tolist():  # value noise over a random grid of c x c cells
        rows = (cells == c).nonzero().flatten()
        grid = torch.rand(len(rows), 1, c, c, generator=gen) * 2 - 1
        noise[rows] = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
    level = (torch.rand(n, generator=gen) * 0.6 - 0.3).view(view)
    blotches = torch.where(noise > level, 1.0, -1.0)
    # Random phases, amplitude falling as 1/f^beta (beta 1..2: rough .. smooth clouds).
    fy = torch.fft.fftfreq(h).view(1, h, 1)
    fx = torch.fft.rfftfreq(w).view(1, 1, w // 2 + 1)
    radius = (fx ** 2 + fy ** 2).sqrt().clamp(min=1.0 / max(h, w))
    beta = (1 + torch.rand(n, generator=gen)).view(n, 1, 1)
    phase = torch.rand(n, h, w // 2 + 1, generator=gen) * 2 * math.pi
    clouds = torch.fft.irfft2(torch.polar(radius ** -beta, phase), s=(h, w)).unsqueeze(1)
    f = torch.where(family == 0, noise, torch.where(family == 1, blotches, clouds))
    f = f - f.mean(dim=(2, 3), keepdim=True)
    return f / f.abs().amax(dim=(2, 3), keepdim=True).clamp(min=1e-6)


def restyle(rgb: Any, cfg: AugmentConfig, gen: Any) -> Any:
    """Outline, shade and background texture on RGB pixels in 0..1 (N, 3, H, W)."""
    n, _, h, w = rgb.shape
    bg, alpha = foreground(rgb)
    if cfg.outline > 0:
        drawn, ring = outline_of(rgb, bg, alpha, gen)
        pick = _pick(n, cfg.outline, gen, rgb)
        rgb = pick * drawn + (1 - pick) * rgb
        alpha = pick * ring + (1 - pick) * alpha
    if cfg.shade > 0:
        fg_amount = _uniform(n, -cfg.shade, cfg.shade, gen).to(rgb).view(n, 1, 1, 1)
        bg_amount = _uniform(n, -cfg.shade, cfg.shade, gen).to(rgb).view(n, 1, 1, 1)
        rgb = alpha * _lighten(rgb, fg_amount) + (1 - alpha) * _lighten(rgb, bg_amount)
        bg = _lighten(bg, bg_amount)
    if cfg.texture > 0:
        field = texture_field(n, h, w, gen).to(rgb)
        strength = _uniform(n, 0.1, 0.35, gen).to(rgb).view(n, 1, 1, 1)
        textured = _lighten(bg.expand_as(rgb), strength * field)
        pick = _pick(n, cfg.texture, gen, rgb)
        rgb = rgb + pick * (1 - alpha) * (textured - bg)
    return rgb
