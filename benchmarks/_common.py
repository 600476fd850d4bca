"""Shared helpers for the benchmark scripts: a full-size random CLIP, a throwaway embedded
database, timing statistics and the JSON + table report."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CACHE = Path(__file__).resolve().parent / ".cache"


def build_vit_b32(out_dir: Path = CACHE / "vit-b32-random") -> Path:
    """A ViT-B/32 CLIP (CLIPConfig defaults) with random weights: it costs exactly what the
    trained model costs. Built once and reused; the tokenizer is the tiny byte-level one
    (vocabulary size does not change the cost of a forward pass)."""
    if (out_dir / "config.json").exists() and (out_dir / "modules.json").exists():
        return out_dir
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from assetdb.embedding.tiny import BOS, EOS, build_vocab

    vocab, merges = build_vocab(["a", "photo", "of", "the", "sunset", "building", "dog"])
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, bos_token=BOS, eos_token=EOS,
                              unk_token=EOS, pad_token=EOS)
    ids = {"vocab_size": len(vocab), "bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS],
           "pad_token_id": vocab[EOS]}
    config = CLIPConfig(text_config=ids)  # the rest: ViT-B/32 defaults (512-d projection)
    torch.manual_seed(0)
    model = CLIPModel(config)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    # Save once through sentence-transformers so later loads skip its auto-detection.
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(out_dir), device="cpu").save(str(out_dir))
    return out_dir


@contextmanager
def bench_database(home: Path, name: str, fresh: bool = True) -> Iterator[str]:
    """A fresh database `name` on an embedded server under `home` (fresh=False: the one
    there is); yields its URL."""
    import psycopg

    from assetdb.db import embedded

    server = embedded.start(home)
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                              ).fetchone() is not None
        if fresh and exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if fresh or not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = server.partition("?")
    yield base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def init_database(url: str, model: str, dim: int) -> None:
    """`assetdb init` (through the Catalog), for a model name and dimension."""
    from types import SimpleNamespace

    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings

    os.environ["ASSETDB_DATABASE_URL"] = url
    os.environ["ASSETDB_MODEL"] = model
    Catalog(Settings.from_env()).init(lambda: SimpleNamespace(name=model, dimension=dim))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[idx]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def report(title: str, result: dict[str, Any], tables: dict[str, list[dict[str, Any]]],
           out: Path | None) -> None:
    """Print short tables on stderr and the JSON on stdout; optionally save the JSON."""
    print(f"== {title}", file=sys.stderr)
    for name, rows in tables.items():
        if not rows:
            continue
        cols = list(rows[0])
        cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        print(f"-- {name}", file=sys.stderr)
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), file=sys.stderr)
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)),
                  file=sys.stderr)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)
