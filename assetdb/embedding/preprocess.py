"""Resize decoded images to the model's input scale before they reach the encoder.

The CLIP image processor resizes every image so that its shortest edge equals the model's
input size (bicubic), then centre-crops. Doing that same resize in the decode threads moves
the work off the inference thread, and the processor's own resize becomes a no-op (Pillow
copies an image resized to its own size). The arithmetic below mirrors transformers'
`get_resize_output_image_size(..., default_to_square=False)`, so the pixels, and therefore
the vectors, are those of the plain path (tests/test_fast_paths.py checks this).
"""

from __future__ import annotations

from PIL import Image


def shortest_edge_size(width: int, height: int, edge: int) -> tuple[int, int]:
    """(width, height) with the shortest side equal to `edge`, as transformers computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(edge * long / short)
    return (edge, new_long) if width <= height else (new_long, edge)


def fit_shortest_edge(
    img: Image.Image, edge: int | None, resample: int = Image.Resampling.BICUBIC
) -> Image.Image:
    """Downscale so the shortest side is `edge`; smaller images are left to the processor."""
    if not edge or min(img.size) <= edge:
        return img
    resized = img.resize(shortest_edge_size(*img.size, edge), resample)
    img.close()
    return resized
