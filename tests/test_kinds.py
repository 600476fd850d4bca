"""The built-in kinds behind the registry (issue 14, item 4): the same files, names and
inline types as before, and frames with their times."""

from __future__ import annotations

import io

from PIL import Image

from assetdb.kinds import registry
from assetdb.kinds.still import STILL
from assetdb.search.filters import KINDS


def test_builtin_kinds_keep_the_old_choices():
    assert registry.kind_names() == ("image", "animation") == tuple(KINDS)
    assert isinstance(STILL, registry.Kind)
    for name in ("a.JPG", "b.jpe", "c.tiff", "d.webp", "e.gif"):
        assert registry.kind_for_path(name) is STILL
    for name in ("page.html", "logo.svg", "notes.txt", "scan.pdf", "README"):
        assert registry.kind_for_path(name) is None
    assert registry.kind_for_name("animation") is STILL
    assert registry.kind_for_file("/x/old.html", None) is STILL  # its decoder explains
    assert registry.inline_types() == {"image/jpeg", "image/png", "image/gif", "image/webp",
                                       "image/bmp", "image/tiff", "image/mpo"}


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
