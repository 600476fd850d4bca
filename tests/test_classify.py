"""Zero-shot classification: stored fields, ensembling, one-file mode, dry runs, bad input,
saved label sets applied at ingest and to the catalogue. The tiny model has random
weights, so these check mechanics against hand computations, not semantic correctness."""

from __future__ import annotations

import numpy as np
import pytest

from assetdb.embedding.encoder import softmax
from assetdb.embedding.images import load_image
from tests.classify_helpers import catalogue, cli_json, error, rows, sql, state
from tests.conftest import run_cli
from tests.images import noise

LABELS = ["cat", "dog", "car", "red circle"]
TEMPLATES = ["a photo of a {}.", "a blue {}", "{} square"]


def hand_probabilities(encoder, image_vectors, labels, templates):  # noqa: ANN001
    """The CLIP paper's prompt ensembling, computed here from raw encoder outputs."""
    protos = []
    for label in labels:
        t = encoder.encode_texts([tpl.format(label) for tpl in templates]).astype(np.float64)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        mean = t.mean(axis=0)
        protos.append(mean / np.linalg.norm(mean))
    sims = np.asarray(image_vectors, np.float64) @ np.stack(protos).T
    logits = encoder.scoring.logit_scale * sims
    return softmax(logits)


def test_classify_stores_ensembled_probabilities(initialised, encoder, tmp_path):
    catalogue(tmp_path, n=6)
    versions = sql(initialised, "SELECT id, xmin::text AS v FROM assets ORDER BY id")
    args = ["classify", "--labels", ",".join(LABELS), "--field", "animal"]
    for t in TEMPLATES:
        args += ["--template", t]
    report = cli_json(*args)
    assert report["classified"] == 6 and report["dry_run"] is False
    assert report["templates"] == TEMPLATES

    # Results go to the side table: the assets rows (and their HNSW entries) stay as they are.
    assert sql(initialised, "SELECT id, xmin::text AS v FROM assets ORDER BY id") == versions
    stored = rows(initialised)
    vectors = np.stack([np.asarray(r.embedding, np.float64) for r in stored])
    expected = hand_probabilities(encoder, vectors, LABELS, TEMPLATES)
    for r, probs in zip(stored, expected, strict=True):
        field = r.labels["animal"]
        order = np.argsort(-probs)
        assert field["label"] == LABELS[order[0]]
        assert field["probability"] == pytest.approx(probs[order[0]], abs=1e-5)
        assert [x["label"] for x in field["top3"]] == [LABELS[i] for i in order[:3]]
        assert [x["probability"] for x in field["top3"]] == pytest.approx(
            probs[order[:3]], abs=1e-5)
    # Ensembling is not the first template alone: the prototypes differ.
    single = hand_probabilities(encoder, vectors, LABELS, TEMPLATES[:1])
    assert not np.allclose(single, expected, atol=1e-4)

    # The summary counts the stored top labels, every label listed.
    counted = {label: sum(r.labels["animal"]["label"] == label for r in stored)
               for label in LABELS}
    assert report["counts"] == counted and sum(counted.values()) == 6

    # Visible in SQL and in search output.
    by_sql = sql(initialised, "SELECT c.labels->'animal'->>'label' AS l, count(*) AS n "
                              "FROM assets AS a JOIN classifications AS c ON c.asset_id = a.id "
                              "GROUP BY 1")
    assert {r.l: r.n for r in by_sql} == {k: v for k, v in counted.items() if v}
    hits = cli_json("search", "a cat", "-k", "10")
    assert len(hits) == 6
    assert all(h["labels"]["animal"]["label"] in LABELS for h in hits)

    # A second field leaves the first in place.
    cli_json("classify", "--labels", "red,green", "--field", "colour")
    assert all(set(r.labels) == {"animal", "colour"} for r in rows(initialised))

    text = run_cli("classify", "--labels", "cat,dog", "--field", "animal")
    assert text.exit_code == 0, text.output
    assert "label" in text.stdout and "classifications.labels->'animal'" in text.stdout


