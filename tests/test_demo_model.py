"""Tests that check meaning, with the shipped demo model on held-out generated shapes
(seeds the training set never used)."""

from __future__ import annotations

import json
import os

import numpy as np
import psycopg
import pytest

from assetdb.config import Settings
from assetdb.db import embedded
from assetdb.db.engine import reset_engines
from assetdb.demo import MODEL_DIR, shapes
from assetdb.search.filters import Filters
from tests.conftest import _with_database, run_cli, server_dir

CATALOGUE = 240  # 5 images of each (shape, colour) pair: top-5 can be all right


@pytest.fixture(scope="module")
def demo_encoder():
    from assetdb.embedding.encoder import load_encoder

    return load_encoder(str(MODEL_DIR))


@pytest.fixture(scope="module")
def demo_db(server_url, tmp_path_factory, demo_encoder):
    """One database for the module: the held-out catalogue ingested with the demo model."""
    from assetdb.ingest.ingest_files import ingest

    name = f"demo{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    folder = tmp_path_factory.mktemp("demo-catalogue")
    sidecar = shapes.write_catalogue(folder, CATALOGUE, seed=99)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASSETDB_DATABASE_URL", _with_database(server_url, name))
        mp.setenv("ASSETDB_MODEL", str(MODEL_DIR))
        mp.setenv("ASSETDB_HOME", str(folder / "home"))
        assert run_cli("init").exit_code == 0
        settings = Settings.from_env()
        report = ingest(settings, [str(folder / "images")], metadata_file=sidecar,
                        encoder=demo_encoder)
        assert report.ingested == CATALOGUE and report.failed == 0
        yield settings
    reset_engines()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_shipped_model_is_small_and_loads_like_any_model(demo_encoder):
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 10 * 1024 * 1024
    assert (MODEL_DIR / "model.safetensors").is_file()
    assert demo_encoder.dimension > 0 and demo_encoder.image_size == 48
    vectors = demo_encoder.encode_texts(["a red circle", "a blue star"])
    assert float(vectors[0] @ vectors[1]) < 0.99


def test_text_queries_return_the_right_shape_and_colour(demo_db, demo_encoder):
    """The issue's bar: >= 90% of the top-5 results of every (colour, shape) query show
    that shape in that colour, on held-out images, through the real database."""
    from assetdb.search.searches import search_text

    right = total = 0
    worst = []
    for shape in shapes.SHAPES:
        for color in shapes.COLORS:
            hits = search_text(demo_db, demo_encoder, f"a {color} {shape}", k=5)
            good = sum(shape in h.tags and color in h.tags for h in hits)
            right, total = right + good, total + len(hits)
            worst.append((good, color, shape))
    assert total == 5 * len(shapes.SHAPES) * len(shapes.COLORS)
    assert right / total >= 0.9, sorted(worst)[:8]


