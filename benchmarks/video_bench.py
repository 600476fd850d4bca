"""Video: search by moment (quality, with the shipped demo model) and ingest cost (with a
full-size ViT-B/32 of random weights, which costs what the trained model costs).

Quality: VIDEOS generated videos of SCENES shapes each (distinct shape/colour pairs, cut
at random seconds), plus the 48 stills of every pair. For each scene caption:
  - moment: the video is in the top 5 of `--kind video` and its best moment lies in the
    scene (from one ceiling interval before its cut): the issue's bar, >= 0.9;
  - which asset-level vector ranks the right video first among the videos: the mean of
    the frames (what assets.embedding holds), a key frame (the frame nearest that mean),
    or the best frame (what search by moment does).
Cost: COST_VIDEOS videos of COST_SECONDS at 24 fps: seconds of video ingested per
second, frames decoded per second, decode vs model share (each timed alone), and the size
of asset_frames (table + HNSW index) per hour of video.

    PYTHONPATH=. python benchmarks/video_bench.py [--out benchmarks/results/video.json]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks._common import bench_database, build_vit_b32, init_database, machine, report


def quality(tmp: Path, videos: int, scenes: int, seconds: float) -> dict:
    from sqlalchemy import text

    from assetdb.config import Settings
    from assetdb.db.engine import connect
    from assetdb.demo import MODEL_DIR, media, shapes
    from assetdb.embedding.encoder import load_encoder
    from assetdb.ingest.ingest_files import ingest
    from assetdb.search.filters import Filters
    from assetdb.search.searches import search_text

    folder = tmp / "quality"
    folder.mkdir()
    plans = {}
    for i in range(videos):
        plan = media.scene_plan(100 + i, scenes, seconds, first=i * scenes)
        plans[str(media.write_video(folder / f"v{i:02d}.mp4", plan, fps=4, seed=i))] = plan
    list(shapes.generate(folder / "stills", 48, seed=3, balanced=True))
    with bench_database(tmp / "home", "videoq") as url:
        init_database(url, str(MODEL_DIR), 64)
        settings = Settings.from_env()
        encoder = load_encoder(str(MODEL_DIR))
        ingest(settings, [str(folder), str(folder / "stills")], encoder=encoder)
        with connect(settings) as conn:
            rows = conn.execute(text(
                "SELECT a.uri, a.embedding, array_agg(f.embedding ORDER BY f.position) fr "
                "FROM assets a JOIN asset_frames f ON f.asset_id = a.id GROUP BY a.uri, "
                "a.embedding")).all()
        uris = [r.uri for r in rows]
        mean = np.stack([np.asarray(r.embedding) for r in rows])
        frames = [np.stack([np.asarray(v) for v in r.fr]) for r in rows]
        key = np.stack([f[int(np.argmax(f @ m))] for f, m in zip(frames, mean, strict=True)])
        right = total = 0
        first = {"mean": 0, "key_frame": 0, "best_frame": 0}
        for uri, plan in plans.items():
            for scene in plan:
                total += 1
                q = encoder.encode_texts([scene.caption()])[0]
                hits = search_text(settings, encoder, scene.caption(), k=5,
                                   filters=Filters(kinds=["video"]))
                hit = next((h for h in hits if h.uri == uri), None)
                if hit and hit.moments:
                    t = hit.moments[0]["seconds"]
                    right += scene.start - 1.0 <= t < scene.end
                target = uris.index(uri)
                first["mean"] += int(np.argmax(mean @ q)) == target
                first["key_frame"] += int(np.argmax(key @ q)) == target
                best = [float((f @ q).max()) for f in frames]
                first["best_frame"] += int(np.argmax(best)) == target
    return {"queries": total, "moment_right": right, "moment_rate": round(right / total, 3),
            "video_first_by": {k: round(v / total, 3) for k, v in first.items()}}


def cost(tmp: Path, videos: int, seconds: float, side: int) -> dict:
    from sqlalchemy import text

    from assetdb.config import Settings
    from assetdb.db.engine import connect
    from assetdb.demo import media
    from assetdb.embedding.encoder import load_encoder
    from assetdb.ingest.ingest_files import ingest
    from assetdb.kinds.video import VIDEO

    folder = tmp / "cost"
    folder.mkdir()
    paths = []
    for i in range(videos):
        plan = media.scene_plan(200 + i, 6, seconds, min_len=4.0)
        paths.append(media.write_video(folder / f"c{i}.mp4", plan, fps=24, side=side, seed=i))
    model = str(build_vit_b32())
    encoder = load_encoder(model)
    decoded_frames = videos * int(seconds * 24)
    t0 = time.perf_counter()
    sampled = []
    for p in paths:
        with p.open("rb") as fh:
            sampled.extend(f.image for f in VIDEO.moments(fh, 224).frames)
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(sampled), 32):
        encoder.encode_images(sampled[i:i + 32])
    model_s = time.perf_counter() - t0
    with bench_database(tmp / "home", "videoc") as url:
        init_database(url, model, encoder.dimension)
        settings = Settings.from_env()
        t0 = time.perf_counter()
        result = ingest(settings, [str(folder)], encoder=encoder)
        ingest_s = time.perf_counter() - t0
        assert result.failed == 0, result.failures
        with connect(settings) as conn:
            size = conn.execute(text("SELECT pg_total_relation_size('asset_frames')")).scalar()
            frames = conn.execute(text("SELECT count(*) FROM asset_frames")).scalar()
    hours = videos * seconds / 3600
    return {
        "videos": videos, "seconds_each": seconds, "side": side, "fps": 24,
        "frames_decoded": decoded_frames, "frames_sampled": frames,
        "ingest_s": round(ingest_s, 2),
        "video_seconds_per_second": round(videos * seconds / ingest_s, 2),
        "frames_decoded_per_second": round(decoded_frames / decode_s, 1),
        "decode_s": round(decode_s, 2), "model_s": round(model_s, 2),
        "decode_share": round(decode_s / (decode_s + model_s), 3),
        "frames_per_video_minute": round(frames / (videos * seconds / 60), 2),
        "asset_frames_bytes": size,
        "asset_frames_mb_per_hour_of_video": round(size / 2**20 / hours, 2),
    }


def frame_table_size(tmp: Path, frames: int, dim: int = 512) -> dict:
    """asset_frames' size (table + HNSW index) per frame at scale: `frames` random unit
    vectors of `dim`, 100 per asset, inserted as ingest does (the index updated row by
    row), then MB per hour of video at the floor (6/min) and the ceiling (60/min)."""
    from sqlalchemy import text

    from assetdb.config import Settings
    from assetdb.db.engine import connect
    from assetdb.db.frames import replace_moments

    rng = np.random.default_rng(0)
    with bench_database(tmp / "home", "videos") as url:
        init_database(url, "random-512", dim)
        settings = Settings.from_env()
        per_asset = 100
        for start in range(0, frames, per_asset * 20):
            with connect(settings) as conn:
                ids = conn.execute(text(
                    "INSERT INTO assets (uri, kind, status) SELECT 'v' || g, 'video', 'ready' "
                    "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) g RETURNING id"),
                    {"a": start, "b": start + 19}).scalars().all()
                items = []
                for asset_id in ids:
                    vecs = rng.standard_normal((per_asset, dim)).astype(np.float32)
                    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                    items.append((asset_id, [(float(i), None, v) for i, v in enumerate(vecs)],
                                  None, {}))
                replace_moments(conn, "random-512", items)
        with connect(settings) as conn:
            total = conn.execute(text("SELECT pg_total_relation_size('asset_frames')")).scalar()
            count = conn.execute(text("SELECT count(*) FROM asset_frames")).scalar()
    per_frame = total / count
    return {"frames": count, "dim": dim, "bytes": total, "bytes_per_frame": round(per_frame),
            "mb_per_hour_at_floor_6_per_min": round(per_frame * 360 / 2**20, 2),
            "mb_per_hour_at_ceiling_60_per_min": round(per_frame * 3600 / 2**20, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=24.0)
    ap.add_argument("--cost-videos", type=int, default=3)
    ap.add_argument("--cost-seconds", type=float, default=60.0)
    ap.add_argument("--side", type=int, default=320)
    ap.add_argument("--size-frames", type=int, default=20_000,
                    help="frames of random vectors for the frame-table size at scale")
    ap.add_argument("--only-size", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    random.seed(0)
    info = machine()
    from assetdb.db import embedded

    tmp = embedded.scratch_home("assetdb-video-bench-")  # the server's user reaches it
    q: dict = {}
    c: dict = {}
    try:
        if not args.only_size:
            q = quality(tmp, args.videos, args.scenes, args.seconds)
            c = cost(tmp, args.cost_videos, args.cost_seconds, args.side)
        size = frame_table_size(tmp, args.size_frames)
    finally:
        embedded.stop(tmp / "home")
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"machine": info, "quality": q, "cost": c, "frame_table": size}
    tables = {"frame table at scale": [size]}
    if q:
        tables = {"quality": [{k: v for k, v in q.items() if k != "video_first_by"}],
                  "asset vector": [q["video_first_by"]], "cost": [c], **tables}
    report("video: search by moment and ingest cost", result, tables, args.out)


if __name__ == "__main__":
    main()
