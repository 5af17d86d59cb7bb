"""The results page of a prompt matrix shows the effect table and the effect plot (Chromium via Playwright)."""

import time

import numpy as np
import pytest

from test_browser import SCREENSHOTS, browser, open_tab  # noqa: F401  (browser is a fixture)


@pytest.fixture
def matrix_server(isolated_library, saved_prompt, tiny_engine):
    import promptkit
    from promptkit.experiments import run_experiment
    from promptkit.library import Library
    from web_server import LiveServer

    rng = np.random.default_rng(11)
    beta = np.array([2.5, -2.5, 0.0])
    with Library(isolated_library) as lib:
        promptkit.new_matrix_experiment(lib, "words", "lighthouse", ["golden hour", "style=sketch", "8k"],
                                        seeds="1-2", steps=2, sampler="Euler", width=32, height=32,
                                        model=tiny_engine.model)
        run_experiment(lib, tiny_engine, "words")
        ind = lib.experiment_row("words")["params"]["matrix"]["indicators"]
        labels = list(ind)
        for seed in (1, 2):
            for i, a in enumerate(labels):
                for b in labels[i + 1:]:
                    p = 1 / (1 + np.exp(-(np.array(ind[a]) - np.array(ind[b])) @ beta))
                    promptkit.vote(lib, "words", seed, a if rng.random() < p else b, a, b)
    with LiveServer(isolated_library) as server:
        yield server


def _poll(read, expected, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read() == expected:
            return True
        time.sleep(0.05)
    return False


def test_results_page_shows_the_effect_plot(browser, matrix_server):  # noqa: F811
    with open_tab(browser, matrix_server.url) as tab:
        tab.goto("/experiments/words")
        plot = tab.locator("#effects-plot")
        assert _poll(lambda: plot.get_attribute("data-terms"), "3")
        rows = tab.locator("#effects-plot g.effect")
        assert rows.count() == 3
        assert rows.first.get_attribute("data-term") == "golden hour"
        assert rows.last.get_attribute("data-term") == "style=sketch"
        assert rows.first.locator("circle").count() == 1 and rows.first.locator("line").count() == 1
        box = plot.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 60
        table = tab.locator("table.effects-table tbody tr")
        assert table.count() == 3 and "golden hour" in table.first.inner_text()
        assert "full factorial 2^3" in tab.locator("#term-effects").inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.locator("#term-effects").screenshot(path=str(SCREENSHOTS / "matrix-effects.png"))
