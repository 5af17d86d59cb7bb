"""Prediction-powered inference for a pairwise win rate (numpy and scipy only).

Angelopoulos, Bates, Fannjiang, Jordan, Zrnic, "Prediction-powered inference", Science 382
(6671), 669–674, 2023: a judge's predictions on every unit, corrected by the "rectifier" — the
mean of (label − prediction) on the units a person labelled — give an estimate whose confidence
interval is valid whatever the judge's quality, and narrower the better the judge predicts.

Here a unit is an image pair (variant a, variant b, seed). The judge's prediction f is 1 when
it scores b's image higher, 0 when a's, ½ on a tie; a person's decisive vote on a pair is its
label Y (1 when b won). The labelled pairs are among all N pairs, so the estimator

    θ̂ = mean over all N pairs of f  +  mean over the n votes of (Y − f)

is split into independent parts — the unvoted pairs' predictions and the votes — for its variance:
θ̂ = (1/N) Σ_unvoted f + (1/n) Σ_votes [Y − (1 − m/N) f] when the m voted pairs carry n votes, each
vote counted once. With every pair voted, it is the human-only mean of Y.

The interval is the paper's CLT interval at a fixed number of votes, not a confidence
sequence: it is shown beside the anytime-valid human verdict, never instead of it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

ALPHA = 0.05


@lru_cache(maxsize=8)
def _z(alpha: float) -> float:
    """The two-sided normal quantile for level ALPHA (scipy's norm.ppf, computed once per level)."""
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def ppi_mean(predictions_all: Sequence[float], labels: Sequence[float], predictions_labelled: Sequence[float],
             alpha: float = ALPHA, voted_units: int | None = None) -> dict[str, Any]:
    """The prediction-powered estimate of E[Y] and its (1 − alpha) interval.

    :param predictions_all: f on every unit (N of them; the voted ones included).
    :param labels: Y for each vote (n of them), with `predictions_labelled` the judge's f on that vote's unit.
    :param voted_units: how many distinct units the votes cover (m; default n).
    :returns: estimate, ci_low, ci_high (clipped to [0, 1]), n, N, rectifier (mean of Y − f on the votes).
    """
    f_all = np.asarray(predictions_all, dtype=float)
    y = np.asarray(labels, dtype=float)
    f_lab = np.asarray(predictions_labelled, dtype=float)
    n, big_n = len(y), len(f_all)
    if n < 2 or big_n < n:
        return {"estimate": None, "ci_low": 0.0, "ci_high": 1.0, "n": n, "N": big_n, "rectifier": None}
    m = n if voted_units is None else int(voted_units)
    rectifier = float(np.mean(y - f_lab))
    estimate = float(f_all.mean()) + rectifier
    # Variance from the two independent parts (see the module docstring); the unvoted units'
    # predictions are approximated by all units' spread, which is what the paper's formula uses.
    share = m / big_n if big_n else 1.0
    var_votes = np.var(y - (1 - share) * f_lab, ddof=1) / n
    var_rest = (big_n - m) * np.var(f_all, ddof=1) / big_n**2 if big_n > 1 else 0.0
    half = _z(alpha) * math.sqrt(max(var_votes + var_rest, 0.0))
    return {"estimate": estimate, "ci_low": max(0.0, estimate - half), "ci_high": min(1.0, estimate + half),
            "n": n, "N": big_n, "rectifier": rectifier}


def preference(score_a: float, score_b: float) -> float:
    """The judge's vote on a pair as a number: 1 when it scores b higher, 0 when a, ½ when equal."""
    return 1.0 if score_b > score_a else 0.0 if score_b < score_a else 0.5


def classical_interval(labels: Sequence[float], alpha: float = ALPHA) -> dict[str, Any]:
    """The human-only CLT interval on the same votes (what PPI is compared with at equal n)."""
    y = np.asarray(labels, dtype=float)
    n = len(y)
    if n < 2:
        return {"estimate": None, "ci_low": 0.0, "ci_high": 1.0, "n": n}
    half = _z(alpha) * float(np.std(y, ddof=1)) / math.sqrt(n)
    mean = float(y.mean())
    return {"estimate": mean, "ci_low": max(0.0, mean - half), "ci_high": min(1.0, mean + half), "n": n}


def ppi_state(result: dict[str, Any]) -> str:
    """a_better, b_better or undecided from a PPI interval for b's win rate."""
    if result["estimate"] is None:
        return "undecided"
    if result["ci_low"] > 0.5:
        return "b_better"
    if result["ci_high"] < 0.5:
        return "a_better"
    return "undecided"
