"""`assetdb demo` as a service: build a shapes catalogue, ingest it with the shipped demo
model into an embedded PostgreSQL, and run searches whose answers are known.

The demo keeps to its own home (a `demo` folder under ASSETDB_HOME by default) and its own
embedded server, so it never mixes with a catalogue made with another model.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from assetdb.catalog.catalogue import Catalog
from assetdb.classify.policy import Policy, Rule, encode_policies, rule_scores
from assetdb.classify.zeroshot import probabilities, text_prototypes
from assetdb.config import Settings
from assetdb.db.engine import connect
from assetdb.demo import MODEL_DIR, shapes
from assetdb.embedding.encoder import Encoder, load_encoder
from assetdb.embedding.images import load_image
from assetdb.errors import AssetdbError, ImageError
from assetdb.ingest.ingest_files import IngestReport
from assetdb.search.filters import Filters
from assetdb.search.query import Hit

CATALOGUE_SIZE = 288  # 6 images of each (shape, colour) pair
HELD_OUT_SIZE = 96
# (query, the shape and colour every result should show)
TEXT_QUERIES = (
    ("a red circle", "circle", "red"),
    ("a large blue star", "star", "blue"),
    ("a yellow triangle on a black background", "triangle", "yellow"),
    ("a small green cross", "cross", "green"),
)
FILTERED_QUERY = ("a square", {"background": "white"})
SIMILAR_TO = ("orange", "diamond")
def shape_rule(concept: str) -> Rule:
    """A moderation rule (assetdb.classify.policy) for one shape: the score is the best
    similarity to the shape's prompts minus the best similarity to any other shape's, so
    threshold 0 flags the images whose nearest shape is this one."""
    others = [s for s in shapes.SHAPES if s != concept]
    return Rule(name=concept, threshold=0.0, action="flag",
                texts=tuple(t.format(concept) for t in shapes.SHAPE_TEMPLATES),
                counter_texts=tuple(t.format(o) for o in others for t in shapes.SHAPE_TEMPLATES))


def flag_shape(encoder: Encoder, image_vectors: np.ndarray, concept: str) -> np.ndarray:
    """(N,) booleans: the images the shape's moderation rule flags."""
    rule = shape_rule(concept)
    encoded = encode_policies(encoder, [Policy(name="demo", rules=(rule,))])[0]
    return rule_scores(image_vectors, encoded) >= rule.threshold


RULE = shape_rule("star")

Log = Callable[[str], None]


def demo_settings(home: Path | None = None) -> Settings:
    """The demo's settings: its own embedded server and the shipped model."""
    base = Settings.from_env()
    return dataclasses.replace(base, database_url=None, read_database_url=None,
                               home=Path(home).expanduser() if home else base.home / "demo",
                               model=str(MODEL_DIR))


def start_server(settings: Settings) -> None:
    """Start (or attach to) the demo's embedded server."""
    from assetdb.db.engine import libpq_url

    libpq_url(settings)


def load_demo_model(settings: Settings) -> Encoder:
    if not (MODEL_DIR / "model.safetensors").is_file():
        raise AssetdbError(f"the demo model is missing from {MODEL_DIR}; rebuild it with "
                           "`python -m assetdb.demo.build_model --out assetdb/demo/model`")
    return load_encoder(str(MODEL_DIR), device=settings.device, batch_size=settings.batch_size)


