"""Near-duplicates: precision and recall on real photographs, and timing at scale.

Quality (`--quality`): photographs from Debian's wallpaper packages (downloaded with
`apt-get download` and unpacked with `dpkg -x` into a cache folder, never into the repo),
each scaled to at most 2048 px and turned into 7 variants: resized to 50% and 25%, JPEG
quality 40, a PNG re-save, a 10% crop (the central 90% of each side), +10% brightness and
a small logo overlay. The other photos, several of the same subjects (mountain ranges by
one photographer, flowers, animals), are the negatives. Everything is ingested into a
throw-away catalogue with the shipped demo CLIP, then `duplicates` runs at its defaults;
every pair of assets it puts in one group is a predicted pair, every pair of variants of
one photo a true pair.

Timing (`--timing`): ROWS synthetic assets (random unit vectors, random hashes, with one
in ten a near copy of another: vector plus noise, hash with 3 bits flipped), COPY'd in,
then a full `duplicates` run (scan, pairs, groups) at each size.

    python -m benchmarks.duplicates --quality
    python -m benchmarks.duplicates --timing --sizes 10000,30000,100000
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import CACHE, machine, report

PACKAGES = ("mate-backgrounds", "ukui-wallpapers", "lomiri-wallpapers",
            "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04")
# Photographs, not drawings: the packages also ship abstract art, left out here.
PHOTO_DIRS = ("usr/share/backgrounds", "usr/share/backgrounds/mate/nature")
SKIP = {"lomiri-default-background.png", "warty-final-ubuntu.png", "fluent-color.png",
        "focal-ubuntukylin.png", "rollpaper.png", "city.png", "desert.png",
        "Painting-Colors_by__herobrine7gamer.jpg", "analogpattern_by_Peter_Nerlich.jpg"}
MAX_SIDE = 2048
VARIANTS = ("resize50", "resize25", "jpeg40", "png", "crop10", "bright10", "logo")


def fetch_photos(cache: Path) -> list[Path]:
    """The wallpaper photos, downloaded and unpacked once into `cache`."""
    root = cache / "x"
    if not root.exists():
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True,
                       capture_output=True)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    out = []
    for d in PHOTO_DIRS:
        for p in sorted((root / d).glob("*")):
            if p.is_file() and not p.is_symlink() and p.suffix.lower() in (".jpg", ".png") \
                    and p.name not in SKIP:
                out.append(p)
    return out


def _logo(img: Any) -> Any:  # noqa: ANN401 - PIL images
    from PIL import ImageDraw, ImageFont

    out = img.copy()
    w, h = out.size
    box = (int(w * 0.82), int(h * 0.88), int(w * 0.97), int(h * 0.96))
    draw = ImageDraw.Draw(out)
    draw.rounded_rectangle(box, radius=max(2, h // 100), fill=(250, 250, 250))
    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    size = max(8, (box[3] - box[1]) * 2 // 3)
    font = ImageFont.truetype(font_path, size) if Path(font_path).exists() else None
    draw.text((box[0] + size // 3, box[1] + size // 6), "LOGO", fill=(200, 30, 30), font=font)
    return out


def make_variants(photos: list[Path], out: Path) -> dict[str, list[Path]]:
    """{photo name: [original, variants...]} written under `out` (made once)."""
    from PIL import Image, ImageEnhance

    groups: dict[str, list[Path]] = {}
    out.mkdir(parents=True, exist_ok=True)
    for src in photos:
        stem = src.stem.replace(" ", "_")
        names = [out / f"{stem}__original.jpg"] + [
            out / f"{stem}__{v}.{'png' if v == 'png' else 'jpg'}" for v in VARIANTS]
        groups[stem] = names
        if all(p.exists() for p in names):
            continue
        with Image.open(src) as im:
            img = im.convert("RGB")
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        w, h = img.size
        img.save(names[0], quality=92)
        made = {
            "resize50": img.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
            "resize25": img.resize((w // 4, h // 4), Image.Resampling.LANCZOS),
            "jpeg40": img, "png": img,
            "crop10": img.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
            "bright10": ImageEnhance.Brightness(img).enhance(1.1),
            "logo": _logo(img),
        }
        for v, path in zip(VARIANTS, names[1:], strict=True):
            if v == "png":
                made[v].save(path, compress_level=1)
            else:
                made[v].save(path, quality=40 if v == "jpeg40" else 90)
    return groups


def _pairs_of(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(a, b) for g in groups for a, b in itertools.combinations(sorted(g), 2)}


def _score(predicted: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, Any]:
    tp = len(predicted & truth)
    return {"predicted_pairs": len(predicted), "true_pairs": len(truth), "true_positives": tp,
            "precision": round(tp / len(predicted), 4) if predicted else 1.0,
            "recall": round(tp / len(truth), 4) if truth else 1.0}


def quality(args: argparse.Namespace) -> dict[str, Any]:
    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings
    from assetdb.db import embedded
    from assetdb.db.engine import connect
    from assetdb.duplicates import store
    from assetdb.duplicates.finder import _scope_select, find_duplicates
    from assetdb.duplicates.hashing import ImageHashes, distance
    from assetdb.embedding.encoder import load_encoder
    from assetdb.search.filters import Filters
    from assetdb.shipped import DEMO_MODEL_DIR

    photos = fetch_photos(args.cache)
    groups = make_variants(photos, args.cache / "variants")
    home = embedded.scratch_home("assetdb-bench-dup-")
    try:
        url = embedded.start(home)
        settings = replace(Settings.from_env(), database_url=url, home=home,
                           model=str(DEMO_MODEL_DIR))
        encoder = load_encoder(str(DEMO_MODEL_DIR), device="cpu")
        catalogue = Catalog(settings)
        catalogue.init(lambda: encoder)
        folder = args.cache / "variants"
        t = time.perf_counter()
        ingested = catalogue.ingest([str(folder)], encoder=encoder)
        ingest_s = time.perf_counter() - t
        with connect(settings) as conn:
            from sqlalchemy import text

            rows = conn.execute(text("SELECT a.id, a.uri, h.phash, h.dhash FROM assets a "
                                     "JOIN asset_hashes h ON h.asset_id = a.id")).all()
        id_of = {Path(r.uri).name: r.id for r in rows}
        phash = {r.id: ImageHashes(r.phash, r.dhash) for r in rows}
        truth_groups = [[id_of[p.name] for p in paths] for paths in groups.values()]
        truth = _pairs_of(truth_groups)
        group_of = {i: n for n, g in enumerate(truth_groups) for i in g}

        # Distances: each variant to its original; the closest negative of each photo.
        per_variant = {}
        for v_index, v in enumerate(VARIANTS, start=1):
            ds = [distance(phash[g[0]], phash[g[v_index]]) for g in truth_groups]
            per_variant[v] = {"max_bits": max(ds), "mean_bits": round(float(np.mean(ds)), 1)}
        negatives = sorted(distance(phash[a], phash[b])
                           for a, b in itertools.combinations(sorted(phash), 2)
                           if group_of[a] != group_of[b])

        runs = {}
        t = time.perf_counter()
        found = find_duplicates(settings, save=False)
        runs["default"] = {**_score(_pairs_of([[m.id for m in g.members]
                                               for g in found.groups]), truth),
                           "seconds": round(time.perf_counter() - t, 2),
                           "threshold": found.threshold, "max_bits": found.max_distance}
        for thr in (0.75, 0.78, 0.82, 0.85):
            r = find_duplicates(settings, threshold=thr, save=False)
            runs[f"hash {thr}"] = {**_score(_pairs_of([[m.id for m in g.members]
                                                       for g in r.groups]), truth),
                                   "max_bits": r.max_distance}
        # Each candidate path alone: the vector neighbours (demo CLIP), the hash bands.
        with connect(settings) as conn:
            store.make_scope(conn, _scope_select(Filters(), catalogue.meta()["model"]))
            bits = found.max_distance or 0
            vec = {(a, b) for a, b, _ in store.hash_pairs(conn, bits, bands=False)}
            both = {(a, b) for a, b, _ in store.hash_pairs(conn, bits, bands=True)}
            neighbours = {(r.low, r.high) for r in conn.execute(
                text("SELECT low, high FROM duplicate_neighbours"))}
        direct_truth = {(a, b) for a, b in truth}
        runs["candidates: vector neighbours (k=16), all"] = _score(neighbours, direct_truth)
        runs["confirmed pairs: neighbours only"] = _score(vec, direct_truth)
        runs["confirmed pairs: neighbours + bands"] = _score(both, direct_truth)
        for thr in (0.9, 0.95):
            r = find_duplicates(settings, semantic=True, threshold=thr, save=False)
            runs[f"semantic {thr} (demo CLIP)"] = _score(
                _pairs_of([[m.id for m in g.members] for g in r.groups]), truth)
        tells = len(ingested.near_duplicates)
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)
    return {"photos": len(photos), "assets": len(phash), "ingest_seconds": round(ingest_s, 1),
            "ingest_near_duplicates_reported": tells,
            "expected_reported": len(phash) - len(photos),
            "variant_distance_to_original": per_variant,
            "negative_distance_min": negatives[0],
            "negative_distance_p1": negatives[len(negatives) // 100],
            "negatives_within_threshold": sum(d <= (found.max_distance or 0)
                                              for d in negatives),
            "negative_pairs": len(negatives),
            "runs": runs}


def timing(args: argparse.Namespace) -> list[dict[str, Any]]:
    import psycopg

    from assetdb.config import Settings
    from assetdb.db import embedded, schema
    from assetdb.db.engine import connect
    from assetdb.db.indexes import EMBEDDING_INDEX, build_vector_index
    from assetdb.duplicates.finder import find_duplicates
    from assetdb.sqlsurface.vectors import vector_text

    out = []
    for rows in args.sizes:
        home = embedded.scratch_home("assetdb-bench-dup-")
        try:
            url = embedded.start(home)
            settings = replace(Settings.from_env(), database_url=url, home=home)
            with connect(settings) as conn:
                schema.upgrade(conn, "bench-model", args.dim)
            rng = np.random.default_rng(0)
            vectors = rng.standard_normal((rows, args.dim)).astype(np.float32)
            hashes = rng.integers(-(2**63), 2**63 - 1, size=rows, dtype=np.int64)
            # Copies of even-numbered originals only, so no copy's source is a copy too.
            copies = rng.choice(np.arange(1, rows, 2), size=rows // 10, replace=False)
            for i in copies:  # a near copy of the previous asset
                j = i - 1
                vectors[i] = vectors[j] + 0.05 * rng.standard_normal(args.dim)
                flip = 0
                for b in rng.choice(64, size=3, replace=False):
                    flip |= 1 << int(b)
                u = (int(hashes[j]) % 2**64) ^ flip  # as unsigned, then signed again
                hashes[i] = u - 2**64 if u >= 2**63 else u
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with psycopg.connect(url) as conn, conn.cursor() as cur:
                cur.execute(f"DROP INDEX {EMBEDDING_INDEX}")
                with cur.copy("COPY assets (uri, sha256, width, height, embedding, "
                              "embedding_model, embedded_at, status) FROM STDIN") as copy:
                    for i, v in enumerate(vectors):
                        copy.write_row((f"mem://{i}", f"{i:064x}", 100, 100, vector_text(v),
                                        "bench-model", "2026-01-01", "ready"))
                t = time.perf_counter()
                # The product's index (halfvec expression, sized build): the scan's
                # ORDER BY spells that expression, so any other index goes unused.
                build_vector_index(conn, args.dim, rows=rows)
                index_s = time.perf_counter() - t
                with cur.copy("COPY asset_hashes (asset_id, sha256, phash, dhash) "
                              "FROM STDIN") as copy:
                    for i, h in enumerate(hashes):
                        copy.write_row((i + 1, f"{i:064x}", int(h), int(h)))
                cur.execute("ANALYZE")
            t = time.perf_counter()
            report_ = find_duplicates(settings, save=True)
            first = time.perf_counter() - t
            t = time.perf_counter()
            again = find_duplicates(settings, save=True)
            second = time.perf_counter() - t
            out.append({"assets": rows, "hnsw_build_s": round(index_s, 1),
                        "duplicates_first_run_s": round(first, 1),
                        "per_1000_assets_s": round(first / rows * 1000, 2),
                        "rerun_kept_scan_s": round(second, 1), "groups": len(report_.groups),
                        "planted_copies": len(copies), "duplicates_found": again.duplicates})
        finally:
            embedded.stop(home)
            shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10_000, 30_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "ASSETDB_BENCH_PHOTOS", CACHE / "wallpapers")))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not (args.quality or args.timing):
        parser.error("choose --quality and/or --timing")
    random.seed(0)
    result: dict[str, Any] = {"machine": machine()}
    tables: dict[str, list[dict[str, Any]]] = {}
    if args.quality:
        q = quality(args)
        result["quality"] = q
        tables["quality"] = [{"run": k, **v} for k, v in q["runs"].items()]
        tables["variants (pHash bits to the original)"] = [
            {"variant": k, **v} for k, v in q["variant_distance_to_original"].items()]
    if args.timing:
        result["timing"] = timing(args)
        tables["timing"] = result["timing"]
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report("near-duplicates", result, tables, args.out)


if __name__ == "__main__":
    main()
