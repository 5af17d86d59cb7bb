"""Per-term effects of a prompt matrix: which words helped, with an interval and a verdict.

A matrix experiment's variants are the base prompt with some of its terms added (each variant
records which: an indicator vector x in {0, 1}^k). From blind pairwise votes we fit the
Bradley–Terry model whose strength is additive in the terms,

    P(a beats b) = sigmoid((x_a - x_b) · beta),

a logistic regression without intercept on the term-indicator differences of the decisive
votes (ties do not count), fitted by maximum likelihood with scipy.optimize.minimize
(method "trust-exact", analytic gradient and Hessian) under a weak Gaussian prior
beta_j ~ N(0, PRIOR_SD^2), which keeps a term that never lost at a finite estimate. A term's
effect is reported as the win probability sigmoid(beta_j) of "base + term" against the
same prompt without it, with a fixed-sample 95% Wald interval sigmoid(beta_j ± 1.96 se_j),
and the decisive votes on pairs that differ in that term (the votes its estimate rests on).

The verdict state per term is read from a *sequential* interval, not from the 95% one: an
asymptotic confidence sequence (Waudby-Smith, Arbour, Sinha, Kennedy, Ramdas, "Time-uniform
central limit theory and asymptotic confidence sequences", Ann. Statist. 2024, Theorem 2.2,
the Robbins normal-mixture boundary with the empirical standard error), at level alpha / k
(Bonferroni over the k terms). What it guarantees, honestly: the coverage holds uniformly over
time *asymptotically* (as the votes grow), for the logistic MLE through its asymptotic
linearity, when the additive model holds (no interactions between terms); it is not exact at
a handful of votes, so no state is given before MIN_VOTES decisive votes. The simulation
tests in tests/test_effects.py check the error rates at the sizes people use. States:
"helps" (the sequence lies above 50%), "hurts" (below), "no effect that matters" (inside
50% ± verdicts.MARGIN), else "keep voting".

Stars, when cells are rated, get the same additive model by least squares within seeds
(star difference per term, with a t interval); they describe and never change the state.
Nothing here touches torch or sqlite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import verdicts

ALPHA = 0.05
Z95 = 1.959963984540054
PRIOR_SD = 2.5  # logit scale: a term that moves the win rate past 99% is already implausible
MIN_VOTES = 20  # no state before this many decisive votes in the experiment
CS_PLANNED_VOTES = 100  # the confidence sequence is tightest around this many decisive votes
STATES = ("helps", "hurts", "no_effect", "undecided")
STATE_TEXT = {"helps": "helps", "hurts": "hurts", "no_effect": "no effect that matters",
              "undecided": "keep voting"}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def fit_effects(diffs: np.ndarray, prior_sd: float = PRIOR_SD) -> tuple[np.ndarray, np.ndarray]:
    """beta and its covariance from DIFFS (votes × terms): x_winner - x_loser of each decisive vote.

    Maximises sum log sigmoid(d · beta) - |beta|^2 / (2 prior_sd^2) with scipy.optimize.minimize
    ("trust-exact"); the covariance is the inverse of the penalised observed information.
    """
    from scipy.optimize import minimize

    diffs = np.asarray(diffs, dtype=float)
    k = diffs.shape[1]
    ridge = 1.0 / prior_sd**2

    def objective(beta):
        z = diffs @ beta
        return float(np.logaddexp(0.0, -z).sum() + 0.5 * ridge * beta @ beta)

    def gradient(beta):
        return -diffs.T @ _sigmoid(-(diffs @ beta)) + ridge * beta

    def hessian(beta):
        p = _sigmoid(diffs @ beta)
        return (diffs * (p * (1 - p))[:, None]).T @ diffs + ridge * np.eye(k)

    result = minimize(objective, np.zeros(k), jac=gradient, hess=hessian, method="trust-exact")
    beta = result.x
    return beta, np.linalg.inv(hessian(beta))


def cs_half_width(se: np.ndarray | float, n: int, alpha: float, planned: int = CS_PLANNED_VOTES):
    """Half-width of the asymptotic (1 - alpha) confidence sequence at N votes for an estimate with standard error SE.

    Waudby-Smith et al. (2024), Thm 2.2: theta_hat ± sigma_hat * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) *
    log(sqrt(n rho^2 + 1) / alpha)), with sigma_hat = se * sqrt(n), and rho chosen to make the
    boundary tightest near PLANNED votes (their eq. for rho*).
    """
    n = max(int(n), 1)
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / planned
    factor = 2 * (n * rho2 + 1) / (n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    return np.asarray(se, dtype=float) * math.sqrt(factor)


def term_state(beta: float, half: float, votes: int, margin: float = verdicts.MARGIN) -> str:
    """helps / hurts / no_effect / undecided from the sequence beta ± half (logit scale)."""
    if votes < MIN_VOTES or not np.isfinite(half):
        return "undecided"
    low, high = beta - half, beta + half
    if low > 0:
        return "helps"
    if high < 0:
        return "hurts"
    bound = math.log((0.5 + margin) / (0.5 - margin))
    if -bound < low and high < bound:
        return "no_effect"
    return "undecided"


def effects_from_votes(terms: Sequence[str], indicators: Mapping[str, Sequence[int]],
                       comparisons: Sequence[tuple[str, str]], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Each term's effect from (winner, loser) label pairs, unranked (in TERMS' order).

    indicators: label -> 0/1 per term. Returns per term: term, effect (win probability against
    its absence), low, high (95%), votes, state, state_text, beta, se, sequence ([low, high]
    win probabilities of the anytime confidence sequence at level alpha / k).
    """
    k = len(terms)
    x = {label: np.asarray(v, dtype=float) for label, v in indicators.items()}
    diffs = np.array([x[w] - x[loser] for w, loser in comparisons]).reshape(-1, k)
    differing = (diffs != 0).sum(axis=0)
    if len(diffs) == 0:
        return [{"term": t, "effect": None, "low": None, "high": None, "votes": 0, "state": "undecided",
                 "state_text": STATE_TEXT["undecided"], "beta": None, "se": None, "sequence": None}
                for t in terms]
    beta, cov = fit_effects(diffs)
    se = np.sqrt(np.diag(cov))
    half = cs_half_width(se, len(diffs), alpha / max(k, 1))
    out = []
    for j, term in enumerate(terms):
        state = term_state(beta[j], half[j], len(diffs)) if differing[j] else "undecided"
        out.append({"term": term, "effect": float(_sigmoid(beta[j])),
                    "low": float(_sigmoid(beta[j] - Z95 * se[j])), "high": float(_sigmoid(beta[j] + Z95 * se[j])),
                    "votes": int(differing[j]), "state": state, "state_text": STATE_TEXT[state],
                    "beta": float(beta[j]), "se": float(se[j]),
                    "sequence": [float(_sigmoid(beta[j] - half[j])), float(_sigmoid(beta[j] + half[j]))]})
    return out


