"""The optional libraries of the kinds beyond Pillow's formats, each behind an extra.

A kind imports its library only when it decodes a file, through `need`: a missing
library fails that file's row with a message naming the extra to install, and every
other file of the batch goes on. Scanning (by suffix and first bytes) needs none of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from assetdb.errors import ImageError

# module -> (the extra that installs it, what it reads)
EXTRAS: dict[str, tuple[str, str]] = {
    "av": ("video", "video (MP4, MOV, WebM, MKV, AVI)"),
    "pillow_heif": ("heif", "HEIC/HEIF images"),
    "rawpy": ("raw", "camera RAW files"),
    "pypdfium2": ("pdf", "PDF documents"),
    "resvg_py": ("svg", "SVG images"),
    "defusedxml": ("svg", "SVG images"),
}


def missing_message(module: str) -> str:
    extra, what = EXTRAS[module]
    return (f"reading {what} needs the optional extra '{extra}': "
            f"pip install 'assetdb[{extra}]' (the module {module} is not installed)")


def need(module: str) -> ModuleType:
    """Import an optional library, or raise ImageError naming its extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImageError(missing_message(module)) from None
