"""The results page's judges section in a real browser, after scripted votes and a `score` run.

Uses test_browser.py's Chromium fixtures (skipped with the reason without Playwright or Chromium,
failing under CI=true)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from promptkit.cli import main
from test_browser import browser, experiment_page, open_tab, screenshot  # noqa: F401  (fixtures)
from test_judges import tiny_clip  # noqa: F401  (fixture)


def cli(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_results_page_shows_each_judges_agreement_after_scripted_votes(experiment_page, experiment_library,
                                                                        tiny_clip):
    for seed, winner in ((1, "fancy"), (2, "fancy"), (3, "plain"), (4, "fancy")):
        cli("ab", "vote", "sky", "--seed", str(seed), "--winner", winner)
    cli("score", "sky", "--judge", "clip", "--model", tiny_clip)
    stats = json.loads(cli("ab", "stats", "sky", "--json"))
    agreement = stats["judges"][0]["agreement"]
    experiment_page.goto("/experiments/sky")
    section = experiment_page.get_by_role("region", name="Judges")
    section.wait_for()
    text = section.inner_text()
    assert "clip" in text and "8 images scored" in text
    if agreement["votes"]:
        assert f"{agreement['agree']}/{agreement['votes']}" in text and "Wilson 95% CI" in text
    lower = text.lower()  # table headers are drawn in capitals
    assert "machine verdict (the judge's, not yours)" in lower
    assert "prediction-powered" in lower and "your votes alone" in lower and "4 votes" in lower
    screenshot(experiment_page, "experiment-judges")
