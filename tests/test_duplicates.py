"""Near-duplicates (issue 21) on generated photo-like images: hashes at ingest and what
ingest tells, grouping and keepers, the threshold, --tag/--hide and their undoing, the
backfill, the resumable neighbour scan, the SQL functions, the API and keeper marks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance
from sqlalchemy import text

from assetdb.api.app import create_app
from assetdb.api.deps import ApiConfig
from assetdb.catalog.assets import get_asset
from assetdb.db.engine import connect
from assetdb.ingest.ingest_files import ingest
from tests.conftest import run_cli

BASE_URL = "http://127.0.0.1:8000"


def photo(path: Path, seed: int, size: tuple[int, int] = (320, 240)) -> Path:
    """A smooth, photo-like picture (colour waves and blobs); one look per seed."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(4):
            fx, fy, ph = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.3)]
            img[..., c] += rng.uniform(0.2, 1) * np.sin(2 * np.pi * (fx * x + fy * y) + ph)
    for _ in range(5):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.05, 0.2)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] += rng.uniform(-2, 2, 3)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.astype(np.uint8), "RGB").save(path, quality=95)
    return path


def variants(src: Path, out: Path) -> dict[str, Path]:
    img = Image.open(src).convert("RGB")
    w, h = img.size
    made = {
        "half": (img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "jpg", 90),
        "q40": (img, "jpg", 40),
        "png": (img, "png", None),
        "crop": (img.crop((w // 20, h // 20, w - w // 20, h - h // 20)), "jpg", 90),
        "bright": (ImageEnhance.Brightness(img).enhance(1.1), "jpg", 90),
    }
    paths = {}
    out.mkdir(parents=True, exist_ok=True)
    for name, (im, ext, q) in made.items():
        p = out / f"{src.stem}-{name}.{ext}"
        im.save(p, quality=q) if q else im.save(p)
        paths[name] = p
    return paths


@pytest.fixture
def catalogue(initialised, encoder, tmp_path) -> dict[str, int]:
    """Originals a, b, c (ingested first), then a's and b's variants (ingested after)."""
    originals = tmp_path / "originals"
    paths = {n: photo(originals / f"{n}.jpg", seed) for n, seed in (("a", 1), ("b", 2),
                                                                     ("c", 3))}
    first = ingest(initialised, [str(originals)], encoder=encoder)
    assert first.ingested == 3 and first.near_duplicates == []
    copies = tmp_path / "copies"
    va, vb = variants(paths["a"], copies), variants(paths["b"], copies)
    second = ingest(initialised, [str(va["half"]), str(va["q40"]), str(va["png"]),
                                  str(vb["crop"]), str(vb["bright"])], encoder=encoder)
    assert second.failed == 0
    with connect(initialised) as conn:
        ids = {Path(r.uri).stem: r.id for r in conn.execute(text("SELECT id, uri FROM assets"))}
    catalogue = {"report": second, **ids}  # type: ignore[dict-item]
    return catalogue


def _groups(*args: str) -> dict:
    result = run_cli("duplicates", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _members(out: dict) -> list[set[int]]:
    return sorted(({m["id"] for m in g["members"]} for g in out["groups"]), key=min)


def test_ingest_hashes_and_reports_near_duplicates_of_older_assets(catalogue, initialised):
    report = catalogue["report"]
    found = {d["id"]: d["duplicate_of"] for d in report.near_duplicates}
    a, b = catalogue["a"], catalogue["b"]
    assert found == {catalogue["a-half"]: a, catalogue["a-q40"]: a, catalogue["a-png"]: a,
                     catalogue["b-crop"]: b, catalogue["b-bright"]: b}, report.near_duplicates
    assert all(0.8 <= d["similarity"] <= 1.0 for d in report.near_duplicates)
    # Recorded: the asset's detail says so (the API's detail is the same object).
    assert get_asset(initialised, catalogue["a-half"]).duplicate_of == a
    assert get_asset(initialised, a).duplicate_of is None
    with connect(initialised) as conn:
        hashed = conn.execute(text("SELECT count(*) FROM asset_hashes")).scalar_one()
    assert hashed == 8


def test_ingest_summary_line_tells(initialised, tmp_path):
    photo(tmp_path / "x" / "one.jpg", 7)
    assert run_cli("ingest", str(tmp_path / "x")).exit_code == 0
    Image.open(tmp_path / "x" / "one.jpg").resize((160, 120)).save(tmp_path / "small.jpg")
    result = run_cli("ingest", str(tmp_path / "small.jpg"))
    assert result.exit_code == 0, result.output
    assert "1 near-duplicates of older assets" in result.stdout
    assert "looks like id" in result.stderr


def test_groups_keeper_largest_then_oldest_and_similarity_to_keeper(catalogue):
    out = _groups()
    a, b, c = catalogue["a"], catalogue["b"], catalogue["c"]
    assert _members(out) == [{a, catalogue["a-half"], catalogue["a-q40"], catalogue["a-png"]},
                             {b, catalogue["b-crop"], catalogue["b-bright"]}]
    assert all(c not in s for s in _members(out))
    by_keeper = {g["keeper_id"]: g for g in out["groups"]}
    # a, a-q40 and a-png share the largest size: the oldest (a, ingested first) keeps.
    assert set(by_keeper) == {a, b}
    for g in out["groups"]:
        keeper = g["members"][0]
        assert keeper["keeper"] and keeper["similarity"] == 1.0 and keeper["distance"] == 0
        assert all(0.8 <= m["similarity"] < 1.0 or m["distance"] == 0
                   for m in g["members"][1:])
    assert out["rule"] == "hash" and out["threshold"] == 0.8 and out["duplicates"] == 5

    result = run_cli("duplicates", "--csv")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("group_id,asset_id,keeper,similarity")
    assert len(lines) == 1 + 7
    table = run_cli("duplicates", "--kind", "image")
    assert "2 groups, 5 duplicates among 8 assets" in table.stdout
    assert "keep" in table.stdout


def test_a_strict_threshold_separates_and_semantic_mode_uses_vectors(catalogue):
    strict = _groups("--threshold", "1.0")
    # Only identical hashes remain (the PNG re-save of a, maybe the q40 copy).
    assert all(m["distance"] == 0 for g in strict["groups"] for m in g["members"])
    assert catalogue["b-crop"] not in {m["id"] for g in strict["groups"] for m in g["members"]}
    semantic = _groups("--semantic", "--threshold", "0.999999")
    assert semantic["rule"] == "semantic" and semantic["max_distance"] is None
    everything = _groups("--semantic", "--threshold", "0")
    assert sum(len(g["members"]) for g in everything["groups"]) >= 2


NOWHERE = "postgresql://nobody@127.0.0.1:9/none"  # answered before any connection


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_threshold_outside_0_1_is_refused(monkeypatch, value):
    monkeypatch.setenv("ASSETDB_DATABASE_URL", NOWHERE)
    result = run_cli("duplicates", "--threshold", value)
    assert result.exit_code != 0
    assert "between 0 and 1" in result.output


def test_bad_options_are_refused_before_any_work(monkeypatch):
    monkeypatch.setenv("ASSETDB_DATABASE_URL", NOWHERE)
    for args, message in ((["--hide", "--unhide"], "exclude each other"),
                          (["--json", "--csv"], "exclude each other"),
                          (["--neighbours", "0"], "between 1 and 100"),
                          (["--tag", " "], "tag is empty")):
        result = run_cli("duplicates", *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)


def _search_ids(settings, asset_id: int, **filters) -> set[int]:
    from assetdb.catalog.catalogue import Catalog
    from assetdb.search.filters import Filters

    hits = Catalog(settings).similar(asset_id, k=50, filters=Filters(**filters))
    return {h.id for h in hits}


def test_tag_and_hide_are_reversible_and_keepers_stay(catalogue, initialised):
    keepers = {catalogue["a"], catalogue["b"]}
    others = {catalogue[n] for n in ("a-half", "a-q40", "a-png", "b-crop", "b-bright")}
    before = _search_ids(initialised, catalogue["c"])
    assert before >= others | keepers

    out = _groups("--tag", "duplicate", "--hide")
    assert out["tagged"] == 5 and out["hidden"] == 5
    for i in others:
        asset = get_asset(initialised, i)
        assert "duplicate" in asset.tags and asset.hidden
    for i in keepers:
        assert not get_asset(initialised, i).hidden
    # Hidden duplicates leave searches, and come back with include_hidden.
    assert _search_ids(initialised, catalogue["c"]) == before - others
    assert _search_ids(initialised, catalogue["c"], include_hidden=True) == before
    # Still found as groups (hidden ones included), so that they can be shown again.
    again = _groups()
    assert again["duplicates"] == 5
    assert all(m["hidden_as_duplicate"] for g in again["groups"] for m in g["members"]
               if not m["keeper"])
    # New moderation results (a rule that flags nothing) do not show a hidden duplicate.
    from assetdb.classify.store import write_moderation

    with connect(initialised) as conn:
        write_moderation(conn, [catalogue["a-half"]], [{"gore": {
            "score": 0.1, "flagged": False, "action": "hide"}}])
    assert get_asset(initialised, catalogue["a-half"]).hidden

    undone = _groups("--unhide", "--untag", "duplicate")
    assert undone["unhidden"] == 5 and undone["untagged"] == 5
    for i in others:
        asset = get_asset(initialised, i)
        assert "duplicate" not in asset.tags and not asset.hidden
    assert _search_ids(initialised, catalogue["c"]) == before


def test_backfill_hashes_older_assets_and_no_backfill_reports_them(catalogue, initialised):
    with connect(initialised) as conn:
        conn.execute(text("DELETE FROM asset_hashes"))
    skipped = _groups("--no-backfill")
    assert skipped["unhashed"] == 8 and skipped["hashed"] == 0
    assert skipped["groups"] == []
    result = run_cli("duplicates", "--no-backfill")
    assert "8 assets have no perceptual hash" in result.stderr
    filled = _groups()
    assert filled["hashed"] == 8 and filled["unhashed"] == 0 and filled["duplicates"] == 5


def test_unreadable_file_is_reported_by_the_backfill_and_the_rest_go_on(catalogue,
                                                                        initialised):
    with connect(initialised) as conn:
        conn.execute(text("DELETE FROM asset_hashes"))
        uri = conn.execute(text("SELECT uri FROM assets WHERE id = :i"),
                           {"i": catalogue["c"]}).scalar_one()
    Path(uri).unlink()
    out = _groups()
    assert out["hashed"] == 7 and out["unhashed"] == 1
    assert [f["uri"] for f in out["hash_failures"]] == [uri]
    assert out["duplicates"] == 5


def test_neighbour_scan_is_kept_and_resumes_with_new_assets(catalogue, initialised, encoder,
                                                             tmp_path):
    first = _groups()
    assert first["scanned"] == 8
    assert _groups()["scanned"] == 0  # kept: nothing to look up again
    photo(tmp_path / "late" / "d.jpg", 9)
    ingest(initialised, [str(tmp_path / "late")], encoder=encoder)
    assert _groups()["scanned"] == 1
    assert _groups("--neighbours", "5")["scanned"] == 9  # another breadth: looked up again


def test_api_lists_groups_and_an_authorised_user_marks_a_keeper(catalogue, initialised,
                                                                encoder):
    from assetdb.sqlsurface.readonly import run_readonly

    cfg = ApiConfig(token="s3cret", max_upload_bytes=2**20, max_results=500)
    _groups()  # the CLI stores the neighbour scan the API reads, and the groups
    # The SQL functions, as analysts' read-only role.
    groups = run_readonly(initialised, "SELECT group_id, asset_id, is_keeper "
                                       "FROM assetdb_duplicates()")
    assert {r[1] for r in groups.rows} == set(catalogue[n] for n in (
        "a", "a-half", "a-q40", "a-png", "b", "b-crop", "b-bright"))
    assert {r[0] for r in groups.rows if r[2]} == {catalogue["a"], catalogue["b"]}
    near = run_readonly(initialised, f"SELECT asset_id FROM assetdb_near_duplicates("
                                     f"{catalogue['a']})")
    assert {r[0] for r in near.rows} == {catalogue[n] for n in ("a-half", "a-q40", "a-png")}
    with TestClient(create_app(initialised, encoder, cfg), base_url=BASE_URL) as c:
        body = c.get("/api/duplicates").json()
        assert body["duplicates"] == 5 and body["unscanned"] == 0
        member = body["groups"][0]["members"][1]
        assert member["thumbnail_url"].startswith(f"/api/assets/{member['id']}/thumbnail")
        assert c.get("/api/duplicates?threshold=2").status_code in (400, 422)
        target = catalogue["a-half"]
        assert c.put(f"/api/duplicates/keeper/{target}").status_code == 401
        assert c.put(f"/api/duplicates/keeper/{target}",
                     headers={"Authorization": "Bearer wrong"}).status_code == 403
        ok = c.put(f"/api/duplicates/keeper/{target}",
                   headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200, ok.text
        after = c.get("/api/duplicates").json()
        assert target in {g["keeper_id"] for g in after["groups"]}
        assert c.put("/api/duplicates/keeper/999999",
                     headers={"Authorization": "Bearer s3cret"}).status_code == 404
        page = c.get("/duplicates")
        assert page.status_code == 200 and "duplicates.js" in page.text
    # The CLI follows the mark too.
    assert target in {g["keeper_id"] for g in _groups()["groups"]}


def test_workers_hash_what_they_embed(initialised, tmp_path):
    for seed in (11, 12):
        photo(tmp_path / "queued" / f"p{seed}.jpg", seed)
    assert run_cli("ingest", str(tmp_path / "queued"), "--no-embed").exit_code == 0
    result = run_cli("worker", "--once")
    assert result.exit_code == 0, result.output
    with connect(initialised) as conn:
        hashed = conn.execute(text(
            "SELECT count(*) FROM asset_hashes h JOIN assets a ON a.id = h.asset_id "
            "AND a.sha256 = h.sha256 WHERE a.status = 'ready'")).scalar_one()
    assert hashed == 2


def test_assets_moderation_hides_stay_out_unless_asked_for(catalogue, initialised):
    with connect(initialised) as conn:  # as a moderation 'hide' rule would leave it
        conn.execute(text("UPDATE assets SET hidden = true WHERE id = :i"),
                     {"i": catalogue["b-crop"]})
    ids = {m["id"] for g in _groups()["groups"] for m in g["members"]}
    assert catalogue["b-crop"] not in ids and catalogue["b-bright"] in ids
    wide = {m["id"] for g in _groups("--include-hidden")["groups"] for m in g["members"]}
    assert catalogue["b-crop"] in wide


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                    reason="Chromium is absent: apt-get install chromium")
def test_page_shows_groups_side_by_side_and_marks_a_keeper_in_chromium(catalogue, initialised,
                                                                        encoder):
    from playwright.sync_api import sync_playwright

    from tests.api_support import running_server
    from tests.test_browser import ARGS, CHROMIUM

    _groups()
    app = create_app(initialised, encoder, ApiConfig(token="s3cret", max_upload_bytes=2**20,
                                                     max_results=500))
    target = catalogue["b-bright"]
    with running_server(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page()
        page.goto(base + "/duplicates")
        page.wait_for_selector(".dup-group")
        assert page.locator(".dup-group").count() == 2
        assert page.locator(".dup-member").count() == 7
        assert page.locator(".dup-member.keeper").count() == 2
        card = page.locator(f'.dup-member[data-id="{target}"]')
        assert "×" in card.inner_text() and "KB" in card.inner_text()
        page.fill("#token", "s3cret")
        card.locator("button.mark").click()
        page.wait_for_selector(f'.dup-member.keeper[data-id="{target}"]')
        assert "keeper (marked)" in page.locator(
            f'.dup-member[data-id="{target}"]').inner_text()
        browser.close()