def test_full_caption_query_through_the_cli(demo_db):
    result = run_cli("search", "a large yellow star on a purple background", "-k", "5", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 5
    assert sum("star" in h["tags"] and "yellow" in h["tags"] for h in hits) >= 4
    assert hits[0]["title"].startswith("a ") and "yellow star" in hits[0]["title"]


def test_filters_narrow_correctly(demo_db, demo_encoder):
    from assetdb.search.searches import search_text

    # Metadata filter: every result has the background asked for, and the text still
    # ranks the right shape first among them.
    hits = search_text(demo_db, demo_encoder, "a circle", k=5,
                       filters=Filters(metadata={"background": "white"}))
    assert hits and all("on-white" in h.tags for h in hits)
    assert "circle" in hits[0].tags
    # Tag filters through the CLI: all of --tag, and --any-tag.
    result = run_cli("search", "a red circle", "--tag", "small", "-k", "10", "--json")
    small = json.loads(result.stdout)
    assert small and all("small" in h["tags"] for h in small)
    assert all("red" in h["tags"] and "circle" in h["tags"] for h in small[:2])
    result = run_cli("search", "a star", "--any-tag", "green,blue", "-k", "20", "--json")
    either = json.loads(result.stdout)
    assert len(either) == 20
    assert all({"green", "blue"} & set(h["tags"]) for h in either)
    # Narrowing to nothing gives nothing, not something else.
    result = run_cli("search", "a star", "--meta", "shape=hexagon", "--json")
    assert json.loads(result.stdout) == []


def test_similar_image_search_finds_the_same_shape_and_colour(demo_db, demo_encoder):
    from assetdb.search.searches import search_image

    # Every (shape, colour) pair once: 48 queries, 144 results (12 queries moved the rate
    # by 0.03 per result; docs/finetune.md has the rate on other seeds).
    query = shapes.write_class_folders(demo_db.home / "q", 48, seed=4321)
    right = total = 0
    for path, item in query:
        hits = search_image(demo_db, demo_encoder, path, k=3)
        right += sum(item.shape in h.tags and item.color in h.tags for h in hits)
        total += len(hits)
    assert right / total >= 0.8


def test_zero_shot_accuracy_on_held_out_images(demo_encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETDB_MODEL", str(MODEL_DIR))
    shapes.write_class_folders(tmp_path / "classes", 120, seed=31337)
    args = ["eval", "--folder", str(tmp_path / "classes"), "--json"]
    for template in shapes.SHAPE_TEMPLATES:
        args += ["--template", template]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 120 and sorted(data["classes"]) == sorted(shapes.SHAPES)
    assert data["accuracy"] >= 0.9, data["per_class"]


def test_moderation_rule_flags_the_intended_concept(demo_encoder, tmp_path):
    from assetdb.demo.walkthrough import flag_shape
    from assetdb.embedding.images import load_image

    # 480 images, 80 of each shape: with 16 stars one image moved recall by 0.06.
    items = shapes.write_class_folders(tmp_path / "m", 480, seed=777)
    vectors = demo_encoder.encode_images([load_image(p, demo_encoder.image_size)
                                          for p, _ in items])
    flagged = flag_shape(demo_encoder, vectors, "star")  # an issue-5 policy rule
    is_star = np.array([item.shape == "star" for _, item in items])
    assert flagged[is_star].mean() >= 0.9  # recall on the concept
    assert flagged[~is_star].mean() <= 0.05  # few false alarms
    # Another concept flags other images: the rule follows its text, not the data.
    is_circle = np.array([item.shape == "circle" for _, item in items])
    assert flag_shape(demo_encoder, vectors, "circle")[is_circle].mean() >= 0.9


def test_demo_command_end_to_end():
    home = server_dir() / "demo-home"  # not under pytest's 0700 tmp: the server's user
    try:
        result = run_cli("demo", "--home", str(home), "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["ingest"]["ingested"] == 288 and data["ingest"]["failed"] == 0
        for search in data["text_searches"]:
            assert len(search["hits"]) == 5 and search["correct"] >= 4, search
        # Queries in other languages, on (colour, shape) pairs the text model never saw.
        assert len(data["language_searches"]) == 5
        for search in data["language_searches"]:
            assert len(search["hits"]) == 5 and search["correct"] >= 4, search
        assert data["similar"]["correct"] >= 4
        filtered = data["filtered"]
        assert all("on-white" in h["tags"] for h in filtered["hits"])
        assert data["zero_shot"]["accuracy"] >= 0.9
        # Posters with printed words: the keyword search finds a code only OCR read, the
        # hybrid search the poster that carries the word and shows the shape.
        keyword, hybrid = data["word_searches"]
        assert keyword["hits"][0]["correct"] and "LOT" in keyword["hits"][0]["snippet"]
        assert hybrid["hits"][0]["correct"] and hybrid["hits"][0]["keyword_rank"] == 1
        # One poster carries each word: the check asks for that one, not for five, and
        # marks the hits after it "·", never "✗" (the hybrid step once read 1/5, ✗ x 4).
        for search in (keyword, hybrid):
            assert search["available"] == 1 and search["correct"] == search["possible"] == 1
            assert [h["mark"] for h in search["hits"]] == ["✓"] + ["·"] * (
                len(search["hits"]) - 1), search
        assert len(hybrid["hits"]) == 5
        # Where the catalogue holds more right answers than hits, a wrong hit is still ✗.
        for search in data["text_searches"]:
            assert search["available"] >= 5 and search["possible"] == 5
            assert all((h["mark"] == "✓") == h["correct"] for h in search["hits"])
            assert all(h["mark"] in "✓✗" for h in search["hits"])
        assert data["moderation"]["flagged_of_concept"] >= 0.9 * data["moderation"][
            "concept_images"]
        # A second run reuses the catalogue: nothing is embedded again.
        again = run_cli("demo", "--home", str(home))
        assert again.exit_code == 0, again.output
        assert "0 images ingested, 288 already there" in again.output
        assert "✓" in again.output and "Try next" in again.output
        hybrid_step = again.output.split("hybrid: 'a harbour festival poster'")[1].split(
            "\n\n")[0]
        assert "✗" not in hybrid_step and "1/1 found" in hybrid_step, hybrid_step
        assert "Russian: 'зелёный квадрат'" in again.output
        # It says how to stop its server, and that command stops it.
        stop = f"assetdb demo --stop --home {home}"
        assert stop in again.output and data["stop"] == stop
        assert run_cli(*stop.split()[1:]).exit_code == 0
        assert embedded.running_url(home) is None
    finally:
        reset_engines()
        embedded.stop(home)


# --- issue 19: queries in other languages, through the multilingual text model ----------


def test_the_shipped_model_pairs_a_multilingual_text_model(demo_encoder):
    from assetdb.demo.languages import LANGUAGES

    assert demo_encoder.text_name == str((MODEL_DIR / "text").resolve())
    manifest = json.loads((MODEL_DIR / "text" / "assetdb_text_model.json").read_text())
    assert set(LANGUAGES) <= set(manifest["languages"])


def test_queries_in_every_language_find_pairs_the_distillation_never_saw(demo_db,
                                                                          demo_encoder):
    """The issue's bar, through the real database: per language, precision@5 of
    "a {colour} {shape}" on the held-out (colour, shape) pairs >= 0.9 and >= 0.95x
    English's."""
    from assetdb.demo.languages import HELD_OUT_COMBOS, LANGUAGES, color_query
    from assetdb.search.searches import search_text

    precision = {}
    for lang in LANGUAGES:
        right = total = 0
        for color, shape in HELD_OUT_COMBOS:
            hits = search_text(demo_db, demo_encoder, color_query(lang, color, shape), k=5)
            right += sum(shape in h.tags and color in h.tags for h in hits)
            total += len(hits)
        assert total == 5 * len(HELD_OUT_COMBOS)
        precision[lang] = right / total
    for value in precision.values():
        assert value >= 0.9 and value >= 0.95 * precision["en"], precision


def test_search_in_russian_and_chinese_through_the_cli(demo_db):
    for query, shape, color in (("жёлтая звезда", "star", "yellow"),
                                ("一个红色的圆形", "circle", "red")):
        result = run_cli("search", query, "-k", "5", "--json")
        assert result.exit_code == 0, result.output
        hits = json.loads(result.stdout)
        assert sum(shape in h["tags"] and color in h["tags"] for h in hits) >= 4, query


def test_zero_shot_with_labels_in_every_language(demo_encoder, tmp_path, monkeypatch):
    from assetdb.classify.zeroshot import probabilities, text_prototypes
    from assetdb.demo.languages import LANGUAGES, caption
    from assetdb.embedding.images import load_image

    items = shapes.write_class_folders(tmp_path / "classes", 120, seed=31337)
    vectors = demo_encoder.encode_images([load_image(p, demo_encoder.image_size)
                                          for p, _ in items])
    truth = np.array([shapes.SHAPES.index(item.shape) for _, item in items])
    for lang in LANGUAGES:
        labels = [caption(lang, "shape", s) for s in shapes.SHAPES]  # "une étoile", ...
        protos = text_prototypes(demo_encoder, labels, ["{}"])
        predicted = probabilities(vectors, protos, demo_encoder.scoring).argmax(axis=1)
        assert (predicted == truth).mean() >= 0.9, lang
    # The same through `assetdb eval --folder`, the labels being Russian folder names.
    monkeypatch.setenv("ASSETDB_MODEL", str(MODEL_DIR))
    for shape in shapes.SHAPES:
        (tmp_path / "classes" / shape).rename(tmp_path / "classes" / caption("ru", "shape",
                                                                             shape))
    result = run_cli("eval", "--folder", str(tmp_path / "classes"), "--template", "{}",
                     "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "звезда" in data["classes"] and data["accuracy"] >= 0.9, data["per_class"]