def prepare(settings: Settings, encoder: Encoder, log: Log = lambda _m: None) -> IngestReport:
    """Generate the catalogue (once), initialise the database, ingest (idempotent)."""
    folder = settings.home / "catalogue"
    sidecar = folder / "metadata.jsonl"
    # description.json came later (made-up product facts for `assetdb ask`): a catalogue
    # made before it is drawn again, to the same files, and its sidecar updates the rows.
    if not sidecar.is_file() or not (folder / "description.json").is_file():
        log(f"Generating {CATALOGUE_SIZE} shape images in {folder} ...")
        shapes.write_catalogue(folder, CATALOGUE_SIZE, seed=7)
    catalogue = Catalog(settings)
    meta = catalogue.meta()
    if meta and meta["model"] != encoder.name:
        raise AssetdbError(
            f"the demo database in {settings.home} was made with the model "
            f"{meta['model']!r}; run the demo with another --home")
    catalogue.init(lambda: encoder)  # as `assetdb init`: schema, model, read-only role
    log("Ingesting the catalogue ...")
    report = catalogue.ingest([str(folder / "images")], metadata_file=sidecar, encoder=encoder)
    _ingest_posters(settings, encoder, folder / "posters", log)
    return report


def _ingest_posters(settings: Settings, encoder: Encoder, folder: Path, log: Log) -> None:
    """A few generated posters with printed words (assetdb.demo.words), read by OCR when
    the `ocr` extra is installed, for the keyword and hybrid searches."""
    import json

    from assetdb.demo import words

    sidecar = folder / "metadata.jsonl"
    if not sidecar.is_file():
        made = words.write_demo_posters(folder / "images")
        sidecar.write_text("".join(
            json.dumps({"file": f"images/{p.name}", "title": title,
                        "tags": ["poster", *item.words[:1]]}) + "\n"
            for p, item, title in made))
    from assetdb.ocr.engine import OcrUnavailable
    from assetdb.ocr.service import shared_engine

    try:
        shared_engine()
        ocr = True
        log("Ingesting posters with words, reading their text (OCR) ...")
    except OcrUnavailable as exc:
        ocr = False
        log(f"Ingesting posters without reading their text: {exc}")
    Catalog(settings).ingest([str(folder / "images")], metadata_file=sidecar, encoder=encoder,
                             ocr=ocr)


def word_searches(settings: Settings, encoder: Encoder, k: int = 5) -> list[Search]:
    """A keyword search for a code printed on a poster (and nowhere else: not in its title,
    tags or file name), and a hybrid search in plain words, one of them printed."""
    out = []
    for query, mode, expected in WORD_QUERIES:
        result = Catalog(settings).search(query, mode=mode, encoder=encoder, k=k)
        out.append(Search(f"{mode}: {query!r}", f'assetdb search "{query}" --mode {mode} -k {k}',
                          result.hits, expected, right_answers(settings, expected)))
    return out


def right_answers(settings: Settings, expected: tuple[str, ...]) -> int:
    """How many searchable assets carry every one of these tags: the right answers that
    exist (one poster carries HARBOUR; a search for it cannot show five)."""
    with connect(settings) as conn:
        return conn.execute(text(
            "SELECT count(*) FROM assets WHERE tags @> CAST(:t AS text[]) "
            "AND status = 'ready' AND NOT hidden"), {"t": list(expected)}).scalar_one()


# (query, mode, tags every right answer carries): words printed on the demo posters.
WORD_QUERIES = [
    ("LOT 88", "keyword", ("poster", "QX-4471")),
    ("a harbour festival poster", "hybrid", ("poster", "HARBOUR")),
]


@dataclass
class Search:
    title: str
    command: str  # the equivalent CLI command, to try by hand
    hits: list[Hit]
    expected: tuple[str, ...]  # tags every right answer carries (shape, colour, ...)
    # How many right answers the catalogue holds (None: at least as many as hits).
    available: int | None = None

    def correct(self, hit: Hit) -> bool:
        return all(tag in hit.tags for tag in self.expected)

    @property
    def found(self) -> int:
        return sum(self.correct(h) for h in self.hits)

    @property
    def possible(self) -> int:
        """The most right answers these hits could hold."""
        return len(self.hits) if self.available is None else min(self.available,
                                                                  len(self.hits))

    def marks(self) -> list[str]:
        """✓ a right answer; ✗ a wrong one while a right answer was still to come; · a
        hit after every right answer the catalogue holds (no search can do better)."""
        out, seen = [], 0
        for hit in self.hits:
            if self.correct(hit):
                seen += 1
                out.append("✓")
            else:
                out.append("·" if self.available is not None and seen >= self.available
                           else "✗")
        return out


