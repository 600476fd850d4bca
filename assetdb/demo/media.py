"""Generated media of the shapes domain (assetdb.demo.shapes): videos whose scenes show
known shapes at known seconds, encoded by PyAV (the extra 'video'), and the same scenes as
PDF pages and SVG drawings. Tests, the benchmark and the demo use them: every moment knows
what it shows, so a search for a scene's caption can be checked against its second."""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from assetdb.demo import shapes
from assetdb.kinds.extras import need


@dataclass(frozen=True)
class Scene:
    item: shapes.ShapeImage
    start: float  # seconds
    end: float

    def caption(self) -> str:
        return self.item.caption("a {color} {shape}")


def scene_plan(seed: int, count: int, seconds: float, side: int = shapes.IMAGE_SIDE,
               min_len: float = 3.0, first: int | None = None) -> list[Scene]:
    """`count` scenes of distinct (shape, colour) pairs that fill `seconds`, each at least
    `min_len` long, cut at random seconds. With `first`, the pairs are those from
    position `first` of one fixed shuffle (plans with first 0, 5, 10, ... never share a
    pair: 48 pairs in all)."""
    rng = random.Random(seed)
    combos = [(s, c) for s in shapes.SHAPES for c in shapes.COLORS]
    if first is None:
        rng.shuffle(combos)
    else:
        random.Random(0).shuffle(combos)
        combos = (combos * 2)[first % len(combos):][:count]
    spare = seconds - count * min_len
    if spare < 0:
        raise ValueError("scenes too short for the video")
    cuts = sorted(rng.uniform(0, spare) for _ in range(count - 1))
    starts = [0.0] + [round(c + (i + 1) * min_len, 2) for i, c in enumerate(cuts)]
    ends = [*starts[1:], seconds]
    return [Scene(shapes.sample(rng, side, shape=s, color=c), a, b)
            for (s, c), a, b in zip(combos, starts, ends, strict=False)]


def scene_picture(scene: Scene, rng: random.Random, side: int) -> Image.Image:
    """The scene's shape as drawn for the demo model (at its 64-pixel side), scaled."""
    img = shapes.render(scene.item, rng, shapes.IMAGE_SIDE)
    return img if side == shapes.IMAGE_SIDE else img.resize((side, side),
                                                            Image.Resampling.BICUBIC)


def write_video(path: Path, scenes: list[Scene], *, fps: int = 8, side: int = 128,
                codec: str = "mpeg4", seed: int = 0) -> Path:
    """Encode the scenes (each a still of its shape, with a little noise so frames differ)
    into `path` (the container from its suffix)."""
    av = need("av")
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    frames = {id(s): np.asarray(scene_picture(s, rng, side), dtype=np.int16) for s in scenes}
    total = int(round(scenes[-1].end * fps))
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(total):
            t = i / fps
            scene = next((s for s in scenes if s.start <= t < s.end), scenes[-1])
            noisy = frames[id(scene)] + np_rng.integers(-4, 5, (side, side, 3))
            frame = av.VideoFrame.from_ndarray(np.clip(noisy, 0, 255).astype(np.uint8),
                                               format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_sparse_video(path: Path, seconds: float, *, side: int = 32,
                       colours: tuple[str, ...] = ("red", "blue")) -> Path:
    """A long video in a few bytes: a frame every seconds/len(colours) (a 10-hour video
    is a few frames with far-apart timestamps)."""
    av = need("av")
    gap = seconds / len(colours)
    base = Fraction(1, 1000)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(len(colours), max(1, int(seconds))))
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = base
        stream.time_base = base
        for i, colour in enumerate([*colours, colours[-1]]):
            img = Image.new("RGB", (side, side), shapes.COLORS[colour])
            frame = av.VideoFrame.from_image(img)
            frame.pts = int(min(i * gap, seconds) * 1000)
            frame.time_base = base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 with a sound stream and no video stream."""
    av = need("av")
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("aac", rate=8000)
        stream.layout = "mono"
        samples = int(8000 * seconds)
        chunk = 1024
        for start in range(0, samples, chunk):
            data = np.zeros((1, chunk), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
            frame.sample_rate = 8000
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_pdf(path: Path, pictures: list[Image.Image]) -> Path:
    """A PDF with one picture a page (pypdfium2, the extra 'pdf')."""
    pdfium = need("pypdfium2")
    pdf = pdfium.PdfDocument.new()
    for img in pictures:
        page = pdf.new_page(img.width, img.height)
        obj = pdfium.PdfImage.new(pdf)
        obj.set_bitmap(pdfium.PdfBitmap.from_pil(img.convert("RGB")))
        obj.set_matrix(pdfium.PdfMatrix().scale(img.width, img.height))
        page.insert_obj(obj)
        page.gen_content()
    pdf.save(str(path))
    pdf.close()
    return path


def shape_svg(item: shapes.ShapeImage, side: int = shapes.IMAGE_SIDE) -> str:
    """The shape as SVG markup (a circle, or the renderer's polygon)."""
    fill = "rgb({},{},{})".format(*shapes.COLORS[item.color])
    back = "rgb({},{},{})".format(*shapes.COLORS[item.background])
    if item.shape == "circle":
        body = f'<circle cx="{item.x}" cy="{item.y}" r="{item.radius}" fill="{fill}"/>'
    else:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in shapes._polygon(item))  # noqa: SLF001
        body = f'<polygon points="{points}" fill="{fill}"/>'
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" '
            f'viewBox="0 0 {side} {side}"><rect width="{side}" height="{side}" '
            f'fill="{back}"/>{body}</svg>')
