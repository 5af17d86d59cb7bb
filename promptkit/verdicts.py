"""Anytime-valid A/B verdicts: e-values, confidence sequences, Holm, position bias, agreement, next pair.

A person reads the verdict after every vote and stops when it says a variant wins, so the
verdict must stay valid at any stopping time. A fixed-sample sign test read that way declares
a winner between two identical prompts in about a third of experiments; the sequential test
below keeps that rate under alpha however often it is read.

The e-value is the beta-binomial mixture martingale for a Bernoulli win rate with a uniform
Beta(1, 1) mixing prior (Robbins' method of mixtures). For k wins in n decisive votes,

    e_p(k, n) = B(k + 1, n - k + 1) / B(1, 1) / (p^k (1 - p)^(n - k)),

a nonnegative martingale under win rate p with E = 1, so by Ville's inequality
P(sup_n e_p >= 1/alpha) <= alpha: rejecting "equally good" (p = 1/2) when e >= 1/alpha is
valid at any stopping time, and {p : e_p < 1/alpha} is a confidence sequence.
Sources: Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Ann. Statist. 49(2), 2021 (section on the method of mixtures);
Ramdas, Grünwald, Vovk, Shafer, "Game-theoretic statistics and safe anytime-valid
inference", Statist. Sci. 38(4), 2023.

Nothing here touches torch or sqlite: these are pure functions of counts.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

ALPHA = 0.05
MARGIN = 0.10  # "no difference that matters": the win rate within 50% ± 10 points
VOTES_CAP = 2000  # votes_to_go estimates stop here ("more than 2000")
PLANNING_WIN_RATE = 0.65  # with no votes yet, votes_to_go is planned for this win rate

STATES = ("a_better", "b_better", "equivalent", "undecided")


# -- e-values and confidence sequences -------------------------------------------------


def log_e_value(k, n, p: float = 0.5):
    """log of the beta-binomial mixture e-value against win rate p (k, n may be real arrays)."""
    from scipy.special import betaln

    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    # B(1, 1) = 1, so the prior's normaliser drops out.
    out = betaln(k + 1, n - k + 1) - k * math.log(p) - (n - k) * math.log1p(-p)
    return out if out.ndim else float(out)


def e_value(k: int, n: int) -> float:
    """The e-value against "equally good" (p = 1/2) after k wins in n decisive votes."""
    return math.exp(min(log_e_value(k, n), 700.0))


def confidence_sequence(k: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The win rates p whose e-value stays below 1/alpha: a (1 - alpha) confidence sequence.

    log e_p is convex in p with its minimum (<= 0) at the observed rate k/n, so each end is one
    root, found with brentq on that side.
    """
    from scipy.optimize import brentq

    if n == 0:
        return 0.0, 1.0
    threshold = math.log(1 / alpha)
    mle = k / n
    eps = 1e-12

    def excess(p: float) -> float:
        return log_e_value(k, n, p) - threshold

    low = 0.0 if k == 0 else brentq(excess, eps, mle if mle < 1 else 1 - eps, xtol=1e-10)
    high = 1.0 if k == n else brentq(excess, max(mle, eps), 1 - eps, xtol=1e-10)
    return float(low), float(high)


def _equivalent(k, n, alpha: float, margin: float):
    """True where the whole confidence sequence lies inside [0.5 - margin, 0.5 + margin]."""
    threshold = math.log(1 / alpha)
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    rate = np.divide(k, n, out=np.full_like(k, 0.5), where=n > 0)
    inside = (n > 0) & (np.abs(rate - 0.5) < margin)
    ends = ((log_e_value(k, n, 0.5 - margin) >= threshold) & (log_e_value(k, n, 0.5 + margin) >= threshold))
    return inside & ends


def votes_to_go(k: int, n: int, alpha: float = ALPHA, margin: float = MARGIN, cap: int = VOTES_CAP) -> int:
    """More decisive votes until a verdict if B keeps winning at its current (shrunk) rate.

    The rate is (k + 1) / (n + 2), so a handful of votes does not promise an early stop; with no
    votes at all the plan assumes a PLANNING_WIN_RATE win rate. Returns cap when neither a winner
    nor equivalence would be reached within cap more votes.
    """
    rate = PLANNING_WIN_RATE if n == 0 else (k + 1) / (n + 2)
    totals = np.arange(n + 1, n + cap + 1, dtype=float)
    wins = rate * totals
    done = (log_e_value(wins, totals) >= math.log(1 / alpha)) | _equivalent(wins, totals, alpha, margin)
    hits = np.flatnonzero(done)
    return int(hits[0] + 1) if hits.size else cap


