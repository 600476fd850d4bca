"""A generated domain: coloured shapes on coloured backgrounds, with true captions.

Every image knows what it shows (shape, colour, size, background, position), so search
results and classifications can be checked by a person and by tests. The same code makes
the demo model's training set and the held-out sets that tests and `assetdb demo` use.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 60),
    "blue": (40, 70, 215),
    "yellow": (235, 215, 40),
    "purple": (135, 50, 170),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SIZES = {"small": (0.28, 0.34), "large": (0.44, 0.54)}  # radius as a fraction of the side
IMAGE_SIDE = 64

# Caption forms used for training, with weights; the first is an image's canonical caption.
# Shape and colour lead on purpose. Colour alone separates most pairs in a batch, so without
# shape-only forms a small model learns colour long before shape. And every caption that
# names the background teaches the image tower to weigh it: with background in 4 of 13
# captions, an image's nearest neighbours shared its background more often than its shape
# (image -> image top-3 with the same shape and colour: 0.63); in 2 of 17, 0.83
# (docs/finetune.md).
CAPTION_FORMS: dict[str, int] = {
    "a {size} {color} {shape} on a {background} background": 1,
    "a {color} {shape} on a {background} background": 1,
    "a {size} {color} {shape}": 2,
    "a {color} {shape}": 5,
    "a photo of a {color} {shape}.": 3,
    "a photo of a {shape}.": 2,
    "a {shape}": 2,
    "a {size} {shape}": 1,
}
CANONICAL = next(iter(CAPTION_FORMS))
# Templates that turn a shape name into a zero-shot prompt (all within the vocabulary).
SHAPE_TEMPLATES = ("a photo of a {}.", "a {}")


def vocabulary() -> list[str]:
    """Every word the captions use: the demo tokenizer spells them whole."""
    words = {"a", "on", "background", "photo", "of", "shape", *SHAPES, *COLORS, *SIZES}
    return sorted(words)


@dataclass(frozen=True)
class ShapeImage:
    shape: str
    color: str
    size: str
    background: str
    x: float  # centre, in pixels
    y: float
    radius: float
    angle: float  # degrees

    def caption(self, form: str = CANONICAL) -> str:
        return form.format(shape=self.shape, color=self.color, size=self.size,
                           background=self.background)

    def tags(self) -> list[str]:
        return [self.shape, self.color, self.size, f"on-{self.background}"]


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int = 12) -> tuple[int, ...]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _polygon(item: ShapeImage) -> list[tuple[float, float]]:
    def ring(n: int, radius: float, start: float) -> list[tuple[float, float]]:
        return [(radius, start + 360.0 * i / n) for i in range(n)]

    r = item.radius
    if item.shape == "square":
        polar = ring(4, r * 1.15, 45)
    elif item.shape == "diamond":
        polar = [(r * 1.15, 0), (r * 0.75, 90), (r * 1.15, 180), (r * 0.75, 270)]
    elif item.shape == "triangle":
        polar = ring(3, r * 1.2, -90)
    elif item.shape == "star":
        polar = [(r * 1.2 if i % 2 == 0 else r * 0.48, -90 + 36 * i) for i in range(10)]
    elif item.shape == "cross":
        w, a = r * 0.38, r * 1.1
        pts = [(w, a), (w, w), (a, w), (a, -w), (w, -w), (w, -a),
               (-w, -a), (-w, -w), (-a, -w), (-a, w), (-w, w), (-w, a)]
        polar = [(math.hypot(px, py), math.degrees(math.atan2(py, px))) for px, py in pts]
    else:
        raise ValueError(item.shape)
    rot = item.angle if item.shape != "diamond" else 0.0  # a tilted diamond is a square
    return [(item.x + d * math.cos(math.radians(t + rot)),
             item.y + d * math.sin(math.radians(t + rot))) for d, t in polar]


def render(item: ShapeImage, rng: random.Random, side: int = IMAGE_SIDE) -> Image.Image:
    """Draw at 3x and downsample, for smooth edges."""
    scale = 3
    img = Image.new("RGB", (side * scale, side * scale), _jitter(COLORS[item.background], rng))
    draw = ImageDraw.Draw(img)
    fill = _jitter(COLORS[item.color], rng)
    big = ShapeImage(**{**asdict(item), "x": item.x * scale, "y": item.y * scale,
                        "radius": item.radius * scale})
    if item.shape == "circle":
        r = big.radius
        draw.ellipse((big.x - r, big.y - r, big.x + r, big.y + r), fill=fill)
    else:
        draw.polygon(_polygon(big), fill=fill)
    return img.resize((side, side), Image.Resampling.BOX)


def sample(rng: random.Random, side: int = IMAGE_SIDE, *, shape: str | None = None,
           color: str | None = None) -> ShapeImage:
    shape = shape or rng.choice(SHAPES)
    color = color or rng.choice(list(COLORS))
    size = rng.choice(list(SIZES))
    background = rng.choice([c for c in COLORS if c != color])
    lo, hi = SIZES[size]
    radius = rng.uniform(lo, hi) * side / 2
    # Positions vary around the centre, never cut by the edge.
    lo_xy, hi_xy = max(radius * 1.25, side * 0.3), min(side - radius * 1.25, side * 0.7)
    x, y = rng.uniform(lo_xy, hi_xy), rng.uniform(lo_xy, hi_xy)
    angle = rng.uniform(-20, 20)
    return ShapeImage(shape, color, size, background, round(x, 1), round(y, 1),
                      round(radius, 1), round(angle, 1))


def generate(out_dir: Path, count: int, *, seed: int = 0, side: int = IMAGE_SIDE,
             balanced: bool = False, mono: bool = False) -> Iterator[tuple[Path, ShapeImage]]:
    """Write `count` PNG files to out_dir; yield (path, what it shows). `balanced` cycles
    through every (shape, colour) pair, so each appears count / 48 times (+-1)."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = len(str(count - 1))
    combos = [(s, c) for s in SHAPES for c in COLORS]
    for i in range(count):
        shape, color = combos[i % len(combos)] if balanced else (None, None)
        item = sample(rng, side, shape=shape, color="black" if mono else color)
        if mono:  # black on white: shape is all there is to see (first training stage)
            item = ShapeImage(**{**asdict(item), "background": "white"})
        path = out_dir / f"{item.color}-{item.shape}-{i:0{width}d}.png"
        render(item, rng, side).save(path, compress_level=1)
        yield path, item