def test_classify_dry_run_writes_nothing(initialised, tmp_path):
    catalogue(tmp_path, n=3)
    before = state(initialised)
    report = cli_json("classify", "--labels", "cat,dog", "--dry-run")
    assert report["dry_run"] and report["classified"] == 3
    assert sum(report["counts"].values()) == 3 and len(report["results"]) == 3
    assert state(initialised) == before
    assert all(r.labels == {} for r in rows(initialised))


def test_classify_one_file_stores_nothing(initialised, encoder, tmp_path):
    path = noise(tmp_path / "one.png", seed=7)
    out = cli_json("classify", str(path), "--labels", "cat,dog,car",
                   "--template", "a photo of a {}", "--template", "a {} outside")
    image = encoder.encode_images([load_image(path, encoder.image_size)])
    expected = hand_probabilities(encoder, image, ["cat", "dog", "car"],
                                  ["a photo of a {}", "a {} outside"])[0]
    got = {x["label"]: x["probability"] for x in out["probabilities"]}
    assert got == pytest.approx(dict(zip(["cat", "dog", "car"], expected, strict=True)),
                                abs=1e-5)
    probs = [x["probability"] for x in out["probabilities"]]
    assert probs == sorted(probs, reverse=True)
    assert sql(initialised, "SELECT count(*) AS n FROM assets")[0].n == 0
    error("classify", str(path), "--labels", "cat,dog", "--dry-run")


def test_classify_respects_filters_and_hidden(initialised, tmp_path):
    catalogue(tmp_path, n=4)
    ids = [r.id for r in rows(initialised)]
    sql(initialised, "UPDATE assets SET tags = '{product}' WHERE id = ANY(:ids)", ids=ids[:2])
    sql(initialised, "UPDATE assets SET hidden = true WHERE id = :i", i=ids[0])
    report = cli_json("classify", "--labels", "cat,dog", "--tag", "product")
    assert [r["id"] for r in report["results"]] == [ids[1]]  # hidden left out
    report = cli_json("classify", "--labels", "cat,dog", "--tag", "product",
                      "--include-hidden", "--field", "f2")
    assert [r["id"] for r in report["results"]] == ids[:2]
    labelled = {r.id: set(r.labels) for r in rows(initialised)}
    assert labelled == {ids[0]: {"f2"}, ids[1]: {"label", "f2"}, ids[2]: set(), ids[3]: set()}


@pytest.mark.parametrize("args, message", [
    (["--labels", ""], "the label list is empty"),
    (["--labels", " , ,"], "the label list is empty"),
    (["--labels", "cat,cat"], "duplicates"),
    (["--labels", "cat,dog", "--template", "a photo of a cat"], "has no {}"),
    (["--labels", "cat,dog", "--template", "a {} and {x}"], "no other braces"),
    (["--labels", "cat,dog", "--template", "{} and {}"], "exactly one {}"),
    (["--labels", "cat,dog", "--template", "a {{}} photo"], "exactly one {}"),
    (["--labels", "cat,dog", "--field", "bad field!"], "field name"),
    ([], "give the labels"),
    (["--set", "nope"], "no label set named 'nope'"),
    (["--labels", "cat", "--set", "x"], "one of --labels"),
])
def test_classify_bad_input_writes_nothing(initialised, tmp_path, args, message):
    catalogue(tmp_path, n=2)
    before = state(initialised)
    assert message in error("classify", *args)
    assert state(initialised) == before


def test_label_file(initialised, tmp_path):
    catalogue(tmp_path, n=2)
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n   \n")
    before = state(initialised)
    assert "the label list is empty" in error("classify", "--label-file", str(empty))
    assert "not found" in error("classify", "--label-file", str(tmp_path / "missing.txt"))
    assert state(initialised) == before
    good = tmp_path / "labels.txt"
    good.write_text("# animals\ncat\n\ndog, the big one\n")
    report = cli_json("classify", "--label-file", str(good))
    assert report["labels"] == ["cat", "dog, the big one"]
    assert all(r.labels["label"]["label"] in report["labels"] for r in rows(initialised))


