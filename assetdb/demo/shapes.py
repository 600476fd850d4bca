"""A generated domain: coloured shapes on coloured backgrounds, with true captions.

Every image knows what it shows (shape, colour, size, background, position), so search
results and classifications can be checked by a person and by tests. The same code makes
the demo model's training set and the held-out sets that tests and `assetdb demo` use.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
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
    # Drawn with domain randomisation (Variety below); the plain drawing ignores the rest.
    varied: bool = False
    stretch: float = 1.0  # the shape's width / height before the turn
    stroke: float = 0.0  # outline width as a share of the radius; 0: filled
    texture: str = "plain"  # background pattern (TEXTURES)
    shade: float = 0.0  # -1..1: the shape's colour darker .. lighter
    background_shade: float = 0.0
    jpeg: int = 0  # JPEG quality the image went through; 0: none

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
    if item.varied:
        return render_varied(item, rng, side)
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
             balanced: bool = False, mono: bool = False,
             variety: Variety | None = None) -> Iterator[tuple[Path, ShapeImage]]:
    """Write `count` PNG files to out_dir; yield (path, what it shows). `balanced` cycles
    through every (shape, colour) pair, so each appears count / 48 times (+-1). With
    `variety`, its share of the images is drawn with domain randomisation (`vary`); without
    it the images are the same as ever (the held-out sets depend on that)."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = len(str(count - 1))
    combos = [(s, c) for s in SHAPES for c in COLORS]
    for i in range(count):
        shape, color = combos[i % len(combos)] if balanced else (None, None)
        item = sample(rng, side, shape=shape, color="black" if mono else color)
        if mono:  # black on white: shape is all there is to see (first training stage)
            item = ShapeImage(**{**asdict(item), "background": "white"})
        if variety is not None and rng.random() < variety.share:
            item = vary(item, rng, variety, side)
        path = out_dir / f"{item.color}-{item.shape}-{i:0{width}d}.png"
        render(item, rng, side).save(path, compress_level=1)
        yield path, item


# --- domain randomisation in the generator ------------------------------------------------
# The model learns only what its generator draws. `Variety` widens that: shapes turned
# further (as far as each shape's name stays true), stretched either way, drawn as outlines,
# other shades of their colour, patterned backgrounds and JPEG artefacts. Names stay true
# under the convention of a person (and of the evaluation renderer): a square turned 45
# degrees is a diamond, so squares turn at most SQUARE_TURN; a diamond is a rhombus standing
# on a corner, tall or wide, and turns further only when it is clearly not a square
# (aspect >= DIAMOND_ASPECT[0]). The texture families are this module's own (smooth
# gratings, plaids, dot lattices, speckle, radial glows, scribbles): never hard stripes or
# checks, which only the evaluation renderer draws, so that it still measures patterns the
# trainer never saw.
TEXTURES = ("plain", "grating", "plaid", "dots", "speckle", "glow", "scribble",
            "mosaic", "clutter", "blotch", "rings")
# The families a Variety draws unless it names its own: the first, smooth ones. The
# hard-edged ones (cell mosaics, scattered small polygons, thresholded noise, rings) teach
# that an edge in shades of the background is not the shape's.
SMOOTH_TEXTURES = TEXTURES[1:7]
SQUARE_TURN = 30.0
DIAMOND_ASPECT = (1.25, 1.9)  # long / short diagonal of a varied diamond
TURN = {"circle": 90.0, "square": SQUARE_TURN, "triangle": 60.0, "star": 36.0,
        "cross": 45.0}


@dataclass(frozen=True)
class Variety:
    share: float = 0.5  # share of the images drawn varied (the rest as plain)
    outline: float = 0.3  # share of varied images drawn as outlines
    texture: float = 0.6  # share of varied images with a patterned background
    jpeg: float = 0.3  # share of varied images that go through JPEG (quality 25-90)
    shade: float = 0.3  # colours up to this much lighter or darker (a mix with white/black)
    stretch: float = 0.18  # width / height within exp(+-stretch) (diamonds: DIAMOND_ASPECT)
    textures: tuple[str, ...] = SMOOTH_TEXTURES  # the families patterned backgrounds use

    def __post_init__(self) -> None:
        object.__setattr__(self, "textures", tuple(self.textures))
        unknown = set(self.textures) - set(TEXTURES[1:])
        if unknown or not self.textures:
            raise ValueError(f"variety textures must be some of {', '.join(TEXTURES[1:])}"
                             + (f" (not {', '.join(sorted(unknown))})" if unknown else ""))
        for name in ("share", "outline", "texture", "jpeg"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"variety {name} must lie in 0..1")
        if not 0 <= self.shade <= 0.5 or not 0 <= self.stretch <= 0.3:
            raise ValueError("variety shade must lie in 0..0.5 and stretch in 0..0.3")


