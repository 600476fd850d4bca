"""A second renderer of the shapes domain, for evaluation only: drawings the trainer never
made, to measure whether a model generalises rather than knows its generator's pixels.

It shares nothing with the training generator (assetdb/demo/shapes.py) but the names of
shapes and colours: its own geometry, and on top of it rotations up to 45 degrees (30 for
squares and diamonds, which 45 degrees would turn into each other),
outlined shapes, stretched shapes, other image aspect ratios, shapes off centre, other
shades of each colour, textured backgrounds and JPEG compression. Nothing in training
may import it (tests/test_multilingual_demo.py checks).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from assetdb.demo.shapes import COLORS, SHAPES

TEXTURES = ("plain", "stripes", "checks", "noise", "gradient")


@dataclass(frozen=True)
class EvalShape:
    shape: str
    color: str
    background: str
    outline: bool
    texture: str
    angle: float  # degrees, up to 45 either way
    stretch: float  # the shape's width / height (1: as designed)
    width: int  # image size: not always square
    height: int
    dx: float  # offset of the centre, a share of the short side
    dy: float
    radius: float  # a share of the short side
    shade: float  # -1..1: darker .. lighter than the named colour
    jpeg: int  # JPEG quality


def _shade(rgb: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    target = 255 if amount > 0 else 0
    a = abs(amount)
    return tuple(int(round(c + (target - c) * a)) for c in rgb)  # type: ignore[return-value]


def _outline_points(shape: str) -> list[tuple[float, float]]:
    """Unit-radius outlines, drawn afresh (other proportions than the trainer's)."""
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "diamond":
        return [(0, -1.05), (0.68, 0), (0, 1.05), (-0.68, 0)]
    if shape == "triangle":
        return [(math.cos(math.radians(a)), math.sin(math.radians(a)))
                for a in (-90, 30, 150)]
    if shape == "star":
        return [((1.0 if i % 2 == 0 else 0.42) * math.cos(math.radians(-90 + 36 * i)),
                 (1.0 if i % 2 == 0 else 0.42) * math.sin(math.radians(-90 + 36 * i)))
                for i in range(10)]
    if shape == "cross":
        w, a = 0.3, 0.95
        return [(w, a), (w, w), (a, w), (a, -w), (w, -w), (w, -a),
                (-w, -a), (-w, -w), (-a, -w), (-a, w), (-w, w), (-w, a)]
    if shape == "circle":
        return [(math.cos(2 * math.pi * i / 64), math.sin(2 * math.pi * i / 64))
                for i in range(64)]
    raise ValueError(shape)


def _background(item: EvalShape, rng: random.Random, scale: int) -> Image.Image:
    w, h = item.width * scale, item.height * scale
    base = COLORS[item.background]
    img = Image.new("RGB", (w, h), base)
    draw = ImageDraw.Draw(img)
    other = _shade(base, 0.18 if sum(base) < 384 else -0.18)
    step = rng.randint(5, 10) * scale
    if item.texture == "stripes":
        for x in range(-h, w, step * 2):
            draw.polygon([(x, 0), (x + step, 0), (x + step + h, h), (x + h, h)], fill=other)
    elif item.texture == "checks":
        for y in range(0, h, step):
            for x in range(0, w, step):
                if (x // step + y // step) % 2:
                    draw.rectangle((x, y, x + step - 1, y + step - 1), fill=other)
    elif item.texture == "noise":
        grain = Image.effect_noise((w, h), 40).convert("RGB")
        img = Image.blend(img, grain, 0.18)
    elif item.texture == "gradient":
        for y in range(h):
            draw.line((0, y, w, y), fill=_shade(base, (y / h - 0.5) * 0.35))
    return img


def render(item: EvalShape, rng: random.Random) -> Image.Image:
    scale = 4  # drawn large, then reduced, for smooth edges
    img = _background(item, rng, scale)
    draw = ImageDraw.Draw(img)
    short = min(item.width, item.height) * scale
    cx = img.width / 2 + item.dx * short
    cy = img.height / 2 + item.dy * short
    r = item.radius * short
    rot = math.radians(item.angle)
    sx, sy = math.sqrt(item.stretch), 1 / math.sqrt(item.stretch)
    pts = [(cx + r * (px * sx * math.cos(rot) - py * sy * math.sin(rot)),
            cy + r * (px * sx * math.sin(rot) + py * sy * math.cos(rot)))
           for px, py in _outline_points(item.shape)]
    fill = _shade(COLORS[item.color], item.shade)
    if item.outline:
        draw.line([*pts, pts[0], pts[1]], fill=fill, width=max(2, int(r * 0.28)),
                  joint="curve")
    else:
        draw.polygon(pts, fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(scale * 0.3))
    img = img.resize((item.width, item.height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=item.jpeg)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def sample(rng: random.Random, *, shape: str | None = None,
           color: str | None = None) -> EvalShape:
    shape = shape or rng.choice(SHAPES)
    color = color or rng.choice(list(COLORS))
    # A background far enough from the shape's colour to see it (white on yellow is not).
    background = rng.choice([c for c in COLORS if c != color
                             and {c, color} not in ({"white", "yellow"}, {"orange", "yellow"},
                                                    {"orange", "red"}, {"purple", "blue"})])
    side = 64
    long_side = rng.choice((64, 72, 84, 96))
    width, height = (long_side, side) if rng.random() < 0.5 else (side, long_side)
    radius = rng.uniform(0.2, 0.3)
    reach = 0.5 - radius * 1.15  # off centre, but inside the square the model reads
    return EvalShape(
        shape=shape, color=color, background=background,
        outline=rng.random() < 0.3, texture=rng.choice(TEXTURES),
        # A square turned 45 degrees is what people call a diamond: those two turn less.
        angle=round(rng.uniform(-30, 30) if shape in ("square", "diamond")
                    else rng.uniform(-45, 45), 1),
        # Stretched a little (a square stretched far is a rectangle); a diamond only
        # narrower, since widening it makes a square standing on its corner.
        stretch=round(math.exp(rng.uniform(-0.2, 0.0) if shape == "diamond"
                               else rng.uniform(-0.15, 0.15)), 3),
        width=width, height=height,
        dx=round(rng.uniform(-reach, reach), 3), dy=round(rng.uniform(-reach, reach), 3),
        radius=round(radius, 3), shade=round(rng.uniform(-0.25, 0.25), 3),
        jpeg=rng.randint(35, 80),
    )


def generate(out_dir: Path, count: int, *, seed: int = 0,
             balanced: bool = True) -> Iterator[tuple[Path, EvalShape]]:
    """Write `count` JPEG files; `balanced` cycles through every (shape, colour) pair."""
    rng = random.Random(seed ^ 0x5EC0ED)
    out_dir.mkdir(parents=True, exist_ok=True)
    combos = [(s, c) for s in SHAPES for c in COLORS]
    width = len(str(count - 1))
    for i in range(count):
        shape, color = combos[i % len(combos)] if balanced else (None, None)
        item = sample(rng, shape=shape, color=color)
        path = out_dir / f"{item.color}-{item.shape}-{i:0{width}d}.jpg"
        render(item, rng).save(path, quality=95)
        yield path, item


def write_class_folders(out_dir: Path, count: int, *,
                        seed: int = 0) -> list[tuple[Path, EvalShape]]:
    """A folder per shape (the layout `assetdb eval --folder` reads)."""
    out = []
    for path, item in generate(out_dir / "_all", count, seed=seed):
        dest = out_dir / item.shape / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)
        out.append((dest, item))
    (out_dir / "_all").rmdir()
    return out
