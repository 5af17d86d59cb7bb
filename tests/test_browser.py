"""The review page in a real browser (Playwright driving the system's Chromium).

Screenshots of every page go to $PROMPTKIT_SCREENSHOTS (default tests/_screenshots/).
Without Playwright or Chromium these tests are skipped with the reason, except under
CI=true, where they fail: CI installs both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from promptkit.library import Library
from promptkit.stats import experiment_stats
from sample_library import EXPERIMENT_LABELS, XSS

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = Path(os.environ.get("PROMPTKIT_SCREENSHOTS") or Path(__file__).parent / "_screenshots")


def _find_chromium() -> str | None:
    """$PROMPTKIT_CHROMIUM when set (and only it), else Debian's chromium, else one on PATH."""
    chosen = os.environ.get("PROMPTKIT_CHROMIUM")
    candidates = [chosen] if chosen else ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install '.[test]')")
    executable = _find_chromium()
    if executable is None:
        _unavailable("no Chromium found (apt-get install -y chromium, or set PROMPTKIT_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextlib.contextmanager
def open_tab(browser, base_url: str):
    """A fresh tab on BASE_URL; fails the test on any script error in the page."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1360, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # Console errors count too, but not the browser's own note that a page we asked for is a 404.
    tab.on("console", lambda message: errors.append(message.text)
           if message.type == "error" and "status of 404" not in message.text else None)
    tab.dialogs = []  # every alert/confirm the page opens, dismissed
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()
    assert errors == [], errors


@pytest.fixture
def page(browser, live_server):
    """A fresh tab on the live server over the sample library."""
    with open_tab(browser, live_server.url) as tab:
        yield tab


@pytest.fixture
def experiment_page(browser, live_experiment_server):
    """A fresh tab on the live server over the tiny-model experiments library."""
    with open_tab(browser, live_experiment_server.url) as tab:
        yield tab


def screenshot(page, name: str, full_page: bool = True) -> None:
    """Save the page once its images have loaded, from the top (a sticky header would otherwise
    be drawn mid-page in a full-page capture)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("() => Array.from(document.images).every(image => image.complete)")
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def test_rate_images_with_the_keyboard(page, isolated_library, sample_library):
    first, second = sample_library["generations"]["red-fox"][:2]
    page.goto("/prompts/red-fox")
    page.locator(".shot").first.focus()
    with page.expect_response(lambda r: r.url.endswith(f"/api/generations/{first}/ratings")) as posted:
        page.keyboard.press("4")
    assert posted.value.status == 201
    page.wait_for_function("() => document.querySelector('.shot').querySelectorAll('.rate.on').length === 4")
    page.keyboard.press("ArrowRight")
    with page.expect_response(lambda r: r.url.endswith(f"/api/generations/{second}/ratings")):
        page.keyboard.press("2")
    page.wait_for_selector(".toast.show")
    screenshot(page, "prompt")
    with Library(isolated_library) as lib:
        assert [r["stars"] for r in lib.generation_ratings(first)] == [4]
        assert [r["stars"] for r in lib.generation_ratings(second)] == [2]
    # The library sees it too: the fox card now shows the mean of its rated images.
    page.goto("/")
    card = page.locator("article.card", has_text="red-fox")
    assert card.locator(".stars").inner_text() == "★ 3.0"
    screenshot(page, "home")


def test_lightbox_rates_and_moves(page, isolated_library, sample_library):
    third = sample_library["generations"]["lighthouse"][2]
    page.goto("/prompts/lighthouse")
    page.locator(".shot").nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog#lightbox[open]")
    page.keyboard.press("ArrowRight")
    with page.expect_response(lambda r: r.url.endswith(f"/api/generations/{third}/ratings")):
        page.keyboard.press("5")
    screenshot(page, "lightbox", full_page=False)
    page.keyboard.press("Escape")  # closes it and leaves the focus on the image last shown
    page.wait_for_function(f"() => document.activeElement.dataset.generationId === '{third}'")
    with Library(isolated_library) as lib:
        assert lib.generation_ratings(third)[-1]["stars"] == 5


def test_star_a_prompt(page, isolated_library, sample_library):
    fox = sample_library["fox"]["id"]
    page.goto(f"/prompts/{fox}")
    button = page.locator(".star-toggle")
    assert button.get_attribute("aria-pressed") == "false"
    with page.expect_response(lambda r: r.url.endswith(f"/api/prompts/{fox}/star")):
        button.click()
    page.wait_for_function("() => document.querySelector('.star-toggle').getAttribute('aria-pressed') === 'true'")
    assert "Starred" in button.inner_text()
    with Library(isolated_library) as lib:
        assert lib.get_prompt(fox)["starred"] == 1
    page.goto("/?starred=true")
    assert page.locator("article.card", has_text="red-fox").count() == 1
    screenshot(page, "starred")
    page.goto(f"/prompts/{fox}")
    with page.expect_response(lambda r: r.url.endswith(f"/api/prompts/{fox}/star")):
        page.keyboard.press("s")  # the keyboard shortcut toggles it back
    with Library(isolated_library) as lib:
        assert lib.get_prompt(fox)["starred"] == 0


def test_search_the_library(page):
    page.goto("/")
    page.keyboard.press("/")
    page.keyboard.type("snow fox")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=snow+fox")
    titles = page.locator("article.card .card-title").all_inner_texts()
    assert [t.strip() for t in titles] == ["red-fox"]
    screenshot(page, "search")
    page.goto("/search?q=nothing+like+this")
    assert "Nothing matches" in page.inner_text("main")


def test_script_in_a_prompt_is_shown_as_text(page, sample_library):
    evil = sample_library["evil"]
    for url in ("/", "/search?q=cat", f"/prompts/{evil['id']}"):
        page.goto(url)
        assert page.get_by_text(XSS).first.is_visible(), url
    assert XSS in page.inner_text("#positive-text") and XSS in page.inner_text("h1")
    screenshot(page, "escaped")
    assert page.dialogs == []  # no alert(1) ran anywhere
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0


def test_copy_a1111_parameters(page, sample_library):
    page.goto("/prompts/lighthouse")
    with page.expect_response(lambda r: "/api/generations/" in r.url):
        page.locator(".shot").first.locator(".copy-params").click()
    page.wait_for_selector(".toast.show:has-text('Copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    lines = copied.splitlines()
    assert lines[0].startswith("a lighthouse on a cliff") and lines[1].startswith("Negative prompt: ")
    assert lines[2].startswith("Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 256x256")


def test_error_and_image_pages(page, sample_library):
    response = page.goto("/prompts/no-such-prompt")
    assert response.status == 404 and "no-such-prompt" in page.inner_text("main")
    screenshot(page, "not-found")
    generation_id = sample_library["generations"]["lighthouse"][0]
    response = page.goto(f"/images/{generation_id}")
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    screenshot(page, "image")


def _wait_for_pair(page, voted: int) -> None:
    page.wait_for_function(f"() => document.querySelector('#review').dataset.state === 'ready' && "
                           f"document.querySelector('#voted').textContent === '{voted}'")


def _shown_pair(page) -> tuple[int, str]:
    return int(page.inner_text("#seed")), page.get_attribute("#left-image", "src")


def test_blind_review_with_the_keyboard(experiment_page, experiment_library):
    page = experiment_page
    page.goto("/experiments/sky/review")
    assert page.inner_text(".counter").split() == ["0", "of", "4", "pairs"]
    # Blind: no variant name anywhere in the page before the vote, no verdict either.
    for label in EXPERIMENT_LABELS:
        assert label not in page.content()
    assert page.locator("#after").is_hidden() and page.locator(".reveal:visible").count() == 0
    screenshot(page, "review")

    seed, _ = _shown_pair(page)
    with page.expect_response(lambda r: r.url.endswith("/api/experiments/1/votes")) as posted:
        page.keyboard.press("1")
    assert posted.value.status == 201
    vote = posted.value.json()
    # The reveal: both names on their images, the chosen one marked; then the next pair, blind again.
    page.wait_for_selector(".side.winner")
    page.screenshot(path=str(SCREENSHOTS / "review-revealed.png"))  # the reveal lasts a moment: no waiting
    assert page.inner_text('[data-side="left"] .reveal') == vote["left"]
    assert page.inner_text('[data-side="right"] .reveal') == vote["right"]
    assert vote["winner"] == vote["left"] and vote["seed"] == seed
    _wait_for_pair(page, 1)
    assert page.locator(".reveal:visible").count() == 0 and page.locator(".side.winner").count() == 0
    assert page.inner_text(".counter").split() == ["1", "of", "4", "pairs"]
    assert vote["left"] in page.inner_text("#last-vote") and "not enough evidence" in page.inner_text("#verdicts")

    before_skip = _shown_pair(page)
    page.keyboard.press("s")
    page.wait_for_function(f"() => document.querySelector('#seed').textContent !== '{before_skip[0]}'")
    page.keyboard.press("2")
    _wait_for_pair(page, 2)
    page.keyboard.press("t")
    _wait_for_pair(page, 3)
    page.wait_for_timeout(400)  # let the borders and the progress bar finish their transitions
    screenshot(page, "review-after-votes")

    with Library(experiment_library) as lib:
        stats = experiment_stats(lib, "sky")
        assert stats["votes"] == 3
        pair = stats["pairs"][0]
        assert pair["wins_a"] + pair["wins_b"] == 2 and pair["ties"] == 1
    # The CLI sees the same votes.
    from click.testing import CliRunner

    from promptkit.cli import main

    shown = CliRunner().invoke(main, ["--db", str(experiment_library), "ab", "stats", "sky"], catch_exceptions=False)
    assert "3 votes" in shown.output and "1 ties" in shown.output

    with page.expect_response(lambda r: r.url.endswith("/votes/undo")) as undone:
        page.keyboard.press("u")
    assert undone.value.status == 200 and undone.value.json()["winner"] == "tie"
    _wait_for_pair(page, 2)
    with Library(experiment_library) as lib:
        assert experiment_stats(lib, "sky")["votes"] == 2

    page.goto("/experiments/sky")
    assert "2 votes" in page.inner_text(".verdict-card") and page.locator(".winbar").count() == 1
    page.wait_for_function("() => document.querySelector('img.contact-sheet').naturalWidth > 0")
    screenshot(page, "experiment-results")
    page.goto("/experiments")
    screenshot(page, "experiments")


def test_three_variant_results_show_a_ranking(experiment_page, experiment_library):
    page = experiment_page
    page.goto("/experiments/trio/review")
    for _ in range(6):
        voted = int(page.inner_text("#voted"))
        page.keyboard.press("1" if voted % 3 else "2")
        _wait_for_pair(page, voted + 1) if voted < 5 else page.wait_for_selector("#done:not([hidden])")
    assert "Every pair has a vote" in page.inner_text("#done")
    page.goto("/experiments/trio")
    assert page.locator(".ranking tbody tr").count() == 3 and page.locator(".winbar").count() == 3
    page.wait_for_function("() => document.querySelector('img.contact-sheet').naturalWidth > 0")
    screenshot(page, "experiment-ranking")


@pytest.mark.parametrize("ci,outcome", [("true", "browser tests cannot run in CI"), ("", "1 skipped")])
def test_missing_browser_fails_in_ci_and_skips_elsewhere(ci, outcome):
    import subprocess
    import sys

    env = {**os.environ, "CI": ci, "PROMPTKIT_CHROMIUM": "/nonexistent/chromium"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", __file__,
                             "-k", "test_search_the_library"], capture_output=True, text=True, env=env,
                            cwd=Path(__file__).parent.parent)
    assert outcome in result.stdout and result.returncode == (1 if ci else 0), result.stdout
    assert "no Chromium found (apt-get install -y chromium" in result.stdout