def vary(item: ShapeImage, rng: random.Random, variety: Variety,
         side: int = IMAGE_SIDE) -> ShapeImage:
    """The same (shape, colour, size, background) drawn with random variety."""
    if item.shape == "diamond":
        if rng.random() < 0.8:  # a clear rhombus, tall or wide, turned up to 25 degrees
            aspect = math.exp(rng.uniform(*map(math.log, DIAMOND_ASPECT)))
            angle = rng.uniform(-25, 25)
        else:  # nearly a square on its corner: barely turned
            aspect = math.exp(rng.uniform(0, math.log(DIAMOND_ASPECT[0])))
            angle = rng.uniform(-8, 8)
        stretch = aspect if rng.random() < 0.5 else 1 / aspect
    else:
        limit = variety.stretch * (0.8 if item.shape == "square" else 1.0)
        stretch = math.exp(rng.uniform(-limit, limit))
        angle = rng.uniform(-TURN[item.shape], TURN[item.shape])
    margin = item.radius * 1.3 * math.sqrt(max(stretch, 1 / stretch))
    lo, hi = min(margin, side / 2), max(side - margin, side / 2)
    return replace(
        item, varied=True, stretch=round(stretch, 3), angle=round(angle, 1),
        x=round(min(max(item.x, lo), hi), 1), y=round(min(max(item.y, lo), hi), 1),
        stroke=round(rng.uniform(0.14, 0.4), 3) if rng.random() < variety.outline else 0.0,
        texture=rng.choice(variety.textures) if rng.random() < variety.texture else "plain",
        shade=round(rng.uniform(-variety.shade, variety.shade), 3),
        background_shade=round(rng.uniform(-variety.shade, variety.shade), 3),
        jpeg=rng.randint(25, 90) if rng.random() < variety.jpeg else 0,
    )


def _mix(rgb: tuple[int, ...], amount: float) -> tuple[int, ...]:
    """Lighter (towards white) for amount > 0, darker for amount < 0."""
    target = 255 if amount > 0 else 0
    return tuple(int(round(c + (target - c) * abs(amount))) for c in rgb)


def _unit_shape(shape: str) -> list[tuple[float, float]]:
    """The plain drawing's proportions, unturned, radius 1 (a diamond: a square on its
    corner, which the stretch makes tall or wide)."""
    def ring(n: int, radius: float, start: float) -> list[tuple[float, float]]:
        return [(radius * math.cos(math.radians(start + 360.0 * i / n)),
                 radius * math.sin(math.radians(start + 360.0 * i / n))) for i in range(n)]

    if shape == "circle":
        return ring(48, 1.0, 0)
    if shape == "diamond":
        return ring(4, 0.95, 0)
    fixed = ShapeImage(shape, "black", "small", "white", 0.0, 0.0, 1.0, 0.0)
    return _polygon(fixed)


