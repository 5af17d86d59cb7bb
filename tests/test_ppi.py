"""Prediction-powered inference (promptkit/judges/ppi.py): the closed form, and simulated judges
(benchmarks/ppi_sim.py) — valid at the nominal rate and narrower than votes alone."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from promptkit.judges.ppi import classical_interval, ppi_mean, ppi_state, preference

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.ppi_sim import simulate  # noqa: E402


def test_estimate_is_the_judges_mean_plus_the_rectifier():
    f_all = [1, 0, 1, 1, 0.5, 1, 0, 1]
    y, f_lab = [1, 0, 0], [1, 0, 1]
    result = ppi_mean(f_all, y, f_lab)
    assert result["rectifier"] == pytest.approx(-1 / 3)
    assert result["estimate"] == pytest.approx(np.mean(f_all) - 1 / 3)
    assert result["ci_low"] <= result["estimate"] <= result["ci_high"]


def test_with_every_pair_voted_it_is_the_human_only_interval():
    rng = np.random.default_rng(3)
    y = (rng.random(40) < 0.7).astype(float)
    f = np.where(rng.random(40) < 0.8, y, 1 - y)
    ppi, human = ppi_mean(f, y, f), classical_interval(y)
    for key in ("estimate", "ci_low", "ci_high"):
        assert ppi[key] == pytest.approx(human[key], abs=1e-12)


def test_a_perfect_judge_leaves_almost_only_the_unvoted_pairs_spread():
    f_all = np.r_[np.ones(600), np.zeros(400)]
    y = f_lab = np.r_[np.ones(6), np.zeros(4)]
    result = ppi_mean(f_all, y, f_lab)
    assert result["estimate"] == pytest.approx(0.6)
    # the unvoted 990 pairs' predictions, plus the voted pairs' share (10/1000) of f, seen through the votes
    variance = 990 * np.var(f_all, ddof=1) / 1000**2 + np.var(0.01 * f_lab, ddof=1) / 10
    half = 1.959963984540054 * math.sqrt(variance)
    assert result["ci_high"] - result["estimate"] == pytest.approx(half, rel=1e-9)


def test_too_few_votes_give_no_estimate():
    assert ppi_mean([1, 0, 1], [1], [1])["estimate"] is None
    assert ppi_state({"estimate": None}) == "undecided"


def test_preference_and_state():
    assert [preference(1, 2), preference(2, 1), preference(1, 1)] == [1.0, 0.0, 0.5]
    assert ppi_state({"estimate": 0.8, "ci_low": 0.6, "ci_high": 0.9}) == "b_better"
    assert ppi_state({"estimate": 0.2, "ci_low": 0.1, "ci_high": 0.4}) == "a_better"
    assert ppi_state({"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6}) == "undecided"


@pytest.mark.parametrize("pairs,votes", [(1000, 100), (400, 40)])
def test_simulated_80_percent_judge_covers_and_is_narrower(pairs, votes):
    runs = 2000
    result = simulate(runs, pairs, votes, agreement=0.8, truth=0.6, seed=1)
    slack = 3 * math.sqrt(0.95 * 0.05 / runs)  # simulation error
    assert result["coverage_ppi"] >= 0.95 - slack, result
    assert result["width_ppi"] < result["width_human"], result
    assert result["width_ppi"] < result["width_wilson"], result


def test_a_useless_judge_stays_valid():
    result = simulate(1000, 500, 50, agreement=0.5, truth=0.7, seed=2)
    assert result["coverage_ppi"] >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / 1000), result
