"""The verdict in a real browser: votes cast on the review page and by script, then the results page's
state in words and confidence sequence checked against `promptkit.verdicts`.

Launched as tests/test_browser.py launches Chromium (skipped without it, failing under CI=true). The
page's content security policy forbids eval, so the test polls attributes and text from Python and
never uses wait_for_function.
"""

from __future__ import annotations

import time

import pytest
from test_browser import SCREENSHOTS, browser, open_tab  # noqa: F401  (browser: the module's fixture)

from promptkit.experiments.votes import record_vote
from promptkit.library import Library
from promptkit.stats import experiment_stats
from promptkit.verdicts import confidence_sequence, votes_to_go


def wait_until(check, timeout: float = 15.0, what: str = "the page"):
    """Poll CHECK (a Python callable reading the page) until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def tab(browser, live_experiment_server):  # noqa: F811
    with open_tab(browser, live_experiment_server.url) as page:
        yield page


def _vote_on_the_page(tab, key: str, voted: int) -> None:
    """Press KEY on the review page and wait for the next pair (or the end) after VOTED votes."""
    tab.keyboard.press(key)
    wait_until(lambda: tab.get_attribute("#review", "data-state") in ("ready", "done")
               and tab.inner_text("#voted") == str(voted), what=f"vote {voted}")


def test_verdict_state_and_confidence_sequence_after_scripted_votes(tab, experiment_library):
    # 1. ana judges every pair of sky on the review page as a tie: the pairs come one by one, then "done".
    tab.goto("/experiments/sky/review?rater=ana")
    assert tab.get_attribute("#review", "data-rater") == "ana" and tab.inner_text("#rater") == "ana"
    for voted in range(1, 5):
        _vote_on_the_page(tab, "t", voted)
    wait_until(lambda: tab.get_attribute("#review", "data-state") == "done", what="every pair voted")
    wait_until(lambda: "keep voting" in tab.inner_text("#verdicts"), what="the verdict so far")

    # 2. Scripted votes from two more raters, fancy on every seed: 8–0.
    with Library(experiment_library) as lib:
        for seed, (rater, left) in enumerate([("me", "fancy"), ("me", "plain"), ("me", "fancy"), ("me", "plain")], 1):
            record_vote(lib, "sky", seed, "fancy", left, "plain" if left == "fancy" else "fancy", rater=rater)
        tab.goto("/experiments/sky")
        # after 4 decisive votes the page asks for more, as many as votes_to_go says
        expected = experiment_stats(lib, "sky")["pairs"][0]
        assert expected["state"] == "undecided"
        assert tab.get_attribute("#verdict-state", "data-state") == "undecided"
        assert tab.inner_text("#verdict-state") == f"keep voting: about {votes_to_go(4, 4)} more decisive votes"
        for seed in (1, 2, 3, 4):
            record_vote(lib, "sky", seed, "fancy", "plain", "fancy", rater="bo")

    # 3. The results page: the state in words, the confidence sequence, position bias and agreement.
    tab.goto("/experiments/sky")
    low, high = confidence_sequence(8, 8)
    assert tab.get_attribute("#verdict-state", "data-state") == "b_better"
    assert tab.inner_text("#verdict-state") == "fancy is better — you can stop"
    shown = tab.locator("#confidence-sequence")
    assert float(shown.get_attribute("data-low")) == pytest.approx(low, abs=1e-4) and shown.get_attribute("data-high") == "1.0000"
    assert shown.inner_text().startswith(f"fancy's win rate: {low * 100:.0f}–{high * 100:.0f}%")
    assert "(confidence sequence; anytime-valid" in shown.inner_text() and "valid whenever you look" in shown.inner_text()
    card = tab.locator(".pair-stat .pair-state")
    assert card.get_attribute("data-state") == "b_better" and f"{low * 100:.0f}–100%" in card.inner_text()
    assert tab.locator(".winbar .cs.decided").count() == 1
    # me: fancy left twice, right twice; bo: fancy right four times: 2 of 8 decisive votes went left
    assert tab.inner_text("#position-bias").startswith("Position bias: 25% of decisive votes went to the left image")
    assert "Fleiss' kappa" in tab.inner_text("#agreement") and "ana, bo, me" in tab.inner_text("#agreement")
    tab.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / "verdict-results.png"), full_page=True)

    # 4. A new rater on the review page is told the verdicts are in after a vote.
    tab.goto("/experiments/sky/review?rater=cy")
    _vote_on_the_page(tab, "t", 1)
    wait_until(lambda: tab.locator("#all-settled").is_visible(), what="'you can stop' on the review page")
    assert "fancy is better — you can stop" in tab.inner_text("#verdicts")
    tab.screenshot(path=str(SCREENSHOTS / "verdict-review.png"), full_page=True)