def text_searches(settings: Settings, encoder: Encoder, k: int = 5) -> list[Search]:
    return [Search(f"text: {q!r}", f'assetdb search "{q}" -k {k}',
                   Catalog(settings).search_text(encoder, q, k=k), (shape, color),
                   right_answers(settings, (shape, color)))
            for q, shape, color in TEXT_QUERIES]


def language_searches(settings: Settings, encoder: Encoder, k: int = 5) -> list[Search]:
    """Queries in other languages (through the model's multilingual text encoder), on
    (colour, shape) pairs its distillation never saw."""
    from assetdb.demo.languages import LANGUAGE_NAMES, demo_queries

    return [Search(f"{LANGUAGE_NAMES[lang]}: {q!r}", f'assetdb search "{q}" -k {k}',
                   Catalog(settings).search_text(encoder, q, k=k), (shape, color))
            for lang, q, color, shape in demo_queries()]


def filtered_search(settings: Settings, encoder: Encoder, k: int = 5) -> Search:
    query, meta = FILTERED_QUERY
    opts = " ".join(f"--meta {key}={value}" for key, value in meta.items())
    hits = Catalog(settings).search_text(encoder, query, k=k,
                                         filters=Filters(metadata=meta))
    expected = (query.split()[-1], f"on-{meta['background']}")
    return Search(f"text {query!r}, filtered by {opts}", f'assetdb search "{query}" {opts}',
                  hits, expected, right_answers(settings, expected))


def similar_search(settings: Settings, k: int = 5) -> Search:
    color, shape = SIMILAR_TO
    with connect(settings) as conn:
        row = conn.execute(
            text("SELECT id, title FROM assets WHERE tags @> CAST(:t AS text[]) "
                 "AND status = 'ready' ORDER BY id LIMIT 1"), {"t": [color, shape]}).first()
    if row is None:
        raise AssetdbError(f"the demo catalogue has no {color} {shape}")
    hits = Catalog(settings).similar(row.id, k=k)
    return Search(f"similar to asset {row.id} ({row.title})", f"assetdb similar {row.id} -k {k}",
                  hits, (shape, color), right_answers(settings, (shape, color)) - 1)  # not itself


@dataclass
class Classified:
    file: str
    truth: str
    predicted: str
    probability: float


def held_out_images(settings: Settings) -> list[tuple[Path, shapes.ShapeImage]]:
    """New images (another seed) that the catalogue and the training set never saw."""
    return shapes.write_class_folders(held_out_folder(settings), HELD_OUT_SIZE, seed=2024)


def held_out_folder(settings: Settings) -> Path:
    return settings.home / "held-out"


def zero_shot(encoder: Encoder, items: list[tuple[Path, shapes.ShapeImage]]) -> list[Classified]:
    vectors = encoder.encode_images([load_image(p, encoder.image_size) for p, _ in items])
    labels = list(shapes.SHAPES)
    probs = probabilities(vectors, text_prototypes(encoder, labels, shapes.SHAPE_TEMPLATES),
                          encoder.scoring)
    return [Classified(path.name, item.shape, labels[int(p.argmax())], float(p.max()))
            for (path, item), p in zip(items, probs, strict=True)]


def moderation(encoder: Encoder,
               items: list[tuple[Path, shapes.ShapeImage]]) -> tuple[Rule, int, int, int]:
    """(rule, stars flagged, stars, others flagged) on the held-out images."""
    vectors = encoder.encode_images([load_image(p, encoder.image_size) for p, _ in items])
    flagged = flag_shape(encoder, vectors, RULE.name)
    is_star = np.array([item.shape == RULE.name for _, item in items])
    return RULE, int(flagged[is_star].sum()), int(is_star.sum()), int(flagged[~is_star].sum())


