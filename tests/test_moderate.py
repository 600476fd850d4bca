"""Moderation: policy files, scores against a hand computation, exact threshold boundaries,
dry runs writing nothing, hidden assets left out of search and similar, calibration, and
stored policies applied at ingest."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.classify_helpers import catalogue, cli_json, error, rows, sql, state, vec
from tests.conftest import run_cli
from tests.images import noise

TEXTS = ["a photo of a cat", "a red circle"]
COUNTER = ["a blue square"]


def policy_file(path: Path, threshold: float, action: str = "hide", counter: bool = True,
                name: str = "cats", extra_rules: str = "") -> Path:
    counter_line = f"counter_texts = {COUNTER!r}\n".replace("'", '"') if counter else ""
    path.write_text(
        'name = "test"\n\n[[rules]]\n'
        f'name = "{name}"\n'
        f"texts = {TEXTS!r}\n".replace("'", '"')
        + counter_line
        + f"threshold = {threshold!r}\n"  # repr: the exact float goes through TOML
        f'action = "{action}"\n' + extra_rules
    )
    return path


def hand_scores(encoder, vectors: np.ndarray, counter: bool = True) -> np.ndarray:  # noqa: ANN001
    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    score = (vectors @ unit(encoder.encode_texts(TEXTS)).T).max(axis=1)
    if counter:
        score -= (vectors @ unit(encoder.encode_texts(COUNTER)).T).max(axis=1)
    return score


def test_scores_match_hand_computation_and_dry_run_writes_nothing(initialised, encoder,
                                                                  tmp_path):
    catalogue(tmp_path, n=5)
    before = state(initialised)
    for counter in (True, False):
        low = -2.0 if counter else -1.0
        path = policy_file(tmp_path / f"p{counter}.toml", low, action="flag", counter=counter)
        report = cli_json("moderate", "--policy", str(path))  # no --apply
        assert report["applied"] is False and report["scored"] == 5
        assert report["rules"][0]["flagged"] == 5  # the lowest threshold flags everything
        stored = rows(initialised)
        expected = hand_scores(encoder, np.stack([vec(r) for r in stored]), counter)
        got = {f["id"]: f["score"] for f in report["flagged"]}
        assert [got[r.id] for r in stored] == pytest.approx(list(expected), abs=1e-6)
    assert state(initialised) == before  # a dry run changes nothing, hidden included
    text = run_cli("moderate", "--policy", str(path), "--show-flagged")
    assert text.exit_code == 0 and "Dry run: nothing written" in text.stdout
    assert "5 assets scored; 0 would be hidden" in text.stdout
    assert all(r.uri in text.stdout for r in stored)  # --show-flagged lists them
    assert state(initialised) == before


def test_threshold_boundary_is_inclusive(initialised, tmp_path):
    catalogue(tmp_path, n=6)
    path = policy_file(tmp_path / "p.toml", -2.0, action="flag")
    scores = {f["id"]: f["score"] for f in cli_json("moderate", "--policy", str(path))["flagged"]}
    ordered = sorted(scores.values())
    s = ordered[2]  # the third-lowest score, exactly
    target = next(i for i, v in scores.items() if v == s)

    # threshold == score: flagged (>=), as is everything above it.
    policy_file(path, s, action="hide")
    report = cli_json("moderate", "--policy", str(path), "--apply")
    assert report["rules"][0]["flagged"] == 4 and report["hidden"] == 4
    stored = {r.id: r for r in rows(initialised)}
    m = stored[target].moderation["cats"]
    assert m["flagged"] is True and m["score"] == s and m["threshold"] == s
    assert m["action"] == "hide" and m["policy"] == "test"
    assert stored[target].hidden is True
    assert {i for i, r in stored.items() if r.hidden} == {i for i, v in scores.items() if v >= s}

    # The next float above the score: not flagged, and no longer hidden.
    policy_file(path, math.nextafter(s, math.inf), action="hide")
    report = cli_json("moderate", "--policy", str(path), "--apply")
    assert report["rules"][0]["flagged"] == 3
    stored = {r.id: r for r in rows(initialised)}
    assert stored[target].moderation["cats"]["flagged"] is False
    assert stored[target].hidden is False
    assert sum(r.hidden for r in stored.values()) == 3

    # Visible in SQL: the flags and scores are plain jsonb.
    flagged = sql(initialised, "SELECT asset_id FROM classifications WHERE moderation @> "
                               "'{\"cats\": {\"flagged\": true}}' ORDER BY asset_id")
    assert [r.asset_id for r in flagged] == sorted(i for i, v in scores.items() if v > s)

    # A 'flag' rule records flags but hides nothing: re-applying it un-hides.
    policy_file(path, s, action="flag")
    cli_json("moderate", "--policy", str(path), "--apply")
    assert not any(r.hidden for r in rows(initialised))
    assert sum(r.moderation["cats"]["flagged"] for r in rows(initialised)) == 4


def test_hidden_assets_left_out_of_search_and_similar(initialised, tmp_path):
    catalogue(tmp_path, n=6)
    path = policy_file(tmp_path / "p.toml", -2.0, action="flag")
    scores = {f["id"]: f["score"] for f in cli_json("moderate", "--policy", str(path))["flagged"]}
    s = sorted(scores.values())[3]
    policy_file(path, s, action="hide")
    cli_json("moderate", "--policy", str(path), "--apply")
    hidden = {i for i, v in scores.items() if v >= s}
    visible = set(scores) - hidden
    assert len(hidden) == 3 and len(visible) == 3

    hits = cli_json("search", "a cat", "-k", "10")
    assert {h["id"] for h in hits} == visible
    assert all(h["hidden"] is False and "cats" in h["moderation"] for h in hits)
    hits = cli_json("search", "a cat", "-k", "10", "--include-hidden")
    assert {h["id"] for h in hits} == set(scores)
    assert {h["id"] for h in hits if h["hidden"]} == hidden

    query = min(visible)
    assert {h["id"] for h in cli_json("similar", str(query), "-k", "10")} == visible - {query}
    assert {h["id"] for h in cli_json("similar", str(query), "-k", "10", "--include-hidden")} \
        == set(scores) - {query}
    # By example image file: the hidden ones are left out too (the file itself, which
    # is visible, is not: a search by example file leaves nothing else out).
    uri = next(r.uri for r in rows(initialised) if r.id == query)
    assert {h["id"] for h in cli_json("similar", uri, "-k", "10")} == visible


def test_calibrate_prints_distribution_and_writes_nothing(initialised, encoder, tmp_path):
    catalogue(tmp_path, n=8)
    path = policy_file(tmp_path / "p.toml", 0.0)
    before = state(initialised)
    [entry] = cli_json("moderate", "--policy", str(path), "--calibrate", "--bins", "4")
    expected = hand_scores(encoder, np.stack([vec(r) for r in rows(initialised)]))
    assert entry["rule"] == "cats" and entry["scored"] == 8
    assert entry["flagged"] == int((expected >= 0.0).sum())
    assert entry["quantiles"]["p0"] == pytest.approx(expected.min(), abs=1e-6)
    assert entry["quantiles"]["p50"] == pytest.approx(np.median(expected), abs=1e-6)
    assert entry["quantiles"]["p100"] == pytest.approx(expected.max(), abs=1e-6)
    assert len(entry["histogram"]) == 4
    assert sum(b["count"] for b in entry["histogram"]) == 8
    text = run_cli("moderate", "--policy", str(path), "--calibrate")
    assert text.exit_code == 0, text.output
    assert "rule cats" in text.stdout and "#" in text.stdout and "p50" in text.stdout
    assert state(initialised) == before
    assert "--calibrate writes nothing" in error("moderate", "--policy", str(path),
                                                 "--calibrate", "--apply")


BAD_POLICIES = [
    ("bad.toml", "rules = [", "not valid TOML"),
    ("bad.yaml", "rules: [unclosed", "not valid YAML"),
    ("bad.json", "{}", "must end in .toml, .yaml or .yml"),
    ("norules.toml", 'name = "x"\n', "non-empty 'rules' list"),
    ("list.yaml", "- a\n- b\n", "must be a table/mapping"),
    ("unknown.toml", '[[rules]]\nname = "r"\ntexts = ["x"]\nthreshold = 0.2\nwhat = 1\n',
     "unknown key 'what'"),
    ("notexts.toml", '[[rules]]\nname = "r"\ntexts = []\nthreshold = 0.2\n', "texts is empty"),
    ("nothreshold.toml", '[[rules]]\nname = "r"\ntexts = ["x"]\n', "missing threshold"),
    ("strthreshold.toml", '[[rules]]\nname = "r"\ntexts = ["x"]\nthreshold = "high"\n',
     "threshold must be a number"),
    ("high.toml", '[[rules]]\nname = "r"\ntexts = ["x"]\nthreshold = 1.01\n',
     "outside the score range [-1, 1]"),
    ("low.toml", '[[rules]]\nname = "r"\ntexts = ["x"]\nthreshold = -1.5\n',
     "outside the score range [-1, 1]"),
    ("counter.toml", '[[rules]]\nname = "r"\ntexts = ["x"]\ncounter_texts = ["y"]\n'
     "threshold = 2.5\n", "outside the score range [-2, 2]"),
    ("action.toml", '[[rules]]\nname = "r"\ntexts = ["x"]\nthreshold = 0.2\naction = "delete"\n',
     "action must be one of flag, hide"),
    ("dupe.yaml", "rules:\n  - {name: r, texts: [x], threshold: 0.2}\n"
     "  - {name: r, texts: [y], threshold: 0.3}\n", "appears more than once"),
    ("badname.yaml", "rules:\n  - {name: 'a b', texts: [x], threshold: 0.2}\n", "name"),
]


@pytest.mark.parametrize("name, content, message", BAD_POLICIES)
def test_malformed_policy_is_a_clear_error_and_writes_nothing(initialised, tmp_path, name,
                                                              content, message):
    catalogue(tmp_path, n=2)
    path = tmp_path / name
    path.write_text(content)
    before = state(initialised)
    assert message in error("moderate", "--policy", str(path), "--apply")
    assert message in error("policies", "add", str(path))
    assert state(initialised) == before
    assert cli_json("policies", "list") == []


def test_threshold_range_edges_are_valid(initialised, tmp_path):
    catalogue(tmp_path, n=2)
    path = tmp_path / "edges.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: top, texts: [a cat], threshold: 1.0, action: hide}\n"
        "  - {name: bottom, texts: [a cat], threshold: -1.0}\n"
        "  - {name: diff, texts: [a cat], counter_texts: [a dog], threshold: -2.0}\n"
    )
    report = cli_json("moderate", "--policy", str(path), "--apply")
    counts = {r["rule"]: r["flagged"] for r in report["rules"]}
    assert counts == {"top": 0, "bottom": 2, "diff": 2}
    assert all(set(r.moderation) == {"top", "bottom", "diff"} for r in rows(initialised))
    assert not any(r.hidden for r in rows(initialised))


def test_stored_policies_apply_at_ingest(initialised, tmp_path):
    catalogue(tmp_path, n=2, folder="old")
    path = policy_file(tmp_path / "everything.toml", -2.0, action="hide")
    result = run_cli("policies", "add", str(path), "--name", "strict")
    assert result.exit_code == 0, result.output
    assert "exists already" in error("policies", "add", str(path), "--name", "strict")
    assert "belongs to the stored policy 'strict'" in error("policies", "add", str(path),
                                                             "--name", "other")
    [stored] = cli_json("policies", "list")
    assert stored["name"] == "strict" and stored["enabled"] is True
    assert stored["rules"][0]["counter_texts"] == COUNTER
    assert "threshold" in run_cli("policies", "list").stdout

    # New assets are scored at ingest, and hidden by the 'hide' rule (threshold -2).
    noise(tmp_path / "new" / "a.png", seed=1)
    noise(tmp_path / "new" / "b.png", seed=2)
    assert run_cli("ingest", str(tmp_path / "new")).exit_code == 0
    by_folder = {r.uri.rsplit("/", 2)[1] + "/" + r.uri.rsplit("/", 1)[1]: r
                 for r in rows(initialised)}
    assert {k: r.hidden for k, r in by_folder.items()} == {
        "old/n0.png": False, "old/n1.png": False, "new/a.png": True, "new/b.png": True}
    assert by_folder["new/a.png"].moderation["cats"]["flagged"] is True
    assert by_folder["old/n0.png"].moderation == {}
    assert len(cli_json("search", "a cat", "-k", "10")) == 2

    # `moderate` without --policy runs the stored policies; --policy NAME picks one.
    report = cli_json("moderate", "--apply")
    assert report["hidden"] == 4 and report["rules"][0]["policy"] == "strict"
    assert cli_json("search", "a cat", "-k", "10") == []
    assert cli_json("moderate", "--policy", "strict")["scored"] == 4
    assert "no stored policy named 'nope'" in error("moderate", "--policy", "nope")

    # Disabled policies are not applied at ingest; removed ones are gone.
    assert run_cli("policies", "disable", "strict").exit_code == 0
    noise(tmp_path / "later" / "c.png", seed=3)
    assert run_cli("ingest", str(tmp_path / "later")).exit_code == 0
    last = rows(initialised)[-1]
    assert last.moderation == {} and last.hidden is False
    assert "no enabled policy" in error("moderate")
    assert run_cli("policies", "rm", "strict").exit_code == 0
    assert cli_json("policies", "list") == []
    assert "no stored policy" in error("policies", "rm", "strict")


def test_yaml_policy_and_show(initialised, tmp_path):
    catalogue(tmp_path, n=3)
    path = tmp_path / "policy.yml"
    path.write_text("name: yamlpol\ndescription: test\nrules:\n"
                    "  - name: gore\n    texts: [a red circle]\n    threshold: 1.0\n")
    report = cli_json("moderate", "--policy", str(path), "--apply")
    assert report["rules"][0]["action"] == "flag" and report["rules"][0]["flagged"] == 0
    assert all(r.moderation["gore"]["policy"] == "yamlpol" for r in rows(initialised))
    assert run_cli("policies", "add", str(path)).exit_code == 0
    shown = run_cli("policies", "show", "yamlpol")
    assert shown.exit_code == 0 and '"gore"' in shown.stdout
