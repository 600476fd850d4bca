"""Generated images that carry printed words (posters, labels, slides), for the demo, the
OCR tests and the keyword-search benchmark: each knows the words it shows.

Fonts come from the system (Debian's fonts-dejavu-core and fonts-liberation live in
/usr/share/fonts/truetype), or from folders given; without any, Pillow's built-in font.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from assetdb.demo.shapes import SHAPES, ShapeImage
from assetdb.demo.shapes import render as render_shape

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
# Faces that render Latin letters plainly (not symbol or math fonts).
_PLAIN = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "Liberation")


def font_paths(extra_dirs: Iterable[Path] = ()) -> list[Path]:
    found: list[Path] = []
    for folder in (*extra_dirs, *FONT_DIRS):
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*.ttf")
                            if p.name.startswith(_PLAIN) and "Math" not in p.name)
    return list(dict.fromkeys(found))


def _font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size)


@dataclass
class WordImage:
    words: list[str]  # printed, in reading order
    shape: str | None = None  # a demo shape drawn beside the words (None: none)
    color: str | None = None
    font: str = ""
    dark: bool = False


def render(item: WordImage, rng: random.Random, *, font: Path | None, size: int = 40,
           side: tuple[int, int] = (480, 320), rotation: float = 0.0,
           noise: float = 0.0) -> Image.Image:
    """Words on a light or dark background (with a shape when the item has one), slightly
    rotated, with sensor-like noise when noise > 0."""
    bg = (rng.randint(15, 60),) * 3 if item.dark else (rng.randint(215, 250),) * 3
    ink = (rng.randint(225, 255),) * 3 if item.dark else (rng.randint(0, 45),) * 3
    img = Image.new("RGB", side, bg)
    draw = ImageDraw.Draw(img)
    if item.shape:  # the demo's own shape renderer, as its model was trained on
        sq = int(min(side) * 0.8)
        back = "black" if item.dark else "white"
        shape = ShapeImage(item.shape, item.color or "red", "large", back, sq / 2, sq / 2,
                           sq * 0.45, rng.uniform(0, 30))
        img.paste(render_shape(shape, rng, side=sq).resize((sq, sq)),
                  (side[0] - sq - 10, (side[1] - sq) // 2))
    face = _font(font, size)
    y = 20
    for word in item.words:
        draw.text((20, y), word, fill=ink, font=face)
        y += int(size * 1.4)
    if rotation:
        img = img.rotate(rotation, resample=Image.Resampling.BICUBIC, expand=False,
                         fillcolor=bg)
    if noise > 0:
        grain = Image.effect_noise(side, 64).convert("RGB")
        img = Image.blend(img, grain, noise).filter(ImageFilter.GaussianBlur(0.4))
    return img


def demo_items() -> list[tuple[str, WordImage, str]]:
    """A few posters for the demo: (file name, item, its title). Words only: a shape
    beside them would come up in the demo's shape searches."""
    return [
        ("poster-harbour.png", WordImage(["HARBOUR", "FESTIVAL"]), "Summer event poster"),
        ("label-qx4471.png", WordImage(["QX-4471", "LOT 88"]), "Shipping label"),
        ("slide-quarterly.png", WordImage(["Quarterly", "results"], dark=True), "Slide"),
    ]


def write_demo_posters(folder: Path, seed: int = 0) -> list[tuple[Path, WordImage, str]]:
    rng = random.Random(seed)
    fonts = font_paths()
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, item, title in demo_items():
        path = folder / name
        render(item, rng, font=fonts[0] if fonts else None).save(path)
        out.append((path, item, title))
    return out


__all__ = ["SHAPES", "WordImage", "demo_items", "font_paths", "render", "write_demo_posters"]
