"""Video (MP4, MOV, WebM, MKV, AVI) through PyAV, whose wheels carry FFmpeg: the optional
extra 'video'.

A video is searched by moment: `moments` samples frames at scene changes, no fewer than
ASSETDB_VIDEO_MIN_FPM and no more than ASSETDB_VIDEO_MAX_FPM frames a minute, and each
sampled frame is embedded with its timestamp (asset_frames). The asset's own vector is
the mean of its frames. Bounds, each noted on the row (asset_media.note):

- a video whose floor alone would pass ASSETDB_VIDEO_MAX_FRAMES (a 10-hour film) is not
  decoded through: that many frames are taken at even times by seeking;
- decoding stops after ASSETDB_VIDEO_DECODE_SECONDS; the frames so far are kept (none:
  the row fails), so a corrupt or pathological file never holds a worker for long.

The probe reads the container's headers only (duration, size, codec, frame rate,
creation time, rotation); a file with no video stream, or that FFmpeg cannot open,
fails its row with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from fractions import Fraction
from typing import Any

import numpy as np
from PIL import Image

from assetdb.config import read_setting
from assetdb.errors import ImageError
from assetdb.kinds.extras import need
from assetdb.kinds.registry import Frame, Moments, Probe, Source

MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
        ".webm": "video/webm", ".mkv": "video/x-matroska", ".avi": "video/x-msvideo"}
_FORMAT_MIME = {"matroska,webm": "video/webm", "avi": "video/x-msvideo"}
# A scene change: the mean absolute difference of two 16x16 colour thumbnails (0..1).
SCENE_THRESHOLD = 0.12
# Frames are compared for scene changes at most this often (seconds of video).
CHECK_EVERY = 0.25
_SIG = 16
# Seconds into the video the poster (thumbnail) is taken from, at most 10% of it.
POSTER_AT = 1.0


def _av() -> Any:  # noqa: ANN401 - the PyAV module
    av = need("av")
    # No Python log callback: with one, FFmpeg's decoder threads take the GIL to log,
    # while avcodec_free_context waits for those threads holding the GIL: the API served
    # a video thumbnail and hung for good (py-spy: logging_log_callback vs
    # avcodec_free_context; PyAV-Org/PyAV#751, #909). None is PyAV's own default; FFmpeg's
    # complaints go on the row (the exceptions), and its stderr logging stays at PANIC.
    av.logging.set_level(None)
    av.logging.set_libav_level(av.logging.PANIC)
    return av


def _open(source: Source) -> Any:  # noqa: ANN401 - an av container
    av = _av()
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        return av.open(source if hasattr(source, "read") else str(source), mode="r",
                       metadata_errors="ignore")
    except av.error.FileNotFoundError:
        raise ImageError(f"file not found: {source}") from None
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise ImageError(f"not a readable video: the data is truncated, corrupt or of an "
                         f"unsupported format ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _stream(container: Any) -> Any:  # noqa: ANN401
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        if "audio" in kinds:
            raise ImageError(f"no video stream in this file (streams: {', '.join(kinds)})")
        raise ImageError(f"no video stream: the file is truncated or corrupt, or not a "
                         f"video (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _duration(container: Any, stream: Any) -> float | None:  # noqa: ANN401
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _created(container: Any) -> datetime | None:  # noqa: ANN401
    raw = container.metadata.get("creation_time")
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Cameras with no clock write 1904-01-01 or 1970-01-01: no capture time at all.
    return when if when.year > 1971 else None


def _rotation(stream: Any) -> int:  # noqa: ANN401
    try:
        rotate = stream.metadata.get("rotate")
        return int(rotate) % 360 if rotate else 0
    except (TypeError, ValueError):
        return 0


def _mime(container: Any, codec: str) -> str:  # noqa: ANN401
    """The MIME type from the container itself (ingest reads through a descriptor, whose
    name is no file name): QuickTime by its brand, WebM by its codec."""
    name = container.format.name
    if name.startswith("matroska"):
        return "video/webm" if codec in ("vp8", "vp9", "av1") else "video/x-matroska"
    if name.startswith("mov"):
        brand = (container.metadata.get("major_brand") or "").strip()
        return "video/quicktime" if brand == "qt" else "video/mp4"
    return _FORMAT_MIME.get(name, "video/mp4")


def probe_container(container: Any, suffix: str) -> Probe:  # noqa: ANN401
    stream = _stream(container)
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise ImageError("the video stream has no frame size (corrupt header?)")
    rotation = _rotation(stream)
    if rotation in (90, 270):
        width, height = height, width
    rate = stream.average_rate or stream.guessed_rate
    duration = _duration(container, stream)
    facts: dict[str, Any] = {
        "duration_s": round(duration, 3) if duration is not None else None,
        "codec": ctx.name,
        "fps": round(float(rate), 3) if isinstance(rate, Fraction | int) and rate else None,
        "container": container.format.name,
        "audio": bool(container.streams.audio),
    }
    if rotation:
        facts["rotation"] = rotation
    mime = MIME.get(suffix) or _mime(container, ctx.name)
    return Probe("video", mime, width, height, _created(container), facts)


def _suffix(source: Source) -> str:
    name = str(getattr(source, "name", source))
    return name[name.rfind("."):].lower() if "." in name else ""


def _sized(img: Image.Image, min_size: int) -> Image.Image:
    """Shrink so that the short side is about `min_size` (never below): what the model
    reads, and all a stored frame needs."""
    if min_size > 0 and min(img.size) > 2 * min_size:
        scale = min_size / min(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    return img


def _signature(frame: Any) -> np.ndarray:  # noqa: ANN401 - an av.VideoFrame
    small = frame.reformat(width=_SIG, height=_SIG, format="rgb24").to_ndarray()
    return small.astype(np.float32) / 255.0


def _image(frame: Any, min_size: int, rotation: int) -> Image.Image:  # noqa: ANN401
    img = _sized(frame.to_image().convert("RGB"), min_size)
    if rotation:
        img = img.rotate(-rotation, expand=True)
    return img


class _Limits:
    def __init__(self) -> None:
        self.min_fpm = float(read_setting("ASSETDB_VIDEO_MIN_FPM"))
        self.max_fpm = max(self.min_fpm, float(read_setting("ASSETDB_VIDEO_MAX_FPM")))
        self.max_frames = int(read_setting("ASSETDB_VIDEO_MAX_FRAMES"))
        self.decode_s = float(read_setting("ASSETDB_VIDEO_DECODE_SECONDS"))

    @property
    def floor_gap(self) -> float:  # seconds between frames at the floor
        return 60.0 / self.min_fpm

    @property
    def ceiling_gap(self) -> float:  # seconds two sampled frames are apart at least
        return 60.0 / self.max_fpm


def _decoded(container: Any, stream: Any, deadline: float) -> Iterator[Any]:  # noqa: ANN401
    """The stream's frames; ImageError for data FFmpeg cannot decode. Stops (returns)
    when the deadline passes, which the caller sees by the clock."""
    av = _av()
    try:
        for frame in container.decode(stream):
            yield frame
            if time.monotonic() > deadline:
                return
    except (av.error.FFmpegError, ValueError) as exc:
        raise _Broken(_reason(exc)) from None


class _Broken(Exception):
    """Decoding stopped on bad data after some frames were read."""


def scene_frames(container: Any, stream: Any, limits: _Limits, min_size: int,  # noqa: ANN401
                 rotation: int = 0) -> tuple[list[Frame], str | None]:
    """Frames at scene changes, within the floor and ceiling, decoding the whole video."""
    started = time.monotonic()
    out: list[Frame] = []
    last_sig: np.ndarray | None = None
    last_check = -1e9
    last_taken = -1e9
    pending = False  # a scene changed while the ceiling held sampling back
    note = None
    t = 0.0
    try:
        for frame in _decoded(container, stream, started + limits.decode_s):
            t = float(frame.time) if frame.time is not None else t
            due = t - last_taken >= limits.floor_gap
            changed = False
            if t - last_check >= CHECK_EVERY or last_sig is None:
                sig = _signature(frame)
                changed = last_sig is None or float(np.abs(sig - last_sig).mean()) > (
                    SCENE_THRESHOLD)
                last_sig, last_check = sig, t
            pending = pending or changed
            if due or (pending and t - last_taken >= limits.ceiling_gap):
                out.append(Frame(_image(frame, min_size, rotation), round(t, 3)))
                last_taken, pending = t, False
                if len(out) >= limits.max_frames:
                    note = (f"frame cap reached: {len(out)} frames up to {t:.1f} s "
                            "(ASSETDB_VIDEO_MAX_FRAMES); later moments are not searchable")
                    break
            if time.monotonic() - started > limits.decode_s:
                note = (f"decoding stopped after {limits.decode_s:g} s "
                        f"(ASSETDB_VIDEO_DECODE_SECONDS) at {t:.1f} s of video; later "
                        "moments are not searchable")
                break
    except _Broken as exc:
        if not out:
            raise ImageError(f"video data is truncated or corrupt ({exc})") from None
        note = f"video data is corrupt after {t:.1f} s ({exc}); the frames before are kept"
    if not out:
        raise ImageError("the video has no decodable frame (truncated or corrupt)")
    return out, note


def even_frames(container: Any, stream: Any, duration: float, limits: _Limits,  # noqa: ANN401
                min_size: int, rotation: int = 0) -> tuple[list[Frame], str | None]:
    """max_frames frames at even times, by seeking: a long video is never decoded whole."""
    av = _av()
    started = time.monotonic()
    count = limits.max_frames
    gap = duration / count
    out: list[Frame] = []
    note = (f"long video ({duration / 3600:.1f} h): sampled at {count} even times, one "
            f"every {gap:.1f} s (ASSETDB_VIDEO_MAX_FRAMES); scene changes between them "
            "are not detected")
    base = stream.time_base or Fraction(1, 1_000_000)
    for i in range(count):
        want = i * gap
        if time.monotonic() - started > limits.decode_s:
            note += (f"; decoding stopped after {limits.decode_s:g} s "
                     f"(ASSETDB_VIDEO_DECODE_SECONDS) at {want:.1f} s")
            break
        try:
            container.seek(int(want / base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else want
                if t + gap / 2 >= want or t >= want:
                    if not out or t > (out[-1].seconds or -1):
                        out.append(Frame(_image(frame, min_size, rotation), round(t, 3)))
                    break
        except (av.error.FFmpegError, ValueError):
            continue  # a bad stretch: the next seek may land on good data
    if not out:
        raise ImageError("the video has no decodable frame (truncated or corrupt)")
    return out, note


class Video:
    names = ("video",)
    suffixes = frozenset(MIME)
    inline_types = frozenset({"video/mp4", "video/webm", "video/quicktime"})
    magic_bytes = 12

    def sniff(self, head: bytes) -> bool:
        return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
                or head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska / WebM (EBML)
                or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))

    def probe(self, source: Source) -> Probe:
        container = _open(source)
        with container:
            return probe_container(container, _suffix(source))

    def moments(self, source: Source, min_size: int) -> Moments:
        limits = _Limits()
        container = _open(source)
        with container:
            probe = probe_container(container, _suffix(source))
            stream = container.streams.video[0]
            duration = probe.facts.get("duration_s")
            rotation = int(probe.facts.get("rotation", 0))
            floor_count = (duration or 0) / limits.floor_gap
            if duration and floor_count > limits.max_frames:
                frames, note = even_frames(container, stream, duration, limits, min_size,
                                           rotation)
            else:
                frames, note = scene_frames(container, stream, limits, min_size, rotation)
        facts = {**probe.facts, "frames": len(frames)}
        return Moments(frames, note, facts)

    def _poster(self, source: Source, min_size: int) -> Image.Image:
        container = _open(source)
        with container:
            probe = probe_container(container, _suffix(source))
            stream = container.streams.video[0]
            duration = probe.facts.get("duration_s") or 0.0
            at = min(POSTER_AT, duration * 0.1)
            first = None
            try:
                for frame in _decoded(container, stream, time.monotonic() + 20):
                    first = frame
                    if frame.time is None or frame.time >= at:
                        break
            except _Broken as exc:
                if first is None:
                    raise ImageError(f"video data is truncated or corrupt ({exc})") from None
            if first is None:
                raise ImageError("the video has no decodable frame (truncated or corrupt)")
            return _image(first, min_size, int(probe.facts.get("rotation", 0)))

    def decode(self, source: Source, min_size: int) -> Image.Image:
        """The poster frame: what a single picture of the video is."""
        return self._poster(source, min_size)

    def thumbnail(self, source: Source, size: int) -> Image.Image:
        img = self._poster(source, size)
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        return img

    def frames(self, source: Source, min_size: int) -> Iterator[Frame]:
        yield from self.moments(source, min_size).frames


VIDEO = Video()
