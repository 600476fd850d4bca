"""Keyword, hybrid and semantic search, and OCR, measured (docs/search.md).

    python -m benchmarks.keyword_search --images 72 --rows 100000 \
        --out docs/results/keyword_search.json

Part 1, quality, on a generated set ingested with the shipped demo model and OCR on:
images with printed words and codes (several Debian fonts, sizes, slight rotations,
light and dark backgrounds, noise, JPEG), some with a demo shape beside the words, some
shapes alone. Reports OCR word recall and precision; hit@1 of unique-word queries in
each mode; hit@1 and MRR per query type on a mixed set (visual-only, word-only, both);
OCR images/s and its share of ingest time.

Part 2, cost: keyword and hybrid latency (p50/p95) at --rows synthetic rows, as SQL time
(the migration's functions, server side) and through the Python service. With
`--keep DIR` the loaded database stays in DIR (its server is stopped at the end) and the
next run with the same --rows and --seed reuses it, after running the migrations it
lacks:

    python -m benchmarks.keyword_search --part latency --rows 100000 --keep /tmp/kwbench

Fonts: those installed (fonts-dejavu-core, fonts-liberation in /usr/share/fonts); with
--fetch-fonts, Debian's fonts-dejavu-extra and fonts-freefont-ttf are fetched with
`apt-get download` and unpacked into benchmarks/.cache (never into the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import CACHE, Timer, bench_database, machine, percentile, report

SHARED = ("SALE", "OPEN", "FRESH", "SUMMER")  # printed on several "both" images each
SYLLABLES = [c + v for c in "BDFGKLMNPRSTVZ" for v in "AEIOU"]


def fetch_fonts() -> list[Path]:
    """Extra Debian font packages, unpacked under benchmarks/.cache/fonts."""
    target = CACHE / "fonts"
    if not any(target.rglob("*.ttf")):
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for pkg in ("fonts-dejavu-extra", "fonts-freefont-ttf"):
                done = subprocess.run(["apt-get", "download", pkg], cwd=tmp,
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"(could not fetch {pkg}: {done.stderr.strip()[:120]})")
            for deb in Path(tmp).glob("*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
    return [target]


def unique_word(rng: random.Random, taken: set[str]) -> str:
    while True:
        if rng.random() < 0.5:
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
        else:
            word = f"{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}{rng.choice('BCDFGHJKLMNPQRSTVWXZ')}-" \
                   f"{rng.randint(1000, 9999)}"
        if word not in taken and word not in SHARED:
            taken.add(word)
            return word


def make_set(folder: Path, n: int, seed: int, fonts: list[Path]) -> list[dict[str, Any]]:
    """n images: a third words only, a third shape only, a third both."""
    from assetdb.demo.shapes import COLORS, SHAPES
    from assetdb.demo.words import WordImage, render

    rng = random.Random(seed)
    taken: set[str] = set()
    colors = [c for c in COLORS if c not in ("white", "black")]
    items = []
    for i in range(n):
        group = ("words", "shape", "both")[i % 3]
        shape = rng.choice(SHAPES) if group != "words" else None
        color = rng.choice(colors) if shape else None
        if group == "words":
            words = [unique_word(rng, taken), rng.choice(("NEW", "LOT 7", "NOTICE"))]
        elif group == "both":
            words = [SHARED[(i // 3) % len(SHARED)]]
        else:
            words = []
        item = WordImage(words, shape, color, dark=rng.random() < 0.3)
        font = rng.choice(fonts) if fonts else None
        img = render(item, rng, font=font, size=rng.randint(30, 56),
                     rotation=rng.uniform(-4, 4), noise=rng.choice((0.0, 0.08, 0.15, 0.22)))
        path = folder / f"img-{i:04d}.jpg"
        img.save(path, "JPEG", quality=rng.randint(60, 92))
        items.append({"path": str(path), "group": group, "words": words, "shape": shape,
                      "color": color, "font": font.name if font else "default",
                      "dark": item.dark})
    return items


def tokens(texts: list[str]) -> list[str]:
    return [t for line in texts for t in re.split(r"\s+", line.upper().strip()) if t]


def quality(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    from sqlalchemy import text

    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings
    from assetdb.db.engine import connect, reset_engines
    from assetdb.demo.words import font_paths
    from assetdb.ocr import service
    from assetdb.search import hybrid
    from assetdb.shipped import DEMO_MODEL_DIR

    extra = fetch_fonts() if args.fetch_fonts else []
    fonts = font_paths(extra)
    folder = home / "images"
    folder.mkdir(parents=True, exist_ok=True)
    items = make_set(folder, args.images, args.seed, fonts)
    with bench_database(home / "pg", "kwq") as url:
        os.environ.update(ASSETDB_DATABASE_URL=url, ASSETDB_MODEL=str(DEMO_MODEL_DIR),
                          ASSETDB_HOME=str(home))
        reset_engines()
        settings = Settings.from_env()
        catalog = Catalog(settings)
        encoder = catalog.load_encoder(str(DEMO_MODEL_DIR), meta={})
        catalog.init(lambda: encoder)
        with Timer() as t_embed:
            catalog.ingest([str(folder)], encoder=encoder)
        engine = service.shared_engine()
        with Timer() as t_ocr:
            ocr = service.backfill(settings, engine)
        with connect(settings) as conn:
            rows = conn.execute(text(
                "SELECT a.uri, coalesce(array_agg(l.text ORDER BY l.line_no) "
                "FILTER (WHERE l.text IS NOT NULL), '{}') AS lines, a.id "
                "FROM assets a LEFT JOIN asset_ocr_lines l ON l.asset_id = a.id "
                "GROUP BY a.id")).all()
        read = {r.uri: list(r.lines) for r in rows}
        ids = {r.uri: r.id for r in rows}

        # OCR words: printed tokens found (recall) and recognised tokens printed (precision).
        printed_n = found_n = recognised_n = correct_n = 0
        per_group: dict[str, list[int]] = {}
        for it in items:
            printed = tokens(it["words"])
            got = tokens(read.get(it["path"], []))
            hits = sum(1 for w in printed if w in got)
            printed_n += len(printed)
            found_n += hits
            recognised_n += len(got)
            correct_n += sum(1 for w in got if w in printed)
            g = per_group.setdefault(f"{'dark' if it['dark'] else 'light'}", [0, 0])
            g[0] += hits
            g[1] += len(printed)

        def top(query: str, mode: str, k: int = 10) -> list[int]:
            return [h.id for h in hybrid.search(settings, query, mode=mode, encoder=encoder,
                                                k=k).hits]

        def rr(ranked: list[int], relevant: set[int]) -> float:
            return next((1.0 / (i + 1) for i, x in enumerate(ranked) if x in relevant), 0.0)

        queries: list[tuple[str, str, set[int]]] = []
        for it in items:
            if it["group"] == "words":
                queries.append(("word-only", it["words"][0].lower(), {ids[it["path"]]}))
        for shape_color in sorted({(it["shape"], it["color"]) for it in items if it["shape"]}):
            relevant = {ids[it["path"]] for it in items
                        if (it["shape"], it["color"]) == shape_color}
            queries.append(("visual-only", f"a {shape_color[1]} {shape_color[0]}", relevant))
        for it in items:
            if it["group"] == "both":
                queries.append(("both", f"{it['words'][0].lower()} {it['color']} {it['shape']}",
                                {ids[it["path"]]}))
        table: list[dict[str, Any]] = []
        latencies: dict[str, list[float]] = {m: [] for m in hybrid.MODES}
        for qtype in ("word-only", "visual-only", "both"):
            subset = [q for q in queries if q[0] == qtype]
            row: dict[str, Any] = {"query type": qtype, "queries": len(subset)}
            for mode in ("semantic", "keyword", "hybrid"):
                h1 = mrr = 0.0
                for _, query, relevant in subset:
                    start = time.perf_counter()
                    try:
                        ranked = top(query, mode)
                    except Exception:  # noqa: BLE001 - a keyword query without words
                        ranked = []
                    latencies[mode].append(time.perf_counter() - start)
                    h1 += bool(ranked) and ranked[0] in relevant
                    mrr += rr(ranked, relevant)
                row[f"{mode} hit@1"] = round(h1 / max(1, len(subset)), 3)
                row[f"{mode} MRR"] = round(mrr / max(1, len(subset)), 3)
            table.append(row)
        stats = {"images": len(items), "fonts": sorted({it["font"] for it in items}),
                 "ocr_word_recall": round(found_n / max(1, printed_n), 3),
                 "ocr_word_precision": round(correct_n / max(1, recognised_n), 3),
                 "ocr_recall_by_background": {k: round(v[0] / max(1, v[1]), 3)
                                              for k, v in per_group.items()},
                 "ingest_embed_seconds": round(t_embed.seconds, 2),
                 "ocr_seconds_total": round(t_ocr.seconds, 2),
                 "ocr_seconds_model_only": ocr.seconds,
                 "ocr_images_per_second": round(len(items) / t_ocr.seconds, 3),
                 "ocr_share_of_ingest": round(t_ocr.seconds / (t_ocr.seconds + t_embed.seconds),
                                              3),
                 "ocr_failed": ocr.failed,
                 "query_types": table,
                 "service_latency_ms_p50_small_catalogue": {
                     m: round(1000 * percentile(v, 50), 1) for m, v in latencies.items()}}
        misses = []
        for _, query, relevant in [q for q in queries if q[0] == "word-only"]:
            ranked = top(query, "keyword")
            if not ranked or ranked[0] not in relevant:
                path = next(p for p, i in ids.items() if i in relevant)
                misses.append({"query": query, "read": read.get(path, [])})
        stats["word_only_keyword_misses"] = misses
        reset_engines()
    return stats


HARD = {  # condition -> render options (what OCR reads well and badly)
    "baseline 40 px": {"size": 40},
    "small text 14 px": {"size": 14},
    "tiny text 9 px": {"size": 9},
    "rotated 15 deg": {"size": 40, "rotation": 15.0},
    "rotated 45 deg": {"size": 40, "rotation": 45.0},
    "upside down": {"size": 40, "rotation": 180.0},
    "heavy noise 0.45": {"size": 40, "noise": 0.45},
    "low contrast": {"size": 40, "low_contrast": True},
}


def hard_cases(per: int, seed: int) -> list[dict[str, Any]]:
    """Word recall of the OCR model alone under harder conditions, `per` images each."""
    from PIL import ImageEnhance

    from assetdb.demo.words import WordImage, font_paths, render
    from assetdb.ocr.service import shared_engine

    engine = shared_engine()
    fonts = font_paths()
    rng = random.Random(seed)
    rows = []
    for name, opts in HARD.items():
        found = total = 0
        seconds = 0.0
        for _ in range(per):
            word = unique_word(rng, set())
            opts = dict(opts)
            low = opts.pop("low_contrast", False)
            img = render(WordImage([word]), rng, font=rng.choice(fonts) if fonts else None,
                         **opts)
            if low:
                img = ImageEnhance.Contrast(img).enhance(0.25)
            start = time.perf_counter()
            got = tokens([ln.text for ln in engine.read(img)])
            seconds += time.perf_counter() - start
            found += word in got
            total += 1
        rows.append({"condition": name, "images": total, "word recall": round(found / total, 2),
                     "s/image": round(seconds / total, 2)})
    return rows


VOCAB_SIZE = 20_000


def load_synthetic(url: str, rows: int, seed: int) -> dict[str, Any]:
    """`rows` synthetic assets into an initialised database: words drawn by a Zipf law
    from a generated vocabulary, a unique code and file name each. Returns the
    vocabulary and the load and index times."""
    import psycopg

    from assetdb.sqlsurface.vectors import vector_text

    rng = np.random.default_rng(seed)
    vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(4, 10)))
             for _ in range(VOCAB_SIZE)]
    weights = 1.0 / np.arange(1, VOCAB_SIZE + 1)
    weights /= weights.sum()
    dim = 64
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        index = cur.execute("SELECT pg_get_indexdef('assets_embedding_hnsw'::regclass)"
                            ).fetchone()[0]
        cur.execute("DROP INDEX assets_embedding_hnsw")
        vectors = rng.standard_normal((rows, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with Timer() as t_load:
            with cur.copy("COPY assets (uri, kind, title, description, tags, metadata, "
                          "embedding, embedding_model, status) FROM STDIN") as copy:
                for i in range(rows):
                    words = rng.choice(VOCAB_SIZE, size=12, p=weights)
                    copy.write_row((
                        f"/bench/p{i}/IMG_{i:06d}.jpg", "image",
                        " ".join(vocab[w] for w in words[:3]),
                        " ".join(vocab[w] for w in words[3:]),
                        [vocab[words[0]]], json.dumps({"sku": f"SK-{i:06d}"}),
                        vector_text(vectors[i]), "synthetic", "ready"))
        with Timer() as t_index:
            cur.execute(index)
            cur.execute("ANALYZE assets")
            cur.execute("ANALYZE asset_text")
    return {"vocab": vocab, "load_seconds": round(t_load.seconds, 1),
            "hnsw_build_seconds": round(t_index.seconds, 1)}


def latency(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """--rows synthetic assets whose words follow a Zipf law over a generated vocabulary,
    and each a unique code; timings of the SQL functions and the keyword service.
    With --keep DIR the loaded database stays in DIR and a later run with the same
    --rows and --seed reuses it (and runs the migrations it lacks)."""
    import psycopg
    from pgvector.psycopg import register_vector

    from assetdb.config import Settings
    from assetdb.db.engine import reset_engines
    from assetdb.search import hybrid
    from benchmarks._common import init_database

    dim = 64
    name = f"kwl_{args.rows}_{args.seed}"
    with bench_database(home / "pg", name, fresh=args.keep is None) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            loaded = conn.execute("SELECT to_regclass('assets') IS NOT NULL").fetchone()[0] \
                and conn.execute("SELECT count(*) FROM assets").fetchone()[0] == args.rows
        init_database(url, "synthetic", dim)  # a reused database: migrations it lacks
        reset_engines()
        if loaded:
            rng = np.random.default_rng(args.seed)
            vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"),
                                        rng.integers(4, 10))) for _ in range(VOCAB_SIZE)]
            load: dict[str, Any] = {"vocab": vocab, "load_seconds": None,
                                    "hnsw_build_seconds": None}
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE asset_text")
        else:
            load = load_synthetic(url, args.rows, args.seed)
        vocab = load["vocab"]
        rng = np.random.default_rng(args.seed + 1)
        # Document frequencies of the vocabulary follow the Zipf weights: word i is in
        # about 12/(i+1)/H(20000) of the rows (the first: ~11 %).
        queries = {
            "rare word": [vocab[int(i)] for i in rng.integers(5000, VOCAB_SIZE, 30)],
            "common word": [vocab[int(i)] for i in rng.integers(0, 20, 30)],
            "two words": [f"{vocab[int(a)]} {vocab[int(b)]}"
                          for a, b in rng.integers(50, 3000, (30, 2))],
            "two common words": [f"{vocab[int(a)]} {vocab[int(b)]}"
                                 for a, b in rng.integers(0, 20, (30, 2))],
            "code prefix": [f"SK-{int(i):06d}"[:8] for i in rng.integers(0, args.rows, 30)],
            "file name": [f"IMG_{int(i):06d}" for i in rng.integers(0, args.rows, 30)],
        }
        rows = []
        os.environ.update(ASSETDB_DATABASE_URL=url, ASSETDB_MODEL="synthetic")
        settings = Settings.from_env()
        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            # Steady state, not a cold start: the tables and indexes into shared buffers
            # (a reused database's server has just started), then plans warmed once.
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            for rel in ("assets", "assets_pkey", "assets_embedding_hnsw", "asset_text",
                        "asset_text_pkey", "asset_text_simple_gin", "asset_text_lang_gin"):
                conn.execute("SELECT pg_prewarm(%s)", (rel,))
            for q in queries["common word"][:3]:  # warm the caches and plans once
                v = rng.standard_normal(dim).astype(np.float32)
                conn.execute("SELECT * FROM assetdb_text_search(%s, 10)", (q,)).fetchall()
                conn.execute("SELECT * FROM assetdb_hybrid_search(%s, %s, 10)",
                             (q, v / np.linalg.norm(v))).fetchall()
                hybrid.search(settings, q, mode="keyword", k=10)
            for kind, qs in queries.items():
                sql_kw, sql_hy, svc_kw, matched = [], [], [], []
                for q in qs:
                    v = rng.standard_normal(dim).astype(np.float32)
                    v /= np.linalg.norm(v)
                    start = time.perf_counter()
                    conn.execute("SELECT * FROM assetdb_text_search(%s, 10)", (q,)
                                       ).fetchall()
                    sql_kw.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    conn.execute("SELECT * FROM assetdb_hybrid_search(%s, %s, 10)", (q, v)
                                 ).fetchall()
                    sql_hy.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    hybrid.search(settings, q, mode="keyword", k=10)
                    svc_kw.append(time.perf_counter() - start)
                    matched.append(conn.execute(
                        "SELECT count(*) FROM asset_text WHERE tsv_simple @@ "
                        "assetdb_query_simple(%s) OR tsv_lang @@ assetdb_query_lang(%s)",
                        (q, q)).fetchone()[0])
                rows.append({
                    "query": kind, "median rows matched": int(np.median(matched)),
                    "keyword SQL p50 ms": round(1000 * percentile(sql_kw, 50), 1),
                    "keyword SQL p95 ms": round(1000 * percentile(sql_kw, 95), 1),
                    "hybrid SQL p50 ms": round(1000 * percentile(sql_hy, 50), 1),
                    "hybrid SQL p95 ms": round(1000 * percentile(sql_hy, 95), 1),
                    "keyword service p50 ms": round(1000 * percentile(svc_kw, 50), 1),
                })
        reset_engines()
    return {"rows": args.rows, "load_seconds": load["load_seconds"],
            "hnsw_build_seconds": load["hnsw_build_seconds"], "latency": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=72, help="generated images (part 1)")
    ap.add_argument("--rows", type=int, default=100_000, help="synthetic rows (part 2)")
    ap.add_argument("--part", choices=("quality", "hard", "latency", "all"), default="all")
    ap.add_argument("--hard-per", type=int, default=4, help="images per hard OCR condition")
    ap.add_argument("--fetch-fonts", action="store_true",
                    help="apt-get download extra Debian fonts into benchmarks/.cache")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="latency: keep the loaded database in DIR and reuse it next time")
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": machine()}
    tables: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(dir="/work/homes" if Path("/work/homes").is_dir()
                                     else None) as tmp:
        home = Path(tmp)
        os.chmod(home, 0o755)  # the embedded server runs as another user when we are root
        if args.part in ("quality", "all"):
            result["quality"] = quality(args, home / "q")
            tables["query types (hit@1, MRR)"] = result["quality"]["query_types"]
        if args.part in ("hard", "all"):
            result["ocr_hard_cases"] = hard_cases(args.hard_per, args.seed)
            tables["OCR under harder conditions"] = result["ocr_hard_cases"]
        if args.part in ("latency", "all"):
            result["latency"] = latency(args, args.keep or home / "l")
            tables[f"latency at {args.rows} rows"] = result["latency"]["latency"]
        from assetdb.db import embedded

        for pg in (home / "q" / "pg", home / "l" / "pg", args.keep and args.keep / "pg"):
            if pg and pg.exists():
                embedded.stop(pg)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report("keyword, hybrid and semantic search; OCR", result, tables, args.out)


if __name__ == "__main__":
    main()
