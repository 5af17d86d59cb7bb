"""Anytime-valid verdicts: closed forms checked against scipy, and simulated experiments (benchmarks/verdicts_sim.py)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import binom, binomtest

from promptkit.verdicts import (ALPHA, MARGIN, VOTES_CAP, choose_next_pair, cohen_kappa, confidence_sequence,
                                decide, e_value, fleiss_kappa, holm_levels, log_e_value, position_bias,
                                rater_agreement, verdict_text, votes_to_go)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks.verdicts_sim import null_false_verdicts, votes_to_top, votes_to_verdict  # noqa: E402


@pytest.mark.parametrize("k,n", [(0, 0), (0, 5), (7, 10), (30, 40), (250, 500), (3, 60)])
def test_e_value_is_the_beta_binomial_mixture(k, n):
    mixture, _ = quad(lambda p: p**k * (1 - p) ** (n - k), 0, 1, epsabs=1e-300, epsrel=1e-12)
    assert e_value(k, n) == pytest.approx(mixture / 0.5**n, rel=1e-6)
    assert e_value(k, n) == pytest.approx(e_value(n - k, n), rel=1e-12)  # symmetric in A and B


@pytest.mark.parametrize("n", [1, 10, 77])
def test_e_value_has_mean_one_when_equally_good(n):
    k = np.arange(n + 1)
    assert float(np.sum(binom.pmf(k, n, 0.5) * np.exp(log_e_value(k, n)))) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("k,n", [(0, 12), (12, 12), (15, 20), (40, 100), (500, 1000)])
def test_confidence_sequence_is_where_the_e_value_stays_below_one_over_alpha(k, n):
    low, high = confidence_sequence(k, n)
    assert low <= k / n <= high
    for end in (low, high):
        if 0 < end < 1:
            assert log_e_value(k, n, end) == pytest.approx(math.log(1 / ALPHA), abs=1e-6)
    assert (low <= 0.5 <= high) == (e_value(k, n) < 1 / ALPHA)
    # wider than the fixed-sample Wilson interval: the price of being valid at every look
    ci = binomtest(k, n).proportion_ci(method="wilson")
    assert low <= ci.low and high >= ci.high


def test_states():
    assert decide(3, 25)["state"] == "b_better" and "votes_to_go" not in decide(3, 25)
    assert decide(25, 3)["state"] == "a_better"
    assert decide(500, 500)["state"] == "equivalent"
    assert decide(0, 0)["state"] == "undecided" and decide(0, 0)["confidence_sequence"] == [0.0, 1.0]
    undecided = decide(4, 7)
    assert undecided["state"] == "undecided" and 0 < undecided["votes_to_go"] < VOTES_CAP
    low, high = decide(500, 500)["confidence_sequence"]
    assert 0.5 - MARGIN <= low and high <= 0.5 + MARGIN


def test_votes_to_go_is_where_the_current_rate_would_decide():
    more = votes_to_go(14, 20)  # B at 15/22 shrunk
    rate, total = 15 / 22, 20 + more
    assert log_e_value(rate * total, total) >= math.log(20) > log_e_value(rate * (total - 1), total - 1)
    assert votes_to_go(10, 20, cap=50) == 50  # even: far from either verdict
    assert votes_to_go(20, 20) == 1  # one more win in a row decides
    assert votes_to_go(0, 0) > 50  # no votes: planned for a 65% win rate


def test_holm_on_e_values():
    # p = 1/e = 0.001, 0.0125, 0.02, 0.5 with m = 4: 0.001 <= 0.05/4, 0.0125 <= 0.05/3, 0.02 <= 0.05/2, 0.5 > 0.05
    levels = holm_levels([1000, 80, 50, 2])
    assert levels == pytest.approx([0.0125, 0.05 / 3, 0.025, 0.0125])
    # p = 0.001, 0.033, 0.02, 0.5: the second smallest, 0.02 > 0.05/3, stops Holm after the first
    assert holm_levels([1000, 30, 50, 2]) == pytest.approx([0.0125] * 4)
    assert holm_levels([10.0]) == [0.05]


def test_verdict_text():
    assert verdict_text("b_better", "A", "B") == "B is better — you can stop"
    assert verdict_text("a_better", "A", "B") == "A is better — you can stop"
    assert "within ±10 points of 50%" in verdict_text("equivalent", "A", "B")
    assert verdict_text("undecided", "A", "B", 37) == "keep voting: about 37 more decisive votes"
    assert "more than 2000" in verdict_text("undecided", "A", "B", VOTES_CAP)


def test_position_bias_is_a_wilson_interval():
    bias = position_bias(31, 19)
    ci = binomtest(31, 50).proportion_ci(method="wilson")
    assert bias["left_share"] == pytest.approx(0.62) and (bias["ci_low"], bias["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert position_bias(0, 0)["left_share"] is None


def test_cohen_kappa_worked_example():
    # Wikipedia, "Cohen's kappa", simple example: 50 applications, yes/yes 20, yes/no 5, no/yes 10, no/no 15: κ = 0.4.
    first = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    second = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4, abs=1e-12)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0


def test_fleiss_kappa_worked_example():
    # Fleiss (1971) as worked in Wikipedia, "Fleiss' kappa": 10 subjects, 14 raters, 5 categories, κ = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(np.array(table)) == pytest.approx(0.20993, abs=5e-5)


def test_rater_agreement_picks_the_kappa():
    assert rater_agreement({1: {"me": "A"}, 2: {"me": "B"}}) is None
    two = rater_agreement({1: {"me": "A", "you": "A"}, 2: {"me": "B", "you": "A"}, 3: {"me": "A"}})
    assert two["method"] == "Cohen's kappa" and two["items"] == 2
    three = rater_agreement({i: {"x": c, "y": c, "z": "A"} for i, c in enumerate("AABB")})
    assert three["method"] == "Fleiss' kappa" and three["items"] == 4


def test_chooser_works_on_the_least_settled_pair_of_the_top():
    labels = ["A", "B", "C", "D"]
    # C leads; C vs A is settled, C vs D has the fewest votes
    counts = {("A", "C"): (0, 30), ("B", "C"): (6, 12), ("C", "D"): (2, 1), ("A", "B"): (5, 5)}
    chosen = choose_next_pair(labels, counts, seeds=[1, 2, 3], seed_votes={("C", "D", 1): 2, ("C", "D", 2): 1})
    assert (chosen["a"], chosen["b"], chosen["seed"]) == ("C", "D", 3)
    # seeds balanced: repeated choices on one open pair walk through the seeds evenly
    seed_votes: dict = {}
    for _ in range(9):
        pick = choose_next_pair(["A", "B"], {}, seeds=[5, 6, 7], seed_votes=seed_votes)
        key = (pick["a"], pick["b"], pick["seed"])
        seed_votes[key] = seed_votes.get(key, 0) + 1
    assert sorted(seed_votes.values()) == [3, 3, 3]
    assert choose_next_pair(["A", "B"], {("A", "B"): (0, 40)}) is None  # settled: nothing left to ask
    assert choose_next_pair(["A"], {}) is None


def test_simulated_null_rarely_declares_a_winner():
    result = null_false_verdicts(runs=2000, votes=500, seed=0)
    assert result["e_value"] <= 0.06  # 5% plus simulation error (sd about 0.5 points)
    assert result["sign_test"] > 0.2  # the fixed test read after every vote: the problem this solves


def test_simulated_win_rate_of_0_70():
    result = votes_to_verdict(0.70, runs=500, votes=400, seed=1)
    assert result["decided"] > 0.99 and result["right_winner"] > 0.99
    assert 30 <= result["median_votes"] <= 70  # the fixed sign test plans 49 for 80% power


def test_adaptive_pairs_find_the_top_in_fewer_votes():
    adaptive = votes_to_top(True, runs=40, seed=2)
    uniform = votes_to_top(False, runs=40, seed=2)
    assert adaptive["median_votes"] < uniform["median_votes"]
    assert adaptive["true_top_found"] >= 0.9 and uniform["true_top_found"] >= 0.9
