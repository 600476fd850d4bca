"""The built-in kinds behind the registry (issue 14, item 4): the same files, names and
inline types as before, and frames with their times."""

from __future__ import annotations

import io

from PIL import Image

from assetdb.kinds import registry
from assetdb.kinds.still import STILL
from assetdb.search.filters import KINDS


def test_builtin_kinds_keep_the_old_choices():
    from assetdb.kinds.documents import PDF, SVG
    from assetdb.kinds.photos import HEIF, RAW
    from assetdb.kinds.video import VIDEO

    assert registry.kind_names() == ("image", "animation", "video", "document") == tuple(KINDS)
    for kind in (STILL, VIDEO, HEIF, RAW, PDF, SVG):
        assert isinstance(kind, registry.Kind)
    for name in ("a.JPG", "b.jpe", "c.tiff", "d.webp", "e.gif"):
        assert registry.kind_for_path(name) is STILL
    expected = {"clip.MP4": VIDEO, "b.mov": VIDEO, "c.webm": VIDEO, "d.mkv": VIDEO,
                "e.avi": VIDEO, "IMG_1.HEIC": HEIF, "f.avif": HEIF, "g.CR2": RAW,
                "h.dng": RAW, "i.nef": RAW, "j.arw": RAW, "k.cr3": RAW, "l.orf": RAW,
                "m.rw2": RAW, "scan.pdf": PDF, "logo.svg": SVG}
    for name, kind in expected.items():
        assert registry.kind_for_path(name) is kind, name
    for name in ("page.html", "notes.txt", "README"):
        assert registry.kind_for_path(name) is None
    assert registry.kind_for_name("animation") is STILL
    assert registry.kind_for_name("video") is VIDEO
    assert registry.kind_for_file("/x/old.html", None) is STILL  # its decoder explains
    # Raster images, and the video types a <video> element plays; never SVG, PDF, HEIC.
    assert registry.inline_types() == {"image/jpeg", "image/png", "image/gif", "image/webp",
                                       "image/bmp", "image/tiff", "image/mpo", "video/mp4",
                                       "video/webm", "video/quicktime"}


def test_still_image_is_one_frame_at_no_time():
    data = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(data, "PNG")
    data.seek(0)
    (frame,) = STILL.frames(data, 8)
    assert frame.seconds is None and frame.image.size == (40, 30)


def test_animation_frames_carry_their_times():
    colours = [Image.new("RGB", (8, 8), c) for c in ("red", "blue", "lime")]
    data = io.BytesIO()
    colours[0].save(data, "GIF", save_all=True, append_images=colours[1:], duration=[100, 250, 40])
    data.seek(0)
    assert STILL.probe(data).kind == "animation"
    data.seek(0)
    frames = list(STILL.frames(data, 8))
    assert [f.seconds for f in frames] == [0.0, 0.1, 0.35]
    assert [f.image.getpixel((0, 0)) for f in frames] == [(255, 0, 0), (0, 0, 255), (0, 255, 0)]
    data.seek(0)
    assert STILL.decode(data, 8).getpixel((0, 0)) == (255, 0, 0)  # embedded by frame one