def _pattern(texture: str, w: int, h: int, rng: random.Random) -> np.ndarray:
    """A (h, w) pattern in -1..1 of one of this generator's texture families."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def grating() -> np.ndarray:
        t = rng.uniform(0, math.pi)
        period = rng.uniform(0.08, 0.3) * w
        return np.sin((xx * math.cos(t) + yy * math.sin(t)) * 2 * math.pi / period
                      + rng.uniform(0, 2 * math.pi))

    if texture == "grating":
        return grating()
    if texture == "plaid":
        return (grating() + grating()) / 2
    if texture == "dots":
        step = rng.uniform(0.1, 0.22) * w
        t = rng.uniform(0, math.pi / 2)
        u = (xx * math.cos(t) + yy * math.sin(t)) / step
        v = (-xx * math.sin(t) + yy * math.cos(t)) / step
        d = np.hypot(u - np.round(u), v - np.round(v))
        return np.where(d < rng.uniform(0.18, 0.35), 1.0, -0.2).astype(np.float32)
    if texture == "speckle":
        return np.random.default_rng(rng.randrange(2**32)).uniform(-1, 1, (h, w)).astype(
            np.float32)
    if texture == "glow":
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        d = np.hypot(xx - cx, yy - cy) / math.hypot(w, h)
        return (1 - 2 * d / d.max()).astype(np.float32)
    if texture == "scribble":
        img = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(3, 8)):
            draw.line([(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(3)], fill=255,
                      width=max(1, int(w * rng.uniform(0.01, 0.03))), joint="curve")
        return np.asarray(img, dtype=np.float32) / 127.5 - 1
    if texture == "mosaic":  # Voronoi cells, each lighter or darker
        k = rng.randint(6, 30)
        seeds = [(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(k)]
        d = np.stack([np.hypot(xx - sx, yy - sy) for sx, sy in seeds])
        levels = np.array([rng.choice((-1.0, 1.0)) * rng.uniform(0.4, 1) for _ in range(k)],
                          dtype=np.float32)
        return levels[d.argmin(axis=0)]
    if texture == "clutter":  # small hard-edged polygons scattered over the ground
        img = Image.new("L", (w, h), 128)
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(6, 24)):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), w * rng.uniform(0.04, 0.14)
            n, t0 = rng.randint(3, 7), rng.uniform(0, 2 * math.pi)
            draw.polygon([(cx + r * rng.uniform(0.5, 1) * math.cos(t0 + 2 * math.pi * i / n),
                           cy + r * rng.uniform(0.5, 1) * math.sin(t0 + 2 * math.pi * i / n))
                          for i in range(n)], fill=rng.choice((0, 255)))
        return np.asarray(img, dtype=np.float32) / 127.5 - 1
    if texture == "blotch":  # smooth noise cut at zero: hard-edged blobs
        coarse = np.random.default_rng(rng.randrange(2**32)).uniform(
            -1, 1, (rng.randint(3, 8),) * 2).astype(np.float32)
        field = np.asarray(Image.fromarray(coarse, "F").resize((w, h),
                                                               Image.Resampling.BICUBIC))
        return np.where(field > 0, 1.0, -1.0).astype(np.float32)
    if texture == "rings":  # concentric hard-edged rings around a point
        cx, cy = rng.uniform(-0.5, 1.5) * w, rng.uniform(-0.5, 1.5) * h
        period = rng.uniform(0.1, 0.3) * w
        return np.where(np.sin(np.hypot(xx - cx, yy - cy) * 2 * math.pi / period) > 0,
                        1.0, -1.0).astype(np.float32)
    raise ValueError(texture)


def render_varied(item: ShapeImage, rng: random.Random, side: int = IMAGE_SIDE) -> Image.Image:
    scale = 3
    n = side * scale
    bg = _mix(_jitter(COLORS[item.background], rng), item.background_shade)
    if item.texture == "plain":
        img = Image.new("RGB", (n, n), bg)
    else:
        # The pattern at the output size, enlarged to the drawing's (9x fewer pixels).
        field = _pattern(item.texture, side, side, rng)[..., None] * rng.uniform(0.12, 0.3)
        base = np.asarray(bg, dtype=np.float32)
        pixels = np.where(field > 0, base + field * (255 - base), base * (1 + field))
        img = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB").resize(
            (n, n), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    fill = _mix(_jitter(COLORS[item.color], rng), item.shade)
    sx, sy = math.sqrt(item.stretch), 1 / math.sqrt(item.stretch)
    cos, sin = math.cos(math.radians(item.angle)), math.sin(math.radians(item.angle))
    r, cx, cy = item.radius * scale, item.x * scale, item.y * scale
    pts = [(cx + r * (px * sx * cos - py * sy * sin), cy + r * (px * sx * sin + py * sy * cos))
           for px, py in _unit_shape(item.shape)]
    if item.stroke:
        draw.polygon(pts, outline=fill, width=max(2, int(round(item.stroke * r))))
    else:
        draw.polygon(pts, fill=fill)
    img = img.resize((side, side), Image.Resampling.BOX)
    if item.jpeg:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=item.jpeg)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


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
