"""Query images for the encoders (search by example, uploads, classification, training):
decoded exactly as a still-image asset is, by the still-image kinds' decoder
(assetdb.kinds.raster), which lives with the kinds so that embedding depends on kinds and
never the other way round."""

from assetdb.kinds.raster import (
    LARGE_PIXELS,
    REDUCED_MIN_SIDE,
    SUPPORTED_FORMATS,
    decode_errors,
    load_image,
    load_image_bytes,
    now_utc,
    probe,
    to_rgb,
)
from assetdb.kinds.registry import Probe

__all__ = ["LARGE_PIXELS", "REDUCED_MIN_SIDE", "SUPPORTED_FORMATS", "Probe", "decode_errors",
           "load_image", "load_image_bytes", "now_utc", "probe", "to_rgb"]