def star_effects(terms: Sequence[str], indicators: Mapping[str, Sequence[int]],
                 stars: Mapping[str, Mapping[int, float]]) -> list[dict[str, Any]] | None:
    """Stars gained per term: least squares of stars on the term indicators within seeds, with t intervals.

    stars: label -> {seed: stars}. None when there are too few ratings to leave a residual degree of freedom.
    """
    from scipy.stats import t as student

    rows = [(label, seed, value) for label, by_seed in stars.items() if label in indicators
            for seed, value in by_seed.items()]
    seeds = sorted({seed for _label, seed, _value in rows})
    k = len(terms)
    df = len(rows) - len(seeds) - k
    if df < 1:
        return None
    x = np.array([indicators[label] for label, _seed, _value in rows], dtype=float)
    y = np.array([value for *_rest, value in rows], dtype=float)
    groups = np.array([seeds.index(seed) for _label, seed, _value in rows])
    for g in range(len(seeds)):  # within-seed: remove each seed's mean
        mask = groups == g
        x[mask] -= x[mask].mean(axis=0)
        y[mask] -= y[mask].mean()
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    sigma2 = float(residual @ residual) / df
    cov = sigma2 * np.linalg.pinv(x.T @ x)
    half = student.ppf(0.975, df) * np.sqrt(np.diag(cov))
    return [{"term": term, "stars": float(coef[j]), "low": float(coef[j] - half[j]),
             "high": float(coef[j] + half[j]), "ratings": len(rows)} for j, term in enumerate(terms)]


