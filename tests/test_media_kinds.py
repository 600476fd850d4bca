"""HEIC, AVIF, PDF and SVG as assets (issue 17, items 2 and 3): made here by the same
libraries, ingested with the tiny model, probed (size, page count, EXIF capture time and
orientation), thumbnailed, and a PDF's pages stored as moments."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from assetdb.db.engine import connect
from assetdb.demo import media, shapes
from tests.conftest import run_cli

pytest.importorskip("pillow_heif")
pytest.importorskip("pypdfium2")
pytest.importorskip("resvg_py")


def _picture(seed: int) -> Image.Image:
    rng = random.Random(seed)
    return shapes.render(shapes.sample(rng), rng, 96)


def _exif(when: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = when
    return exif.tobytes()


def write_media(folder: Path) -> dict[str, Path]:
    import pillow_heif

    folder.mkdir(parents=True, exist_ok=True)
    wide = Image.new("RGB", (120, 80), (200, 40, 40))
    heif = pillow_heif.from_pillow(wide)
    heic = folder / "phone.heic"
    heif.save(str(heic), quality=80, exif=_exif("2024:05:06 07:08:09", 6))
    avif = folder / "web.avif"
    wide.save(avif, "AVIF", exif=_exif("2023:01:02 03:04:05", 1))
    pdf = media.write_pdf(folder / "brochure.pdf", [_picture(i) for i in range(3)])
    svg = folder / "logo.svg"
    item = shapes.sample(random.Random(4))
    svg.write_text(media.shape_svg(item).replace(
        "</svg>", '<image href="http://example.com/x.png" width="9" height="9"/>'
                  '<script>alert(1)</script></svg>'))
    return {"heic": heic, "avif": avif, "pdf": pdf, "svg": svg}


def test_heic_avif_pdf_svg_are_ingested_probed_and_thumbnailed(initialised, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("ASSETDB_PDF_PAGES", "2")
    files = write_media(tmp_path / "m")
    result = run_cli("ingest", str(tmp_path / "m"), "--json")
    report = json.loads(result.stdout)
    assert report["ingested"] == 4 and report["failed"] == 0, report
    with connect(initialised) as conn:
        rows = {r.uri: r for r in conn.execute(text(
            "SELECT a.id, a.uri, a.kind, a.mime, a.width, a.height, a.captured_at, "
            "m.facts, m.note, m.frames FROM assets a "
            "LEFT JOIN asset_media m ON m.asset_id = a.id")).all()}
        pages = conn.execute(text("SELECT page FROM asset_frames ORDER BY position")).scalars()
        assert list(pages) == [1, 2]
    heic, avif = rows[str(files["heic"])], rows[str(files["avif"])]
    assert (heic.kind, heic.mime, heic.width, heic.height) == ("image", "image/heic", 80, 120)
    assert heic.captured_at.year == 2024  # EXIF capture time; orientation 6: turned
    assert (avif.mime, avif.width, avif.height) == ("image/avif", 120, 80)
    assert avif.captured_at.year == 2023
    pdf = rows[str(files["pdf"])]
    assert (pdf.kind, pdf.mime) == ("document", "application/pdf")
    assert pdf.facts["pages"] == 3 and pdf.frames == 2 and "2 of 3 pages" in pdf.note
    svg = rows[str(files["svg"])]
    assert (svg.kind, svg.mime, svg.width) == ("image", "image/svg+xml", 64)
    for row in rows.values():
        from assetdb.catalog.thumbnails import thumbnail

        path, _ = thumbnail(initialised, row.id, 256)
        with Image.open(path) as img:
            assert img.format == "JPEG" and max(img.size) <= 256
    found = run_cli("search", "a photo of a red circle", "--kind", "document", "--json")
    assert found.exit_code == 0
    hits = json.loads(found.stdout)
    assert hits[0]["uri"] == str(files["pdf"]) and hits[0]["moments"][0]["page"] in (1, 2)


def test_svg_is_rendered_without_script_or_outside_references():
    from assetdb.kinds.documents import safe_svg

    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
           b' onload="x()"><script>x()</script><image xlink:href="file:///etc/passwd"/>'
           b'<use href="#a"/><rect style="fill:url(http://evil/x)" width="2" height="2"/>'
           b"<foreignObject><p>hi</p></foreignObject></svg>")
    clean, removed = safe_svg(svg)
    assert removed == 5
    for bad in (b"script", b"onload", b"passwd", b"evil", b"foreignObject"):
        assert bad not in clean
    assert b'href="#a"' in clean  # a reference inside the file stays


def test_pdf_thumbnail_is_the_first_page(tmp_path):
    from assetdb.kinds.documents import PDF

    red, blue = Image.new("RGB", (50, 50), "red"), Image.new("RGB", (50, 50), "blue")
    pdf = media.write_pdf(tmp_path / "two.pdf", [red, blue])
    img = PDF.thumbnail(io.BytesIO(pdf.read_bytes()), 64)
    r, g, b = img.getpixel((img.width // 2, img.height // 2))
    assert r > 200 and b < 60


def test_video_decoding_installs_no_python_log_callback(tmp_path):
    """Regression: with PyAV's Python log callback installed (set_level(PANIC)), FFmpeg's
    decoder threads take the GIL to log while avcodec_free_context waits for them holding
    the GIL; the API hung for good serving a video thumbnail (seen in a CI run: py-spy
    showed logging_log_callback against avcodec_free_context). Decoding must leave
    PyAV's logging off (None, its own default)."""
    av = pytest.importorskip("av")
    from assetdb.kinds.video import VIDEO

    av.logging.set_level(av.logging.PANIC)  # as the old code left it
    path = media.write_video(tmp_path / "clip.mp4", media.scene_plan(3, 2, 6.0), fps=4,
                             side=64)
    thumb = VIDEO.thumbnail(str(path), 64)
    assert thumb.size[0] <= 64 and thumb.size[1] <= 64
    assert av.logging.get_level() is None
