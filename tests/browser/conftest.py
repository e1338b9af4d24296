"""A real Chromium (Debian's /usr/bin/chromium) driven by Playwright against the app on waitress.

Without Chromium these tests skip with the reason; with REQUIRE_BROWSER=1 (CI) they fail instead.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def _unavailable(reason: str):
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (REQUIRE_BROWSER=1)")
    pytest.skip(f"{reason}; install it with: apt-get install chromium fonts-noto-cjk")


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (requirements-dev.txt)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser context (no cookies) on the live server, desktop-sized, Chinese."""
    context = chromium.new_context(base_url=live_server.url, viewport=DESKTOP, locale="zh-CN",
                                   accept_downloads=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text)
          if "Content Security Policy" in msg.text else None)  # a blocked script or style
    pg.on("dialog", lambda dialog: dialog.accept())
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shoot(page, name: str) -> list[Path]:
    """Full-page screenshots at a phone's and a desktop's size (<name>-390x844.png and
    <name>-1280x800.png); fails if the page is wider than the screen."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(50)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= size["width"], f"{name}: page is {width}px wide at {size['width']}px"
        path = SHOTS / f"{name}-{size['width']}x{size['height']}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    page.set_viewport_size(DESKTOP)
    return paths
