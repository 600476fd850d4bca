"""End to end in a real browser: `assetdb serve`'s app on 127.0.0.1, headless Chromium
driven by Playwright. Types a query, sees the grid, applies filters, opens a result and
its similar assets, searches by image (file picker and drag-and-drop), loads more, and
checks the phone layout. Screenshots go to the test's tmp dir (and ASSETDB_SCREENSHOT_DIR
when set)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from assetdb.api.app import create_app
from assetdb.api.deps import ApiConfig
from tests.api_support import make_catalogue, running_server
from tests.images import noise

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is absent: install Debian's chromium package (apt-get install chromium)",
)


@pytest.fixture
def site(initialised, encoder, tmp_path):
    from assetdb.ingest.ingest_files import ingest

    ids = make_catalogue(initialised, encoder, tmp_path)
    for i in range(22):  # 30 assets in all: more than one page of 24
        noise(tmp_path / "more" / f"extra-{i:02d}.png", seed=100 + i, size=(80, 60))
    assert ingest(initialised, [str(tmp_path / "more")], encoder=encoder).failed == 0
    app = create_app(initialised, encoder, ApiConfig(token=None, max_upload_bytes=2**20,
                                                     max_results=500))
    with running_server(app) as base:
        yield base, ids


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()

    def save(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        extra = os.environ.get("ASSETDB_SCREENSHOT_DIR")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return save


def assert_fits(page, width: int, selector: str = ".topbar *, .results *") -> None:
    """No visible element sticks out past the right edge (nothing needs sideways scrolling)."""
    over = page.evaluate("""([sel, width]) => [...document.querySelectorAll(sel)]
        .filter(e => { const r = e.getBoundingClientRect();
                       return r.width > 0 && r.right > width + 0.5; })
        .map(e => e.id || e.className || e.tagName)""", [selector, width])
    assert over == [], over


def card_ids(page) -> list[int]:
    ids = page.eval_on_selector_all("#grid .card", "els => els.map(e => e.dataset.id)")
    return [int(x) for x in ids]


def test_search_filter_detail_similar_in_chromium(site, browser, shots, tmp_path):
    from playwright.sync_api import expect

    base, ids = site
    page = browser.new_page(viewport={"width": 1366, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(base + "/")

    # Browsing before any query: newest first, one page of 24, "load more" for the rest.
    expect(page.locator("#grid .card")).to_have_count(24)
    expect(page.locator("#status")).to_contain_text("assets, newest first")
    page.click("#load-more")
    expect(page.locator("#grid .card")).to_have_count(30)
    expect(page.locator("#load-more")).to_be_hidden()

    # A text query: a ranked grid with thumbnails and similarity scores.
    page.fill("#q", "a red circle")
    page.press("#q", "Enter")
    expect(page.locator("#status")).to_contain_text("results for “a red circle”")
    expect(page.locator("#grid .card")).to_have_count(24)
    expect(page.locator("#grid .card .score").first).to_be_visible()
    scores = [float(s) for s in page.locator("#grid .card .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    # Arrow functions, not bare expressions: Playwright polls a bare expression with eval(),
    # which the page's Content-Security-Policy (script-src 'self') rightly refuses.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#grid .thumb img')].slice(0, 8)"
        ".every(i => i.complete && i.naturalWidth > 0)")
    assert "q=a+red+circle" in page.url  # the search is a shareable link
    shots(page, "laptop-results")
    page.click("#load-more")
    expect(page.locator("#grid .card")).to_have_count(30)

    # Filters: tags, metadata, captured date range.
    page.fill("#f-tag", "poster")
    page.click("#apply-filters")
    expect(page.locator("#grid .card")).to_have_count(2)
    assert set(card_ids(page)) == {ids["red-1.png"], ids["blue-1.png"]}
    expect(page.locator("#filter-count")).to_have_text("1")
    page.fill("#f-tag", "")
    page.fill("#f-meta", "brand=zenith")
    page.fill("#f-from", "2023-01-01")  # a date applies at once
    page.click("#apply-filters")
    expect(page.locator("#grid .card")).to_have_count(2)
    assert set(card_ids(page)) == {ids["blue-1.png"], ids["green-1.png"]}
    shots(page, "laptop-filtered")

    # Clear the filters, open a result: detail with description, tags, metadata, similar.
    page.click("#clear-filters")
    expect(page.locator("#grid .card")).to_have_count(24)
    page.locator(f'#grid .card[data-id="{ids["red-1.png"]}"] button').click()
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(page.locator("#d-title")).to_have_text("Red poster")
    expect(page.locator("#d-description")).to_have_text("A red poster for spring.")
    expect(page.locator("#d-tags li")).to_have_text(["poster", "red"])
    expect(page.locator("#d-meta")).to_contain_text("brand")
    expect(page.locator("#d-meta")).to_contain_text("acme")
    expect(page.locator("#d-similar .card")).to_have_count(12)
    similar_ids = [int(x) for x in page.eval_on_selector_all(
        "#d-similar .card", "els => els.map(e => e.dataset.id)")]
    assert ids["red-1.png"] not in similar_ids and similar_ids[0] == ids["red-2.png"]
    page.wait_for_function("() => document.querySelector('#d-image').naturalWidth > 0")
    shots(page, "laptop-detail")

    # "Show all similar" fills the grid with assets like this one.
    page.click("#d-similar-all")
    expect(dialog).to_be_hidden()
    expect(page.locator("#query-chip")).to_contain_text("More like “Red poster”")
    expect(page.locator("#grid .card").first).to_have_attribute("data-id", str(ids["red-2.png"]))

    # Search by image through the file picker ...
    page.set_input_files("#file", str(tmp_path / "assets" / "green-1.png"))
    expect(page.locator("#status")).to_contain_text("results for your image")
    expect(page.locator("#query-chip")).to_contain_text("green-1.png")
    expect(page.locator("#grid .card").first).to_have_attribute("data-id", str(ids["green-1.png"]))
    expect(page.locator("#grid .card .score").first).to_have_text("1.000")
    shots(page, "laptop-image-search")

    # ... and by drag-and-drop onto the page.
    data = list((tmp_path / "assets" / "blue-1.png").read_bytes())
    page.evaluate("""(bytes) => {
        const file = new File([new Uint8Array(bytes)], 'blue.png', {type: 'image/png'});
        const dt = new DataTransfer();
        dt.items.add(file);
        window.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt}));
        window.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, cancelable: true}));
    }""", data)
    expect(page.locator("#query-chip")).to_contain_text("blue.png")
    expect(page.locator("#grid .card").first).to_have_attribute("data-id", str(ids["blue-1.png"]))
    expect(page.locator("#drop-overlay")).to_be_hidden()

    # A bad filter shows the API's message, not a broken page.
    page.fill("#f-meta", "brand")
    page.click("#apply-filters")
    expect(page.locator("#error")).to_contain_text("key=value")
    assert errors == [f for f in errors if "400" in f]  # only the expected failed request


def test_phone_layout_in_chromium(site, browser, shots):
    from playwright.sync_api import expect

    base, ids = site
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                            is_mobile=True, has_touch=True)
    page.goto(base + "/?q=a+photo+of+a+dog")
    expect(page.locator("#grid .card")).to_have_count(24)
    expect(page.locator("#q")).to_have_value("a photo of a dog")
    # Filters fold into a panel behind a button; nothing overflows sideways.
    expect(page.locator("#filters")).to_be_hidden()
    assert_fits(page, 390)
    columns = page.evaluate(
        "getComputedStyle(document.querySelector('#grid')).gridTemplateColumns.split(' ').length")
    assert columns == 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('#grid .thumb img')].slice(0, 4)"
        ".every(i => i.complete && i.naturalWidth > 0)")
    shots(page, "phone-results")
    page.click("#filters-toggle")
    expect(page.locator("#filters")).to_be_visible()
    page.check("input[name=kind][value=animation]")
    expect(page.locator("#grid .empty")).to_be_visible()  # no animations in the catalogue
    page.uncheck("input[name=kind][value=animation]")
    page.fill("#f-tag", "nature")
    page.click("#apply-filters")
    expect(page.locator("#filters")).to_be_hidden()
    expect(page.locator("#grid .card")).to_have_count(2)
    page.locator("#grid .card button").first.click()
    expect(page.locator("#detail")).to_be_visible()
    assert_fits(page, 390, "#detail *")
    shots(page, "phone-detail")


def test_a_video_plays_from_the_matching_moment_in_chromium(initialised, encoder, browser,
                                                             tmp_path):
    """A video hit shows its moment on the card; opening it plays the original (served
    in byte ranges) from that second."""
    pytest.importorskip("av")
    from playwright.sync_api import expect

    from assetdb.demo import media
    from assetdb.ingest.ingest_files import ingest

    (tmp_path / "v").mkdir()
    # VP9 in WebM: what Chromium plays without proprietary codecs.
    media.write_video(tmp_path / "v" / "clip.webm", media.scene_plan(4, 3, 12.0), fps=4,
                      side=64, codec="libvpx-vp9")
    assert ingest(initialised, [str(tmp_path / "v")], encoder=encoder).failed == 0
    app = create_app(initialised, encoder, ApiConfig(token=None, max_upload_bytes=2**20,
                                                     max_results=500))
    with running_server(app) as base:
        page = browser.new_page(viewport={"width": 1366, "height": 860})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/?q=a+red+circle&kind=video")
        badge = page.locator("#grid .card .kind-badge.moment").first
        expect(badge).to_be_visible()
        assert ":" in badge.inner_text()
        page.locator("#grid .card button").first.click()
        video = page.locator("#d-video")
        expect(video).to_be_visible()
        src = video.get_attribute("src")
        assert "/original" in src and ("#t=" in src or badge.inner_text() == "0:00")
        assert video.get_attribute("poster").endswith("/thumbnail?size=512")
        page.wait_for_function("() => document.querySelector('#d-video').readyState >= 1")
        assert errors == []
