"""Documents: PDF (pypdfium2, the extra 'pdf') and SVG (resvg through resvg-py, parsed
first with defusedxml; the extra 'svg').

A PDF is embedded by its first ASSETDB_PDF_PAGES pages, each a moment (page number, no
time) in asset_frames, the first page is its thumbnail; the probe records the page count
and never renders, so a 20,000-page PDF costs what its first pages cost. An encrypted PDF
fails its row (no password is ever tried).

An SVG is rasterised safely: the XML is parsed by defusedxml with DTDs forbidden (no
entity, so no billion laughs and no external entity), then <script>, <foreignObject> and
every reference that is not inside the file (href to a file or URL, url() to one) are
removed before resvg renders it at a bounded size. resvg has no network and no script
engine of its own; the filtered copy is what it reads. The original is never served
inline (docs/security.md).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from assetdb.config import read_setting
from assetdb.errors import ImageError
from assetdb.kinds.extras import need
from assetdb.kinds.registry import DecodedKind, Frame, Moments, Probe, Source

# Rendered pages and SVGs are no larger than this on their longest side.
MAX_RENDER_SIDE = 2048
SVG_MAX_BYTES = 10 * 1024 * 1024


def _bytes(source: Source) -> bytes:
    if hasattr(source, "read"):
        source.seek(0)
        return source.read()
    with open(source, "rb") as fh:
        return fh.read()


# -- PDF ------------------------------------------------------------------------------------

def _pdf(source: Source) -> Any:  # noqa: ANN401 - a pypdfium2.PdfDocument
    pdfium = need("pypdfium2")
    data = _bytes(source)
    if not data:
        raise ImageError("empty file")
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ImageError("encrypted PDF: it needs a password, which assetdb never "
                             "tries; store an unencrypted copy") from None
        raise ImageError(f"not a readable PDF: truncated or corrupt ({exc})") from None


def _pdf_date(raw: str | None) -> datetime | None:
    match = re.match(r"^D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?", raw or "")
    if not match:
        return None
    parts = [int(p) if p else d for p, d in zip(match.groups(), (0, 1, 1, 0, 0, 0),
                                                   strict=True)]
    try:
        return datetime(*parts, tzinfo=UTC)
    except ValueError:
        return None


def _render(page: Any, min_size: int) -> Image.Image:  # noqa: ANN401 - a PdfPage
    width, height = page.get_size()  # points
    if width <= 0 or height <= 0:
        raise ImageError("a PDF page has no size")
    target = max(min_size, 256)
    scale = min(target / min(width, height), MAX_RENDER_SIDE / max(width, height))
    return page.render(scale=max(scale, 0.01)).to_pil().convert("RGB")


class PdfDocuments(DecodedKind):
    names = ("document",)
    suffixes = frozenset({".pdf"})
    inline_types: frozenset[str] = frozenset()  # PDF viewers run script: downloads only
    magic_bytes = 1024

    def sniff(self, head: bytes) -> bool:
        return b"%PDF-" in head[:1024]  # the header may follow some junk bytes

    def probe(self, source: Source) -> Probe:
        pdf = _pdf(source)
        try:
            pages = len(pdf)
            if pages < 1:
                raise ImageError("the PDF has no page")
            width, height = pdf[0].get_size()
            meta = pdf.get_metadata_dict()
        finally:
            pdf.close()
        facts = {"pages": pages, "title": meta.get("Title") or None}
        return Probe("document", "application/pdf", round(width), round(height),
                     _pdf_date(meta.get("CreationDate")), facts)

    def moments(self, source: Source, min_size: int) -> Moments:
        wanted = int(read_setting("ASSETDB_PDF_PAGES"))
        pdf = _pdf(source)
        try:
            pages = len(pdf)
            if pages < 1:
                raise ImageError("the PDF has no page")
            frames = [Frame(_render(pdf[i], min_size), None, i + 1)
                      for i in range(min(wanted, pages))]
        finally:
            pdf.close()
        note = (f"{len(frames)} of {pages} pages embedded (ASSETDB_PDF_PAGES)"
                if pages > len(frames) > 1 else None)
        return Moments(frames, note, {"pages": pages, "pages_embedded": len(frames)})

    def decode(self, source: Source, min_size: int) -> Image.Image:
        pdf = _pdf(source)
        try:
            if len(pdf) < 1:
                raise ImageError("the PDF has no page")
            return _render(pdf[0], min_size)
        finally:
            pdf.close()


# -- SVG ------------------------------------------------------------------------------------

_SVG_NS = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_DROPPED = {"script", "foreignObject", "iframe", "embed", "object", "audio", "video"}
_EXTERNAL_URL = re.compile(r"url\(\s*['\"]?\s*(?!#)[^)]*\)", re.IGNORECASE)


def _local(tag: Any) -> str:  # noqa: ANN401
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _inside(ref: str) -> bool:
    ref = ref.strip()
    return ref.startswith("#") or ref.lower().startswith(("data:image/png", "data:image/jpeg",
                                                           "data:image/gif", "data:image/webp"))


def safe_svg(data: bytes) -> tuple[bytes, int]:
    """The SVG with script and outside references removed, and how many were removed.
    ImageError for a DTD (entities), malformed XML or a root that is not <svg>."""
    defused = need("defusedxml")
    from defusedxml import ElementTree as SafeET  # noqa: N814 - the usual name

    if len(data) > SVG_MAX_BYTES:
        raise ImageError(f"SVG too large: {len(data)} bytes (at most {SVG_MAX_BYTES})")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except defused.DefusedXmlException as exc:
        raise ImageError(f"unsafe SVG refused: {type(exc).__name__} (a DTD or entity: "
                         "entity expansion and external entities are never read)") from None
    except SafeET.ParseError as exc:
        raise ImageError(f"not a well-formed SVG ({exc})") from None
    if _local(root.tag) != "svg":
        raise ImageError(f"not an SVG: the root element is <{_local(root.tag)}>")
    removed = 0
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) in _DROPPED:
                parent.remove(child)
                removed += 1
    for el in root.iter():
        for attr in list(el.attrib):
            value = el.attrib[attr]
            name = _local(attr)
            if attr == _XLINK_HREF or name == "href":
                if not _inside(value):
                    del el.attrib[attr]
                    removed += 1
            elif name.startswith("on"):  # event handlers
                del el.attrib[attr]
                removed += 1
            elif _EXTERNAL_URL.search(value):
                el.attrib[attr] = _EXTERNAL_URL.sub("none", value)
                removed += 1
        if _local(el.tag) == "style" and el.text and (
                _EXTERNAL_URL.search(el.text) or "@import" in el.text):
            el.text = _EXTERNAL_URL.sub("none", el.text).replace("@import", "")
            removed += 1
    import xml.etree.ElementTree as ET  # serialising only: parsing went through defusedxml

    return ET.tostring(root, encoding="utf-8"), removed


def _svg_size(root_bytes: bytes) -> tuple[float, float]:
    head = root_bytes[:4096].decode("utf-8", "replace")
    box = re.search(r'viewBox\s*=\s*["\']\s*[-\d.]+[\s,]+[-\d.]+[\s,]+([\d.]+)[\s,]+([\d.]+)',
                    head)
    if box:
        return float(box.group(1)) or 1.0, float(box.group(2)) or 1.0
    w = re.search(r'\swidth\s*=\s*["\']\s*([\d.]+)', head)
    h = re.search(r'\sheight\s*=\s*["\']\s*([\d.]+)', head)
    return (float(w.group(1)) if w else 100.0) or 1.0, (float(h.group(1)) if h else 100.0) or 1.0


def render_svg(data: bytes, side: int) -> Image.Image:
    """The safe copy rendered with its longest side `side` (at most MAX_RENDER_SIDE),
    composited on white."""
    resvg = need("resvg_py")
    clean, _ = safe_svg(data)
    width, height = _svg_size(clean)
    side = min(max(side, 64), MAX_RENDER_SIDE)
    scale = side / max(width, height)
    try:
        png = resvg.svg_to_bytes(svg_string=clean.decode("utf-8"),
                                 width=max(1, round(width * scale)),
                                 height=max(1, round(height * scale)))
    except BaseException as exc:  # noqa: BLE001 - a Rust panic surfaces as PanicException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ImageError(f"the SVG could not be rendered ({exc})") from None
    img = Image.open(io.BytesIO(bytes(png)))
    img.load()
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


class SvgImages(DecodedKind):
    names = ("image",)
    suffixes = frozenset({".svg"})
    inline_types: frozenset[str] = frozenset()  # SVG carries script: never inline
    magic_bytes = 512

    def sniff(self, head: bytes) -> bool:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        return text.startswith(b"<?xml") or text.startswith(b"<svg") or b"<svg" in text

    def probe(self, source: Source) -> Probe:
        data = _bytes(source)
        if not data:
            raise ImageError("empty file")
        clean, removed = safe_svg(data)
        width, height = _svg_size(clean)
        facts = {"removed_unsafe": removed} if removed else {}
        return Probe("image", "image/svg+xml", round(width), round(height), None, facts)

    def decode(self, source: Source, min_size: int) -> Image.Image:
        return render_svg(_bytes(source), max(min_size * 2, 448))

    def thumbnail(self, source: Source, size: int) -> Image.Image:
        return render_svg(_bytes(source), size)


PDF = PdfDocuments()
SVG = SvgImages()