SHAPE_ONLY_FORMS: dict[str, int] = {"a {shape}": 1, "a photo of a {shape}.": 1}


def write_pairs(items: list[tuple[Path, ShapeImage]], pairs: Path,
                forms: dict[str, int] = CAPTION_FORMS, *, seed: int = 0) -> Path:
    """pairs.jsonl for `assetdb finetune`: one caption per image, its form drawn at random
    with the forms' weights; image paths relative to the pairs file."""
    rng = random.Random(seed + 1_000_003)
    with pairs.open("w") as fh:
        for path, item in items:
            form = rng.choices(list(forms), weights=list(forms.values()))[0]
            fh.write(json.dumps({"image": str(path.relative_to(pairs.parent)),
                                 "caption": item.caption(form)}) + "\n")
    return pairs


def write_training_pairs(out_dir: Path, count: int, *, seed: int = 0,
                         forms: dict[str, int] = CAPTION_FORMS) -> Path:
    """Images plus pairs.jsonl with one caption per image."""
    out_dir.mkdir(parents=True, exist_ok=True)
    items = list(generate(out_dir / "images", count, seed=seed))
    return write_pairs(items, out_dir / "pairs.jsonl", forms, seed=seed)


def _english(caption: str) -> str:
    # Training captions keep "a" before every colour (one fewer word to learn); titles
    # are for people.
    return re.sub(r"\ba orange\b", "an orange", caption)


# Made-up product facts, one product per (shape, colour) pair, so that `assetdb ask` has
# something to find that no picture shows (docs/ask.md).
_COLOR_CODES = {"red": "RED", "green": "GRN", "blue": "BLU", "yellow": "YEL",
                "purple": "PUR", "orange": "ORA", "white": "WHT", "black": "BLK"}


def product_facts(shape: str, color: str) -> tuple[str, int]:
    """(part number, weight in grams) of the made-up product that a shape in a colour is."""
    n = SHAPES.index(shape) * len(COLORS) + list(COLORS).index(color)
    return f"{_COLOR_CODES[color]}-{shape[:4].upper()}-{n + 1:02d}", 40 + 5 * n


def product_description(shape: str, color: str) -> str:
    part, grams = product_facts(shape, color)
    return f"{_english(f'a {color} {shape}').capitalize()} part. Part no. {part}, weight {grams} g."


def write_catalogue(out_dir: Path, count: int, *, seed: int = 0) -> Path:
    """Balanced images plus a sidecar (metadata.jsonl) that `assetdb ingest --metadata`
    reads: the true caption as title, tags, shape/colour/size/background as metadata and
    the product's made-up facts as description. The descriptions also go to
    description.json, in the `image_path` / `description` form a knowledge base keeps."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sidecar = out_dir / "metadata.jsonl"
    descriptions = []
    with sidecar.open("w") as fh:
        for path, item in generate(out_dir / "images", count, seed=seed, balanced=True):
            description = product_description(item.shape, item.color)
            fh.write(json.dumps({
                "image_path": f"images/{path.name}",
                "title": _english(item.caption()),
                "description": description,
                "tags": item.tags(),
                "shape": item.shape, "color": item.color, "size": item.size,
                "background": item.background,
            }) + "\n")
            descriptions.append({"image_path": f"images/{path.name}",
                                 "description": description})
    (out_dir / "description.json").write_text(json.dumps(descriptions, indent=1) + "\n")
    return sidecar


def write_class_folders(out_dir: Path, count: int, *,
                        seed: int = 0) -> list[tuple[Path, ShapeImage]]:
    """A folder per shape, the layout `assetdb eval --folder` reads; returns what it wrote."""
    out: list[tuple[Path, ShapeImage]] = []
    for path, item in generate(out_dir / "_all", count, seed=seed, balanced=True):
        dest = out_dir / item.shape / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)
        out.append((dest, item))
    (out_dir / "_all").rmdir()
    return out