def rank_terms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted best first (terms without votes last)."""
    return sorted(rows, key=lambda r: (r["effect"] is None, -(r["effect"] or 0.0)))


# -- the next pair: one that differs in the least settled term -----------------------------


def least_settled_term(rows: list[dict[str, Any]]) -> int | None:
    """Index (in ROWS' order) of the undecided term whose sequence is widest; a term without votes first."""
    open_terms = [j for j, r in enumerate(rows) if r["state"] == "undecided"]
    if not open_terms:
        return None

    def width(j: int) -> float:
        seq = rows[j]["sequence"]
        return math.inf if seq is None or not rows[j]["votes"] else seq[1] - seq[0]

    return max(open_terms, key=lambda j: (width(j), -rows[j]["votes"]))


def pairs_for_term(j: int, pairs: Sequence[tuple[str, str]], indicators: Mapping[str, Sequence[int]]
                   ) -> list[tuple[str, str]]:
    """The PAIRS that differ in term J, those differing in the fewest other terms only."""
    def others(pair):
        a, b = (np.asarray(indicators[p]) for p in pair)
        return int((a != b).sum()) - 1

    useful = [p for p in pairs if indicators[p[0]][j] != indicators[p[1]][j]]
    if not useful:
        return []
    fewest = min(others(p) for p in useful)
    return [p for p in useful if others(p) == fewest]


def choose_term_pair(terms: Sequence[str], indicators: Mapping[str, Sequence[int]],
                     comparisons: Sequence[tuple[str, str]], seeds: Sequence[int] = (0,),
                     seed_votes: Mapping[tuple[str, str, int], int] | None = None) -> dict[str, Any] | None:
    """The matrix strategy for the next blind pair, in the shape of `verdicts.choose_next_pair`: {a, b, seed}.

    The least settled term (undecided, widest confidence sequence); a pair of variants that
    differ in it and in as few other terms as possible, the least voted of them; its least
    voted seed. None when every term has a state.
    """
    seed_votes = seed_votes or {}
    labels = list(indicators)
    rows = effects_from_votes(terms, indicators, comparisons)
    j = least_settled_term(rows)
    if j is None:
        return None
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    candidates = pairs_for_term(j, pairs, indicators)
    if not candidates:
        return None

    def pair_votes(pair, seed=None):
        return sum(count for (x, y, s), count in seed_votes.items()
                   if {x, y} == set(pair) and (seed is None or s == seed))

    a, b = min(candidates, key=pair_votes)
    seed = min(seeds, key=lambda s: pair_votes((a, b), s))
    return {"a": a, "b": b, "seed": seed, "term": terms[j]}


def filter_candidates(terms: Sequence[str], indicators: Mapping[str, Sequence[int]],
                      comparisons: Sequence[tuple[str, str]], candidates: list[tuple[int, str, str]]
                      ) -> list[tuple[int, str, str]]:
    """(seed, a, b) CANDIDATES narrowed to the pairs that teach the least settled term most; all when none do.

    The hook `experiments.votes.next_pair` calls for a matrix: its own order (skips, seeds
    taking turns) then picks among what is left.
    """
    rows = effects_from_votes(terms, indicators, comparisons)
    j = least_settled_term(rows)
    if j is None:
        return candidates
    keep = set(pairs_for_term(j, [(a, b) for _seed, a, b in candidates], indicators))
    return [c for c in candidates if (c[1], c[2]) in keep] or candidates


# -- a matrix experiment's record and votes ------------------------------------------------


def decisive_comparisons(votes: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(winner, loser) of each decisive vote (ties left out), from votes with left, right, winner labels."""
    return [(v["winner"], v["right"] if v["winner"] == v["left"] else v["left"])
            for v in votes if v["winner"] in (v["left"], v["right"])]


def terms_table(record: Mapping[str, Any], votes: Sequence[Mapping[str, Any]],
                stars: Mapping[str, Mapping[int, float]] | None = None) -> list[dict[str, Any]]:
    """`ab stats`' `terms` for a matrix (RECORD: its terms and per-label indicators), best first.

    Each row: term, effect, low, high, votes, state (helps/hurts/no_effect/undecided), state_text,
    sequence, and `stars` (the star difference it makes, with a 95% interval) when cells are rated.
    """
    rows = effects_from_votes(record["terms"], record["indicators"], decisive_comparisons(votes))
    by_stars = star_effects(record["terms"], record["indicators"], stars or {}) or []
    for row, star in zip(rows, by_stars):
        row["stars"] = {k: star[k] for k in ("stars", "low", "high", "ratings")}
    letters = {text: letter for letter, text in record.get("letters", {}).items()}
    for row in rows:
        row["letter"] = letters.get(row["term"])
    return rank_terms(rows)


def matrix_candidates(record: Mapping[str, Any], votes: Sequence[Mapping[str, Any]],
                      candidates: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The next-pair strategy for a matrix experiment: `filter_candidates` on its record and votes."""
    return filter_candidates(record["terms"], record["indicators"], decisive_comparisons(votes), candidates)


def terms_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ranked effect table as text lines (what `ab stats` prints for a matrix)."""
    if not rows:
        return []
    width = max(len(r["term"]) for r in rows)
    lines = [f"  term effects (win probability against the same prompt without it; 95% interval; state "
             f"from an asymptotic confidence sequence, α = {ALPHA} over all terms):"]
    for rank, r in enumerate(rows, 1):
        name = f"{r.get('letter') + ' ' if r.get('letter') else ''}{r['term']}"
        if r["effect"] is None:
            lines.append(f"  #{rank} {name:<{width + 2}}  no votes yet")
            continue
        line = (f"  #{rank} {name:<{width + 2}}  {r['effect']:.0%} ({r['low']:.0%}–{r['high']:.0%}), "
                f"{r['votes']} votes — {r['state_text']}")
        if r.get("stars"):
            line += f"; stars {r['stars']['stars']:+.2f} ({r['stars']['low']:+.2f} to {r['stars']['high']:+.2f})"
        lines.append(line)
    return lines


def pair_chooser(record: Mapping[str, Any]):
    """The matrix strategy with `verdicts.choose_next_pair`'s signature, for RECORD (a matrix's terms and indicators).

    counts: (a, b) -> (wins_a, wins_b) as that chooser takes them; the effects depend on the votes
    only through those counts, so nothing else is needed.
    """
    def choose(labels: Sequence[str], counts: Mapping[tuple[str, str], tuple[int, int]], seeds: Sequence[int] = (0,),
               seed_votes: Mapping[tuple[str, str, int], int] | None = None, alpha: float = ALPHA,
               margin: float = verdicts.MARGIN) -> dict[str, Any] | None:
        comparisons: list[tuple[str, str]] = []
        for (a, b), (wins_a, wins_b) in counts.items():
            comparisons += [(a, b)] * wins_a + [(b, a)] * wins_b
        indicators = {label: record["indicators"][label] for label in labels}
        return choose_term_pair(record["terms"], indicators, comparisons, seeds, seed_votes)

    return choose


def chooser_for(experiment: Mapping[str, Any]):
    """The next-pair chooser for EXPERIMENT: the matrix strategy for a prompt matrix, else `verdicts.choose_next_pair`."""
    record = (experiment.get("params") or {}).get("matrix")
    return pair_chooser(record) if record else verdicts.choose_next_pair