def sample_rows(rows: list[Classified], n: int = 6, seed: int = 0) -> list[Classified]:
    return random.Random(seed).sample(rows, min(n, len(rows)))


@dataclass
class VideoSearch:
    """A search by moment: a scene's caption finds the demo video at that scene."""

    query: str
    command: str
    video: str
    moment: float | None  # the best moment's second
    scene: tuple[float, float]  # where the scene really is
    similarity: float | None

    @property
    def correct(self) -> bool:  # within one sampling interval (the 1 s ceiling) of the cut
        return self.moment is not None and self.scene[0] - 1.0 <= self.moment < self.scene[1]


def video_search(settings: Settings, encoder: Encoder) -> VideoSearch | None:
    """Generate one short video of shape scenes (once), ingest it, and search a scene's
    caption with --kind video. None when the 'video' extra (PyAV) is not installed."""
    try:
        from assetdb.demo import media

        plan = media.scene_plan(21, 4, 24.0, first=20)
        # VP9 in WebM: every current browser plays it in the page (no H.264 licence).
        path = settings.home / "catalogue" / "video" / "scenes.webm"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            media.write_video(path, plan, fps=4, side=96, codec="libvpx-vp9")
    except ImageError:  # the extra is missing: the demo goes on without it
        return None
    catalogue = Catalog(settings)
    catalogue.ingest([str(path.parent)], encoder=encoder)
    scene = plan[2]
    query = scene.caption()
    hits = catalogue.search_text(encoder, query, k=3, filters=Filters(kinds=["video"]))
    hit = next((h for h in hits if h.uri == str(path)), None)
    moment = hit.moments[0]["seconds"] if hit and hit.moments else None
    return VideoSearch(query, f'assetdb search "{query}" --kind video', str(path), moment,
                       (scene.start, scene.end), hit.similarity if hit else None)
# Flat drawings on plain backgrounds hash alike (different shapes lie 4+ bits apart, where
# photographs lie 29+): the demo asks for near-identical hashes (at most 3 of 128 bits).
DUPLICATE_THRESHOLD = 0.97


@dataclass
class NearDuplicates:
    source: str  # the catalogue image copied
    copies: list[str]  # how
    reported_at_ingest: int  # copies ingest reported as near-duplicates (0 on a re-run)
    group: Any  # assetdb.duplicates.finder.Group holding the copies, or None
    groups: int  # groups in the whole catalogue at DUPLICATE_THRESHOLD
    command: str


def near_duplicates(settings: Settings, encoder: Encoder) -> NearDuplicates:
    """Copy one catalogue image twice (half size; JPEG quality 60), ingest the copies, and
    find the group they form with the original (`assetdb duplicates`)."""
    from PIL import Image

    source = sorted((settings.home / "catalogue" / "images").glob("*.png"))[0]
    folder = settings.home / "copies"
    folder.mkdir(parents=True, exist_ok=True)
    half, recompressed = folder / f"{source.stem}-half.png", folder / f"{source.stem}-q60.jpg"
    if not (half.is_file() and recompressed.is_file()):
        with Image.open(source) as img:
            rgb = img.convert("RGB")
            rgb.resize((rgb.width // 2, rgb.height // 2), Image.Resampling.LANCZOS).save(half)
            rgb.save(recompressed, quality=60)
    catalogue = Catalog(settings)
    report = catalogue.ingest([str(folder)], encoder=encoder)
    found = catalogue.duplicates(threshold=DUPLICATE_THRESHOLD)
    names = {half.name, recompressed.name}
    group = next((g for g in found.groups if {Path(m.uri).name for m in g.members} & names),
                 None)
    return NearDuplicates(source.name, ["half size", "JPEG quality 60"],
                          len(report.near_duplicates), group, len(found.groups),
                          f"assetdb duplicates --threshold {DUPLICATE_THRESHOLD}")