def decide(wins_a: int, wins_b: int, alpha: float = ALPHA, margin: float = MARGIN) -> dict[str, Any]:
    """State, e-value, confidence sequence (for B's win rate) and votes_to_go for one pair at level alpha."""
    n = wins_a + wins_b
    log_e = log_e_value(wins_b, n)
    low, high = confidence_sequence(wins_b, n, alpha)
    if log_e >= math.log(1 / alpha):
        state = "b_better" if wins_b > wins_a else "a_better"
    elif bool(_equivalent(wins_b, n, alpha, margin)):
        state = "equivalent"
    else:
        state = "undecided"
    out: dict[str, Any] = {"state": state, "e_value": math.exp(min(log_e, 700.0)),
                           "confidence_sequence": [low, high], "alpha": alpha}
    if state == "undecided":
        out["votes_to_go"] = votes_to_go(wins_b, n, alpha, margin)
    return out


def holm_levels(e_values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """Per-comparison alpha for Holm–Bonferroni applied to the anytime-valid p-values min(1, 1/e).

    1/e at a stopping time is a valid p-value (E[e] <= 1 and Markov), and Holm needs nothing more,
    so the family-wise error over all comparisons stays under alpha whenever the verdict is read.
    A comparison Holm rejects gets the level it was rejected at, alpha / (m - rank); the others
    alpha / m (Bonferroni), at which none of them is rejected either.
    """
    m = len(e_values)
    levels = [alpha / m] * m
    for rank, i in enumerate(sorted(range(m), key=lambda j: -e_values[j])):
        level = alpha / (m - rank)
        if min(1.0, 1.0 / e_values[i]) > level:
            break
        levels[i] = level
    return levels


def verdict_text(state: str, a: str, b: str, to_go: int | None = None, margin: float = MARGIN,
                 cap: int = VOTES_CAP) -> str:
    """The state in words, as the page and the CLI print it."""
    if state == "b_better":
        return f"{b} is better — you can stop"
    if state == "a_better":
        return f"{a} is better — you can stop"
    if state == "equivalent":
        return (f"no difference that matters is likely (within ±{margin * 100:.0f} points of 50%) "
                "— you can stop")
    if to_go is not None and to_go >= cap:
        return f"keep voting: more than {cap} more decisive votes (the two look very close)"
    return f"keep voting: about {to_go} more decisive votes"


def method_text(comparisons: int, alpha: float = ALPHA) -> str:
    text = (f"anytime-valid: beta-binomial mixture e-value and confidence sequence, α = {alpha}, "
            "valid whenever you look; ties do not count")
    if comparisons > 1:
        text += f"; Holm–Bonferroni over {comparisons} comparisons"
    return text


# -- position bias and rater agreement ---------------------------------------------------


def position_bias(left_wins: int, right_wins: int, alpha: float = ALPHA) -> dict[str, Any]:
    """Share of decisive votes that went to the left image, with a Wilson interval."""
    from scipy.stats import binomtest

    n = left_wins + right_wins
    if n == 0:
        return {"left": 0, "right": 0, "left_share": None, "ci_low": 0.0, "ci_high": 1.0}
    ci = binomtest(left_wins, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return {"left": left_wins, "right": right_wins, "left_share": left_wins / n,
            "ci_low": float(ci.low), "ci_high": float(ci.high)}


def cohen_kappa(first: Sequence[Any], second: Sequence[Any]) -> float:
    """Cohen's kappa for two raters' labels of the same items (Cohen 1960).

    Written here because neither statsmodels nor scikit-learn is a dependency; the test checks
    it against a worked example from the literature.
    """
    categories = sorted(set(first) | set(second), key=str)
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(first, second, strict=True):
        table[index[x], index[y]] += 1
    total = table.sum()
    observed = np.trace(table) / total
    expected = float(table.sum(axis=1) @ table.sum(axis=0)) / total**2
    return 1.0 if expected == 1 else float((observed - expected) / (1 - expected))


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa (Fleiss 1971) from a subjects × categories table of rater counts.

    Every row must sum to the same number of raters.
    """
    table = np.asarray(table, dtype=float)
    subjects = table.shape[0]
    raters = table[0].sum()
    shares = table.sum(axis=0) / (subjects * raters)
    per_subject = ((table**2).sum(axis=1) - raters) / (raters * (raters - 1))
    observed, expected = per_subject.mean(), float((shares**2).sum())
    return 1.0 if expected == 1 else float((observed - expected) / (1 - expected))


def rater_agreement(choices: Mapping[Any, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Agreement between raters on the items every one of them voted on: Cohen's kappa for two, Fleiss' for more.

    choices: item -> {rater: choice}. None with fewer than two raters or no item they share.
    """
    raters = sorted({r for votes in choices.values() for r in votes})
    shared = [votes for votes in choices.values() if all(r in votes for r in raters)]
    if len(raters) < 2 or not shared:
        return None
    if len(raters) == 2:
        kappa = cohen_kappa([v[raters[0]] for v in shared], [v[raters[1]] for v in shared])
        return {"method": "Cohen's kappa", "raters": raters, "items": len(shared), "kappa": kappa}
    categories = sorted({c for v in shared for c in v.values()}, key=str)
    table = np.array([[sum(1 for r in raters if v[r] == c) for c in categories] for v in shared])
    return {"method": "Fleiss' kappa", "raters": raters, "items": len(shared), "kappa": fleiss_kappa(table)}


# -- the next blind pair -------------------------------------------------------------------


def _settled(wins_a: int, wins_b: int, alpha: float, margin: float) -> bool:
    n = wins_a + wins_b
    return bool(log_e_value(wins_b, n) >= math.log(1 / alpha) or _equivalent(wins_b, n, alpha, margin))


def _spread(wins_a: int, wins_b: int) -> float:
    n = wins_a + wins_b
    rate = (wins_b + 1) / (n + 2)
    return math.sqrt(rate * (1 - rate) / (n + 3))


def choose_next_pair(labels: Sequence[str], counts: Mapping[tuple[str, str], tuple[int, int]],
                     seeds: Sequence[int] = (0,), seed_votes: Mapping[tuple[str, str, int], int] | None = None,
                     alpha: float = ALPHA, margin: float = MARGIN,
                     options: Collection[tuple[str, str, int]] | None = None,
                     include_settled: bool = False) -> dict[str, Any] | None:
    """The (pair, seed) whose vote is expected to move the verdict most; None when every pair is settled.

    labels: the variants. counts: (a, b) -> (wins_a, wins_b) over decisive votes, for pairs
    with a before b in labels (a missing pair has none). seed_votes: (a, b, seed) -> votes cast
    on that pair at that seed (ties included). options: the (a, b, seed) that may be asked
    (default: every pair on every seed); a pair with none is not chosen. include_settled: rank
    the settled pairs too (for a person who keeps voting after every verdict is in), so None
    only when there is no option.

    1. The current top is the variant with the best mean shrunk win rate (wins + 1) / (n + 2)
       over its opponents.
    2. Among the unsettled pairs that involve it (no verdict yet at the Bonferroni level
       alpha / pairs), the least settled: the widest interval, measured cheaply as the
       standard deviation of the Beta(wins_b + 1, wins_a + 1) posterior. When
       the top is settled against everyone, the same rule over the remaining unsettled pairs.
    3. Its least-voted seed, then the seed where both variants have been shown least.

    The result names the variants; the caller shows them blind, left and right at random.
    """
    seed_votes = seed_votes or {}
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    if not pairs:
        return None
    allowed: dict[tuple[str, str], list[int]] = {pair: list(seeds) for pair in pairs}
    if options is not None:
        allowed = {pair: [] for pair in pairs}
        for a, b, seed in options:
            allowed[(a, b) if (a, b) in allowed else (b, a)].append(seed)
    level = alpha / len(pairs)
    record = {pair: counts.get(pair, (0, 0)) for pair in pairs}
    open_pairs = [pair for pair in pairs if allowed[pair]
                  and (include_settled or not _settled(*record[pair], level, margin))]
    if not open_pairs:
        return None
    shrunk = {label: [] for label in labels}
    for (a, b), (wins_a, wins_b) in record.items():
        n = wins_a + wins_b
        shrunk[a].append((wins_a + 1) / (n + 2))
        shrunk[b].append((wins_b + 1) / (n + 2))
    top = max(labels, key=lambda label: np.mean(shrunk[label]))
    contenders = [pair for pair in open_pairs if top in pair] or open_pairs
    a, b = max(contenders, key=lambda pair: _spread(*record[pair]))

    shown: dict[tuple[str, int], int] = {}
    for (x, y, seed), count in seed_votes.items():
        shown[(x, seed)] = shown.get((x, seed), 0) + count
        shown[(y, seed)] = shown.get((y, seed), 0) + count
    seed = min(allowed[(a, b)], key=lambda s: (seed_votes.get((a, b, s), 0) + seed_votes.get((b, a, s), 0),
                                               shown.get((a, s), 0) + shown.get((b, s), 0)))
    return {"a": a, "b": b, "seed": seed}
