"""The page's search mode switch and snippets in headless Chromium: Words mode finds an
asset by its description, the snippet marks the match, and text that looks like HTML in a
description never becomes an element."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from assetdb.db.engine import connect
from tests.test_browser import CHROMIUM, browser, card_ids, site  # noqa: F401

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is absent")


def test_mode_switch_and_snippets(site, browser, initialised):  # noqa: F811
    from playwright.sync_api import expect

    base, ids = site
    with connect(initialised) as conn:
        conn.execute(text("UPDATE assets SET description = :d WHERE id = :i"),
                     {"d": "Spring <img src=x onerror=\"window.hacked=1\"> sale",
                      "i": ids["red-1.png"]})
    page = browser.new_page(viewport={"width": 1366, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.select_option("#search-mode", "keyword")
    page.fill("#q", "spring")
    page.press("#q", "Enter")
    expect(page.locator("#grid .card")).to_have_count(1)
    assert card_ids(page) == [ids["red-1.png"]]
    expect(page.locator("#grid .card .snippet mark").first).to_have_text("Spring")
    snippet = page.locator("#grid .card .snippet").inner_text()
    assert "Spring" in snippet and "sale" in snippet  # (ts_headline drops tag-like text)
    assert page.locator("#grid .card .snippet img").count() == 0
    assert page.evaluate("() => window.hacked") is None
    assert "mode=keyword" in page.url
    # Back to hybrid: the same words plus the visual ranking fill the page.
    page.select_option("#search-mode", "hybrid")
    expect(page.locator("#grid .card")).to_have_count(24)
    assert card_ids(page)[0] == ids["red-1.png"]
    assert errors == []
