"""A newcomer's mistakes are answered before any model loads (issue 13, finding 10), and
help and options say what the commands do (finding 11).

ASSETDB_MODEL points at a model directory that does not exist: a command that loaded the
model before checking its arguments would answer "there is no directory at ..." instead of the
mistake. The mistakes run in one subprocess, which then reports whether torch was
imported at all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest

from assetdb.db import embedded
from assetdb.sqlsurface.readonly import json_number
from tests.api_support import free_port
from tests.conftest import run_cli, server_dir
from tests.images import noise, solid

NO_MODEL = "/nonexistent/assetdb-model"
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"

# Each case runs in-process in the child, through the real click CLI.
PROBE = """
import json, os, sys
from click.testing import CliRunner
from assetdb.cli.main import cli

out = []
for env, args in json.loads(sys.argv[1]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    result = CliRunner().invoke(cli, args)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    out.append({"args": args, "code": result.exit_code, "output": result.output,
                "exception": repr(result.exception) if result.exit_code not in (0, 1, 2)
                else None})
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print(json.dumps({"results": out, "heavy": heavy}))
"""


def probe(cases: list[tuple[dict[str, str], list[str]]]) -> dict:
    env = {**os.environ, "ASSETDB_MODEL": NO_MODEL}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_mistakes_are_answered_before_any_model_loads(database_url, tmp_path):
    """database_url: a fresh database, not initialised yet."""
    image = solid(tmp_path / "a.png", (200, 10, 10))
    down = {"ASSETDB_DATABASE_URL": UNREACHABLE, "ASSETDB_DB_RETRY_SECONDS": "0"}
    same: dict[str, str] = {}
    cases = [
        (same, ["search", ""], 1, "the search text is empty"),
        (same, ["search", "x", "-k", "0"], 2, "0 is not in the range 1<=x<=1000"),
        (same, ["search", "x", "-k", "5000"], 2, "5000 is not in the range 1<=x<=1000"),
        (same, ["ingest", str(tmp_path / "missing-folder")], 1, "no such file or folder"),
        (same, ["ingest", "a.png", "-m", str(tmp_path / "none.csv")], 2, "does not exist"),
        (same, ["classify", "--labels", "a,b", "--min-similarity", "0.2"], 2,
         "No such option '--min-similarity'"),
        (same, ["similar", str(tmp_path / "nope.png")], 1, "neither an asset id"),
        (same, ["embed-text", " "], 1, "the text is empty"),
        (same, ["concept", "add", "bad name!", "x"], 1, "concept name 'bad name!'"),
        (same, ["moderate", "--calibrate", "--bins", "0"], 2, "0 is not in the range"),
        (same, ["ask", " ", "--context-only"], 1, "the question is empty"),
        (same, ["ask", "x", "-k", "11"], 2, "11 is not in the range 1<=x<=10"),
        (same, ["ask", "x", "--image", str(tmp_path / "nope.png"), "--context-only"], 1,
         "cannot read"),
        # Not initialised: said before the model loads.
        (same, ["search", "x"], 1, "not initialised: run `assetdb init`"),
        (same, ["similar", str(image)], 1, "not initialised"),
        (same, ["ingest", str(image)], 1, "not initialised"),
        (same, ["classify", "--labels", "a,b"], 1, "not initialised"),
        (same, ["moderate", "--policy", "x"], 1, "not initialised"),
        (same, ["reembed", "--model", "other"], 1, "not initialised"),
        (same, ["embed-text", "red"], 1, "not initialised"),
        (same, ["concept", "add", "red", "red"], 1, "not initialised"),
        (same, ["serve", "--port", str(free_port())], 1, "not initialised"),
        (same, ["ask", "x", "--image", str(image), "--context-only"], 1, "not initialised"),
        # No database at that address.
        *((down, args, 1, "cannot connect to the database") for args in (
            ["search", "x"], ["similar", str(image)], ["ingest", str(image)],
            ["classify", "--labels", "a,b"], ["moderate"], ["reembed"], ["embed-text", "x"],
            ["concept", "add", "red", "red"], ["worker", "--once"], ["init"],
            ["ask", "x", "--context-only"],
            ["serve", "--port", str(free_port())])),
        # A home the embedded server cannot use.
        ({"ASSETDB_DATABASE_URL": ""}, ["demo", "--home", str(image)], 1,
         "cannot use ASSETDB_HOME"),
    ]
    got = probe([(env, args) for env, args, _, _ in cases])
    for (_, args, code, message), result in zip(cases, got["results"], strict=True):
        assert result["code"] == code, (args, result)
        assert message in result["output"], (args, result["output"])
        assert "Traceback" not in result["output"] and "there is no directory at" not in \
            result["output"], (args, result["output"])
    assert got["heavy"] == [], "a mistake path imported the model stack"


def test_a_missing_model_directory_is_named(initialised, monkeypatch, tmp_path):
    monkeypatch.setenv("ASSETDB_MODEL", NO_MODEL)
    result = run_cli("search", "red")
    assert result.exit_code == 1 and f"there is no directory at {NO_MODEL}" in result.output


def test_offline_default_model_points_at_the_demo(monkeypatch):
    from assetdb.demo import MODEL_DIR
    from assetdb.embedding.backends.st_clip import SentenceTransformerClip
    from assetdb.errors import ModelError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        SentenceTransformerClip("clip-ViT-B-32")
    message = str(info.value)
    assert "no network to download it" in message
    assert "assetdb demo" in message and f"ASSETDB_MODEL={MODEL_DIR}" in message


# --- finding 11: help and options ------------------------------------------------------


def test_min_similarity_only_where_there_is_a_query():
    for command in ("search", "similar"):
        assert "--min-similarity" in run_cli(command, "--help").output
    for command in ("export", "classify", "moderate", "reembed"):
        assert "--min-similarity" not in run_cli(command, "--help").output, command


def test_k_range_is_in_help():
    for command in ("search", "similar"):
        assert "1<=x<=1000" in run_cli(command, "--help").output


def test_classify_help_sql_example_runs(initialised, tmp_path):
    solid(tmp_path / "r.png", (220, 20, 20))
    noise(tmp_path / "n.png", 3)
    assert run_cli("ingest", str(tmp_path)).exit_code == 0
    assert run_cli("classify", "--labels", "cat,dog,car", "--field", "animal").exit_code == 0
    helptext = run_cli("classify", "--help").output
    example = re.search(r'assetdb sql "([^"]+)"', helptext)
    assert example, helptext
    result = run_cli("sql", example.group(1), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sum(r["count"] for r in rows) == 2
    assert {r["?column?"] for r in rows} <= {"cat", "dog", "car"}


def test_npy_export_does_not_replace_a_csv_unasked(initialised, tmp_path):
    noise(tmp_path / "imgs" / "a.png", 1)
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    mine = tmp_path / "vectors.csv"
    mine.write_text("my own data\n")
    out = tmp_path / "vectors.npy"
    result = run_cli("export", "--format", "npy", "--out", str(out))
    assert result.exit_code == 1 and "--force" in result.output and str(mine) in result.output
    assert mine.read_text() == "my own data\n" and not out.exists()
    result = run_cli("export", "--format", "npy", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert np.load(out).shape[0] == 1 and mine.read_text().startswith("id,")


def test_sql_json_keeps_numbers_numbers(initialised):
    result = run_cli("sql", "SELECT 1.5::numeric AS a, 2::numeric AS b, avg(x) AS c, "
                     "'NaN'::numeric AS d, count(*) AS n FROM generate_series(1, 2) AS x",
                     "--format", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row == {"a": 1.5, "b": 2, "c": 1.5, "d": "NaN", "n": 2}
    assert json_number(Decimal("12345678901234567890")) == 12345678901234567890


def test_similar_file_and_api_image_search_follow_one_rule(initialised, encoder, tmp_path):
    """Search by an example image leaves nothing out: a catalogued copy comes first at
    1.0, from the CLI (a file) and the API (an upload) alike."""
    from fastapi.testclient import TestClient

    from assetdb.api.app import create_app
    from assetdb.api.deps import ApiConfig

    red = solid(tmp_path / "imgs" / "red.png", (220, 20, 20))
    solid(tmp_path / "imgs" / "blue.png", (20, 20, 220))
    noise(tmp_path / "imgs" / "n.png", 2)
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    cli_hits = json.loads(run_cli("similar", str(red), "--json").stdout)
    config = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)
    with TestClient(create_app(initialised, encoder, config),
                    base_url="http://127.0.0.1:8000") as client:
        r = client.post("/api/search/image", params={"limit": 10},
                        files={"file": ("q.png", red.read_bytes(), "image/png")})
    api_hits = r.json()["results"]
    assert cli_hits[0]["uri"] == str(red.resolve()) and cli_hits[0]["similarity"] > 0.999
    assert [h["id"] for h in cli_hits] == [h["id"] for h in api_hits]


def test_failed_init_stops_the_server_it_started(monkeypatch):
    home = server_dir() / "h"
    monkeypatch.delenv("ASSETDB_DATABASE_URL", raising=False)
    monkeypatch.setenv("ASSETDB_HOME", str(home))
    monkeypatch.setenv("ASSETDB_MODEL", NO_MODEL)
    try:
        result = run_cli("init")
        assert result.exit_code == 1 and "there is no directory at" in result.output, result.output
        assert embedded.running_url(home) is None
        # A server that was already running is left running.
        embedded.start(home)
        assert run_cli("init").exit_code == 1
        assert embedded.running_url(home) is not None
    finally:
        embedded.stop(home)


def test_demo_server_is_stopped_by_demo_stop(monkeypatch):
    home = server_dir()
    monkeypatch.delenv("ASSETDB_DATABASE_URL", raising=False)
    monkeypatch.setenv("ASSETDB_HOME", str(home))
    try:
        embedded.start(home / "demo")
        result = run_cli("db", "stop")
        assert result.exit_code == 0 and "assetdb demo --stop" in result.output
        assert embedded.running_url(home / "demo") is not None
        result = run_cli("demo", "--stop")
        assert result.exit_code == 0 and "stopped the demo's server" in result.output
        assert embedded.running_url(home / "demo") is None
        assert "not running" in run_cli("demo", "--stop").output
    finally:
        embedded.stop(home / "demo")

