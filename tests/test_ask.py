"""`assetdb ask` and POST /api/ask (issue 20): retrieval on the demo shapes catalogue
with its made-up product facts, the context pack (the same bytes from the CLI and the
API), what reaches the LLM (llm-echo, a real llm plugin that returns its prompt, and test
models registered through llm's plugin hook), and every failure said clearly with no
half answer printed as if it were whole. No network: llm keeps its configuration in a
temporary LLM_USER_PATH, and every model here answers locally."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path

import llm
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from assetdb.api.app import create_app
from assetdb.api.config import ApiConfig
from assetdb.ask.pack import NO_IMAGES_NOTE
from assetdb.ask.retrieve import UserImage, retrieve
from assetdb.catalog.catalogue import Catalog
from assetdb.cli.ask_cmds import CUT_OFF
from assetdb.config import Settings
from assetdb.db.engine import reset_engines
from assetdb.demo import MODEL_DIR, shapes
from tests import ask_models
from tests.api_support import running_server
from tests.conftest import _with_database, run_cli
from tests.test_browser import ARGS, CHROMIUM

CATALOGUE = 96  # 2 images of each (shape, colour) product
QUESTION = "What is the part number of this item?"
BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture(autouse=True)
def llm_home(tmp_path, monkeypatch):
    """llm's keys and defaults in a temporary folder, never the user's; the test models
    registered through llm's hook."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    monkeypatch.delenv("ASSETDB_ASK_MODEL", raising=False)
    llm.plugins.pm.register(ask_models, name=ask_models.PLUGIN_NAME)
    yield tmp_path / "llm"
    llm.plugins.pm.unregister(name=ask_models.PLUGIN_NAME)


@pytest.fixture(scope="module")
def demo_encoder():
    from assetdb.embedding.encoder import load_encoder

    return load_encoder(str(MODEL_DIR))


@pytest.fixture(scope="module")
def shop(server_url, tmp_path_factory, demo_encoder):
    """The demo catalogue in small: its descriptions from a description.json of
    image_path/description entries (the knowledge base's form), then titles, tags and
    metadata from its metadata.jsonl."""
    from assetdb.ingest.ingest_files import ingest

    name = f"ask{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    folder = tmp_path_factory.mktemp("ask-catalogue")
    sidecar = shapes.write_catalogue(folder, CATALOGUE, seed=31)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASSETDB_DATABASE_URL", _with_database(server_url, name))
        mp.setenv("ASSETDB_MODEL", str(MODEL_DIR))
        mp.setenv("ASSETDB_HOME", str(folder / "home"))
        assert run_cli("init").exit_code == 0
        settings = Settings.from_env()
        report = ingest(settings, [str(folder / "images")],
                        metadata_file=folder / "description.json", encoder=demo_encoder)
        assert report.ingested == CATALOGUE and report.failed == 0
        ingest(settings, [str(folder / "images")], metadata_file=sidecar, encoder=demo_encoder)
        yield settings, folder
    reset_engines()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(shop, monkeypatch):
    settings, folder = shop
    monkeypatch.setenv("ASSETDB_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ASSETDB_MODEL", str(MODEL_DIR))
    monkeypatch.setenv("ASSETDB_HOME", str(folder / "home"))
    return settings, folder


def fresh_images(folder: Path, count: int, seed: int) -> list[tuple[Path, shapes.ShapeImage]]:
    """User photos: drawn anew by the demo renderer (other seeds, so other positions,
    sizes, angles and backgrounds): none is in the catalogue."""
    return list(shapes.generate(folder, count, seed=seed, balanced=True))


def part_no(item: shapes.ShapeImage) -> str:
    return shapes.product_facts(item.shape, item.color)[0]


def asset_id_of(settings: Settings, item: shapes.ShapeImage) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT min(id) FROM assets WHERE tags @> %s",
                            ([item.shape, item.color],)).fetchone()[0]


def client(settings, encoder, **config) -> TestClient:
    cfg = ApiConfig(**{"token": None, "max_upload_bytes": 2**20, "max_results": 500,
                       "ask": True, **config})
    return TestClient(create_app(settings, encoder, cfg), base_url=BASE_URL)


def lines(response) -> list[dict]:  # noqa: ANN001
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


# ----- retrieval, the pack, and what reaches the model -------------------------------