def test_label_sets_apply_at_ingest_and_to_catalogue(initialised, tmp_path):
    old = catalogue(tmp_path, n=2, folder="old")
    assert old.exists()
    result = run_cli("labels", "add", "animals", "--labels", "cat,dog,car",
                     "--template", "a photo of a {}", "--template", "a {} photo",
                     "--field", "animal")
    assert result.exit_code == 0, result.output
    run_cli("labels", "add", "colours", "--labels", "red,green", "--disabled")
    listed = cli_json("labels", "list")
    assert [(s["name"], s["field"], s["enabled"]) for s in listed] == [
        ("animals", "animal", True), ("colours", "colours", False)]
    assert listed[0]["templates"] == ["a photo of a {}", "a {} photo"]
    table = run_cli("labels", "list")
    assert table.exit_code == 0 and "animals" in table.stdout and "cat,dog,car" in table.stdout

    # Bad input: nothing saved.
    assert "exists already" in error("labels", "add", "animals", "--labels", "x,y")
    assert "empty" in error("labels", "add", "empty", "--labels", ",")
    assert "has no {}" in error("labels", "add", "t", "--labels", "x", "--template", "x")
    assert "label set name" in error("labels", "add", "bad name", "--labels", "x")
    assert "no label set" in error("labels", "rm", "missing")
    assert len(cli_json("labels", "list")) == 2

    # New assets get the enabled set at ingest; a copy of known content too.
    noise(tmp_path / "new" / "a.png", seed=1)
    noise(tmp_path / "new" / "b.png", seed=2)
    noise(tmp_path / "new" / "b_copy.png", seed=2)
    assert run_cli("ingest", str(tmp_path / "new")).exit_code == 0
    fields = {r.uri.rsplit("/", 2)[1] + "/" + r.uri.rsplit("/", 1)[1]: set(r.labels)
              for r in rows(initialised)}
    assert fields == {"old/n0.png": set(), "old/n1.png": set(), "new/a.png": {"animal"},
                      "new/b.png": {"animal"}, "new/b_copy.png": {"animal"}}

    # Known content in a later run: the stored vector is copied, and classified too.
    noise(tmp_path / "again" / "b_again.png", seed=2)
    result = run_cli("ingest", str(tmp_path / "again"))
    assert result.exit_code == 0 and "copied from identical content" in result.stdout
    assert set(rows(initialised)[-1].labels) == {"animal"}

    # The saved set applied to the whole catalogue, with a filter.
    report = cli_json("classify", "--set", "animals", "--created-after", "2000-01-01")
    assert report["field"] == "animal" and report["classified"] == 6
    assert all("animal" in r.labels for r in rows(initialised))
    assert "--set uses" in error("classify", "--set", "animals", "--field", "x")

    # Disabled sets are not applied at ingest; removed sets are gone.
    assert run_cli("labels", "disable", "animals").exit_code == 0
    noise(tmp_path / "later" / "c.png", seed=3)
    assert run_cli("ingest", str(tmp_path / "later")).exit_code == 0
    assert [set(r.labels) for r in rows(initialised)][-1] == set()
    assert run_cli("labels", "enable", "colours").exit_code == 0
    assert run_cli("labels", "rm", "animals").exit_code == 0
    assert [s["name"] for s in cli_json("labels", "list")] == ["colours"]



def test_changed_content_drops_stale_labels_keeps_moderation(initialised, tmp_path):
    folder = catalogue(tmp_path, n=2)
    cli_json("classify", "--labels", "cat,dog", "--field", "pet")
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - {name: all, texts: [a cat], threshold: -1.0, "
                      "action: hide}\n")
    cli_json("moderate", "--policy", str(policy), "--apply")
    noise(folder / "n0.png", seed=999)  # new content at the same path
    result = run_cli("ingest", str(folder))
    assert result.exit_code == 0 and "1 ingested, 1 unchanged" in result.stdout
    changed, same = rows(initialised)
    assert changed.labels == {} and set(same.labels) == {"pet"}
    assert changed.moderation["all"]["flagged"] is True and changed.hidden is True
