"""The bad inputs of issue 17, made here: each must end as a failed or bounded row with a
clear error, the batch going on, nothing hanging."""

from __future__ import annotations

from pathlib import Path

from assetdb.demo import media


def _pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF from numbered objects (1..n), with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra
            + b">>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return bytes(out)


def many_page_pdf(path: Path, pages: int = 20_000) -> Path:
    """A valid PDF of `pages` empty pages (about 1 MB)."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>"] * pages
    path.write_bytes(_pdf(objects))
    return path


def encrypted_pdf(path: Path) -> Path:
    """A PDF under the standard security handler with a user password nobody knows."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>",
               b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 "
               b"/O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> >>"]
    path.write_bytes(_pdf(objects, b"/Encrypt 4 0 R /ID [<0123456789abcdef0123456789abcdef>"
                                   b" <0123456789abcdef0123456789abcdef>] "))
    return path


EXTERNAL_ENTITY_SVG = (b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY xxe SYSTEM '
                       b'"file:///etc/passwd">]>\n<svg xmlns="http://www.w3.org/2000/svg" '
                       b'width="10" height="10"><text>&xxe;</text></svg>')
BILLION_LAUGHS_SVG = (b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY a "lol">'
                      + b"".join(b'<!ENTITY %s "%s">' % (chr(98 + i).encode(),
                                                         (b"&" + chr(97 + i).encode() + b";")
                                                         * 10) for i in range(9))
                      + b']>\n<svg xmlns="http://www.w3.org/2000/svg"><text>&j;</text></svg>')


def truncated_mp4(path: Path, source: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_all(folder: Path) -> dict[str, Path]:
    """Every bad input of the issue, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    good = media.write_video(folder / "good.mp4", media.scene_plan(1, 2, 8.0), fps=4, side=32)
    return {
        "truncated": truncated_mp4(folder / "truncated.mp4", good),
        "no_video": media.write_audio_only(folder / "sound.mp4"),
        "ten_hours": media.write_sparse_video(folder / "ten-hours.mp4", 36_000.0),
        "empty": _empty(folder / "empty.mov"),
        "encrypted": encrypted_pdf(folder / "encrypted.pdf"),
        "many_pages": many_page_pdf(folder / "pages.pdf"),
        "xxe": _bytes(folder / "xxe.svg", EXTERNAL_ENTITY_SVG),
        "laughs": _bytes(folder / "laughs.svg", BILLION_LAUGHS_SVG),
        # A TIFF header with nothing a camera wrote: no preview, no sensor data.
        "raw": _bytes(folder / "no-preview.dng", b"II*\x00\x08\x00\x00\x00" + b"\x00" * 64),
        "good": good,
    }


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