def test_fresh_photos_find_their_product_and_llm_echo_gets_its_description(
        env, demo_encoder, tmp_path):
    """The issue's bar on a small catalogue: the right product (same shape and colour)
    is among the k=2 sources for >= 0.9 of new photos (here 23 of 24;
    benchmarks/ask_retrieval.py measures 192 on the full demo catalogue); and through
    llm-echo the prompt carries that product's description, with the user's photo
    attached first."""
    settings, _ = env
    # 24 photos, 4 of each shape in 24 of the 48 products (each costs a CLIP encode).
    photos = fresh_images(tmp_path / "photos", 48, seed=4242)[::2]
    catalogue = Catalog(settings)
    found = 0
    for path, item in photos:
        pack = retrieve(catalogue, QUESTION, image=UserImage(path.name, path.read_bytes()),
                        encoder=lambda: demo_encoder)
        assert len(pack.sources) == 2
        found += any(item.shape in s.tags and item.color in s.tags for s in pack.sources)
    assert found / len(photos) >= 0.9, found

    path, item = photos[0]
    result = run_cli("ask", QUESTION, "--image", str(path), "--llm", "echo", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    echoed = json.loads(out["answer"])  # llm-echo answers with what it was given
    assert part_no(item) in echoed["prompt"]
    assert shapes.product_description(item.shape, item.color) in echoed["prompt"]
    assert echoed["attachments"][0]["id"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [a["type"] for a in echoed["attachments"]] == ["image/png", "image/jpeg",
                                                          "image/jpeg"]
    assert [s["id"] for s in out["sources"]] == [
        int(x) for x in _cited(echoed["prompt"])]


def _cited(prompt: str) -> list[str]:
    import re

    return re.findall(r"^\[asset (\d+)\]", prompt, flags=re.M)


def test_the_context_pack_is_the_same_bytes_from_the_cli_and_the_api(env, demo_encoder,
                                                                       tmp_path):
    settings, _ = env
    (path, _item), = fresh_images(tmp_path / "photos", 1, seed=77)
    cli = run_cli("ask", QUESTION, "--image", str(path), "-k", "3", "--tag", "large",
                  "--context-only", "--json")
    assert cli.exit_code == 0, cli.output
    with client(settings, demo_encoder) as c:
        api = c.post("/api/ask", params={"tag": "large"},
                     data={"question": QUESTION, "k": "3", "context_only": "true"},
                     files={"file": (path.name, path.read_bytes(), "image/png")})
        assert api.status_code == 200, api.text
        assert api.content == cli.stdout_bytes
        # By text too, and about a catalogued asset.
        for args, form in ((["-k", "2"], {"k": "2"}), (["--asset", "5"], {"asset_id": "5"})):
            cli = run_cli("ask", "Which parts are red circles?", *args, "--context-only",
                          "--json")
            api = c.post("/api/ask", data={"question": "Which parts are red circles?",
                                           "context_only": "true", **form})
            assert cli.exit_code == 0 and api.status_code == 200, (cli.output, api.text)
            assert api.content == cli.stdout_bytes
    pack = json.loads(cli.stdout)
    assert pack["mode"] == "asset" and pack["sources"][0]["id"] == 5
    assert pack["sources"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    text = run_cli("ask", "Which parts are red circles?", "--asset", "5", "--context-only")
    assert text.exit_code == 0
    assert text.stdout.startswith(pack["prompt"]) and pack["sources"][0]["uri"] in text.stdout


def test_filters_narrow_the_sources(env):
    result = run_cli("ask", "a red circle", "-k", "5", "--tag", "small", "--meta",
                     "color=red", "--context-only", "--json")
    assert result.exit_code == 0, result.output
    sources = json.loads(result.stdout)["sources"]
    assert sources and all("small" in s["tags"] and s["metadata"]["color"] == "red"
                           for s in sources)
    assert json.loads(result.stdout)["filters"] == {"metadata": {"color": "red"},
                                                    "tags_all": ["small"]}


def test_a_vision_model_gets_the_photo_and_each_source_image(env, tmp_path):
    (path, item), = fresh_images(tmp_path / "photos", 1, seed=5)
    result = run_cli("ask", QUESTION, "--image", str(path), "--llm", "vision-check")
    assert result.exit_code == 0, result.output
    answer, _, sources = result.stdout.partition("\n\nSources:\n")
    assert answer.startswith("I looked at 3 images. ")  # the chunks, in order
    seen = json.loads(answer.removeprefix("I looked at 3 images. "))
    assert seen["images"][0] == {"type": "image/png", "format": "PNG",
                                 "size": list(Image.open(path).size)}
    assert all(i["format"] == "JPEG" and max(i["size"]) <= 512 for i in seen["images"][1:])
    assert "Images attached, in order: 1. the user's image; 2. [asset" in seen["prompt"]
    assert sources.count("[asset ") == 2 and NO_IMAGES_NOTE not in seen["prompt"]


def test_a_model_without_images_gets_the_descriptions_and_a_note(env, tmp_path):
    (path, item), = fresh_images(tmp_path / "photos", 1, seed=6)
    result = run_cli("ask", QUESTION, "--image", str(path), "--llm", "text-only", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    got = json.loads(out["answer"])
    assert got["attachments"] == 0 and out["images_attached"] == 0
    assert NO_IMAGES_NOTE in got["prompt"] and "cannot take images" in out["note"]
    assert "cannot take images" in result.stderr


def test_the_api_streams_the_answer_as_ndjson(env, demo_encoder, tmp_path, monkeypatch):
    settings, _ = env
    monkeypatch.setenv("ASSETDB_ASK_MODEL", "vision-check")
    (path, _item), = fresh_images(tmp_path / "photos", 1, seed=8)
    with client(settings, demo_encoder) as c:
        r = c.post("/api/ask", data={"question": QUESTION},
                   files={"file": ("photo.png", path.read_bytes(), "image/png")})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        events = lines(r)
        assert [e["event"] for e in events] == ["sources", "answer", "answer", "answer", "done"]
        assert events[0]["model"] == "vision-check" and len(events[0]["sources"]) == 2
        assert events[0]["images_attached"] == 3
        assert "".join(e["text"] for e in events[1:-1]).startswith("I looked at 3 images.")
        # A failure after the first chunk ends the stream with an error line.
        monkeypatch.setenv("ASSETDB_ASK_MODEL", "fails-midway")
        events = lines(c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"}))
        assert [e["event"] for e in events] == ["sources", "answer", "error"]
        assert "connection reset" in events[-1]["error"]
        # A failure before it is a plain JSON error with its status.
        monkeypatch.setenv("ASSETDB_ASK_MODEL", "fails-at-once")
        r = c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"})
        assert r.status_code == 502 and "provider is down" in r.json()["error"]


def test_the_api_is_off_unless_enabled_and_needs_the_token(env, demo_encoder, monkeypatch):
    settings, _ = env
    monkeypatch.setenv("ASSETDB_ASK_MODEL", "echo")
    with client(settings, demo_encoder, ask=False) as c:
        r = c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"})
        assert r.status_code == 403 and "ASSETDB_ASK=1" in r.json()["error"]
        assert c.get("/api/info").json()["ask"] is False
    with client(settings, demo_encoder, token="s3cret") as c:
        assert c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"}
                      ).status_code == 401
        r = c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"},
                   headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and lines(r)[-1]["event"] == "done"
        assert "s3cret" not in r.text
    # A page on another site cannot make the server ask (a form POST needs no preflight).
    with client(settings, demo_encoder) as c:
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"},
                       headers=headers)
            assert r.status_code == 403 and "other sites" in r.json()["error"]
        r = c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"},
                   headers={"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 200 and lines(r)[-1]["event"] == "done"


# ----- failures: a clear message, nothing half-printed as an answer -------------------


def test_bad_input_and_missing_llm_are_said_before_anything_else(env, tmp_path, monkeypatch):
    (path, _item), = fresh_images(tmp_path / "photos", 1, seed=9)
    cases = [
        (["   "], "the question is empty"),
        ([QUESTION, "--image", str(path), "--asset", "3"], "not both"),
        ([QUESTION, "--image", str(path)], "no LLM is configured"),
        ([QUESTION, "--image", str(path), "--llm", "no-such-model"], "unknown LLM"),
        ([QUESTION, "--image", str(path), "--llm", "echo-needs-key"], "llm keys set"),
        ([QUESTION, "--asset", "999999", "--llm", "echo"], "no asset with id 999999"),
        ([QUESTION, "--tag", "no-such-tag", "--llm", "echo"], "no asset passes the filters"),
        ([QUESTION, "--image", str(tmp_path / "missing.png"), "--llm", "echo"], "cannot read"),
    ]
    broken = tmp_path / "broken.png"
    broken.write_bytes(path.read_bytes()[:60])
    cases.append(([QUESTION, "--image", str(broken), "--llm", "echo"], "image"))
    for args, message in cases:
        result = run_cli("ask", *args)
        assert result.exit_code != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == "", args
    # llm not installed: the message names the extra.
    monkeypatch.setitem(sys.modules, "llm", None)
    result = run_cli("ask", QUESTION, "--asset", "3", "--llm", "echo")
    assert result.exit_code == 1 and "pip install 'assetdb[ask]'" in result.stderr


def test_llms_own_default_model_is_used_when_set(env, llm_home):
    llm.set_default_model("echo")
    result = run_cli("ask", QUESTION, "--asset", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "echo"


def test_provider_failures_leave_no_half_answer(env, monkeypatch):
    at_once = run_cli("ask", QUESTION, "--asset", "3", "--llm", "fails-at-once")
    assert at_once.exit_code == 1 and at_once.stdout == ""
    assert "provider is down" in at_once.stderr
    midway = run_cli("ask", QUESTION, "--asset", "3", "--llm", "fails-midway")
    assert midway.exit_code == 1
    assert midway.stdout == "The part number is \n" + CUT_OFF + "\n"  # no sources after it
    assert "cut off" in midway.stderr and "connection reset" in midway.stderr
    as_json = run_cli("ask", QUESTION, "--asset", "3", "--llm", "fails-midway", "--json")
    assert as_json.exit_code == 1 and as_json.stdout == ""
    monkeypatch.setenv("ASSETDB_ASK_TIMEOUT", "0.5")
    hung = run_cli("ask", QUESTION, "--asset", "3", "--llm", "hangs")
    assert hung.exit_code == 1 and hung.stdout == ""
    assert "sent nothing for 0.5 s" in hung.stderr


def test_api_errors_are_json_with_a_status(env, demo_encoder, monkeypatch):
    settings, _ = env
    monkeypatch.setenv("ASSETDB_ASK_MODEL", "echo")
    with client(settings, demo_encoder) as c:
        bad = io.BytesIO(b"\x89PNG\r\n\x1a\n not really")
        cases = [
            ({"question": " "}, None, {}, 400),
            ({"question": QUESTION}, ("x.png", bad.getvalue(), "image/png"), {}, 400),
            ({"question": QUESTION, "asset_id": "999999"}, None, {}, 404),
            ({"question": QUESTION}, None, {"tag": "no-such-tag"}, 404),
        ]
        for form, file, params, status in cases:
            r = c.post("/api/ask", data=form, params=params,
                       files={"file": file} if file else None)
            assert r.status_code == status, (form, r.text)
            assert r.json()["error"]
        monkeypatch.setenv("ASSETDB_ASK_MODEL", "no-such-model")
        r = c.post("/api/ask", data={"question": QUESTION, "asset_id": "3"})
        assert r.status_code == 503 and "unknown LLM" in r.json()["error"]


def test_demo_descriptions_carry_distinct_made_up_facts():
    facts = {shapes.product_facts(s, c) for s in shapes.SHAPES for c in shapes.COLORS}
    assert len({p for p, _ in facts}) == len(shapes.SHAPES) * len(shapes.COLORS)
    assert shapes.product_description("circle", "orange").startswith("An orange circle part.")


# ----- the page ------------------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is absent (tests/test_browser.py)")
def test_ask_panels_stream_the_answer_in_chromium(env, demo_encoder, tmp_path, monkeypatch):
    """The page's "Ask" panels: on an asset's detail and beside an image search, the
    answer streams in with its sources; with ask off, no panel shows."""
    from playwright.sync_api import expect, sync_playwright

    settings, _ = env
    monkeypatch.setenv("ASSETDB_ASK_MODEL", "vision-check")
    (photo, _item), = fresh_images(tmp_path / "photos", 1, seed=12)
    config = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500, ask=True)
    with running_server(create_app(settings, demo_encoder, config)) as base, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 860})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.locator("#grid .card button").first.click()
        panel = page.locator("#d-ask")
        expect(panel).to_be_visible()
        panel.locator("input[name=question]").fill("What does this part weigh?")
        panel.locator("button[type=submit]").click()
        expect(panel.locator(".ask-answer")).to_contain_text("I looked at 2 images.",
                                                             timeout=30_000)
        expect(panel.locator(".ask-sources .card")).to_have_count(2)
        page.screenshot(path=str(tmp_path / "ask-detail.png"))
        page.click("#d-close")

        # Beside an image search: the photo goes with the question.
        page.set_input_files("#file", str(photo))
        side = page.locator("#ask-image")
        expect(side).to_be_visible()
        side.locator("input[name=question]").fill("What is the part number of this item?")
        side.locator("button[type=submit]").click()
        expect(side.locator(".ask-answer")).to_contain_text("I looked at 3 images.",
                                                            timeout=30_000)
        expect(side.locator(".ask-sources .card")).to_have_count(2)
        assert errors == []
        browser.close()

    off = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)
    with running_server(create_app(settings, demo_encoder, off)) as base, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page()
        page.goto(base + "/")
        page.locator("#grid .card button").first.click()
        expect(page.locator("#detail")).to_be_visible()
        expect(page.locator("#d-ask")).to_be_hidden()
        browser.close()
    assert Path(tmp_path / "ask-detail.png").is_file()
