"""How far a judge agrees with the person, and what it adds: pure functions of votes, stars and scores.

Inputs are an experiment's decided votes (labels and seeds), the person's star ratings and one
judge's scores, each keyed by cell (variant label, seed). Nothing here reads the library or
loads a model; intervals come from scipy.

Three things are kept apart and labelled: the judge's agreement with the person, the judge's
own (machine) verdict, and the prediction-powered verdict that uses the judge only through a
correction measured on the person's votes (`ppi.py`). The human verdict is never touched.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

from . import ppi

Cell = tuple[str, int]  # (variant label, seed)


@lru_cache(maxsize=4096)
def wilson(successes: int, trials: int, alpha: float = ppi.ALPHA) -> tuple[float, float]:
    """scipy's Wilson score interval (binomtest(...).proportion_ci(method='wilson')); binomtest also
    computes a p-value, which costs most of the time, so each count is computed once."""
    from scipy.stats import binomtest

    if trials == 0:
        return 0.0, 1.0
    ci = binomtest(successes, trials).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return float(ci.low), float(ci.high)


def decided(votes: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """(winner, loser, seed) for each vote that picked a side (ties left out)."""
    out = []
    for v in votes:
        if v["winner"] in (v["left"], v["right"]) and v["left"] != v["right"]:
            out.append((v["winner"], v["right"] if v["winner"] == v["left"] else v["left"], v["seed"]))
    return out


def vote_agreement(votes: Sequence[Mapping[str, Any]], scores: Mapping[Cell, float]) -> dict[str, Any]:
    """Share of the person's decided votes where the judge scores the chosen image higher, with a Wilson
    95% interval. Votes whose two images the judge scores equally are counted in `judge_ties` only."""
    agree = total = ties = unscored = 0
    for winner, loser, seed in decided(votes):
        if (winner, seed) not in scores or (loser, seed) not in scores:
            unscored += 1
            continue
        if scores[(winner, seed)] == scores[(loser, seed)]:
            ties += 1
            continue
        total += 1
        agree += scores[(winner, seed)] > scores[(loser, seed)]
    low, high = wilson(agree, total)
    return {"votes": total, "agree": agree, "share": agree / total if total else None, "ci_low": low,
            "ci_high": high, "judge_ties": ties, "unscored_votes": unscored,
            "method": "share of your decided votes where the judge prefers the image you chose; Wilson 95% interval"}


def star_agreement(stars: Mapping[Cell, float], scores: Mapping[Cell, float]) -> dict[str, Any]:
    """Kendall's tau (scipy.stats.kendalltau, tau-b) between the person's stars and the judge's scores."""
    from scipy.stats import kendalltau

    cells = sorted(set(stars) & set(scores), key=str)
    if len(cells) < 2:
        return {"images": len(cells), "tau": None, "p_value": None}
    result = kendalltau([stars[c] for c in cells], [scores[c] for c in cells])
    tau = None if result.statistic != result.statistic else float(result.statistic)  # NaN when constant
    p_value = None if result.pvalue != result.pvalue else float(result.pvalue)
    return {"images": len(cells), "tau": tau, "p_value": p_value}


def machine_verdict(a: str, b: str, seeds: Sequence[int], scores: Mapping[Cell, float]) -> dict[str, Any]:
    """The judge's own verdict on a vs b: on how many seeds it scores b's image higher (Wilson interval).
    A machine verdict, labelled as such; it never enters the person's."""
    wins_a = wins_b = ties = 0
    for seed in seeds:
        if (a, seed) in scores and (b, seed) in scores:
            pref = ppi.preference(scores[(a, seed)], scores[(b, seed)])
            wins_b += pref == 1.0
            wins_a += pref == 0.0
            ties += pref == 0.5
    n = wins_a + wins_b
    low, high = wilson(wins_b, n)
    return {"label": "machine verdict (the judge's, not yours)", "wins_a": wins_a, "wins_b": wins_b, "ties": ties,
            "win_rate_b": wins_b / n if n else None, "ci_low": low, "ci_high": high}


def prediction_powered(a: str, b: str, seeds: Sequence[int], votes: Sequence[Mapping[str, Any]],
                       scores: Mapping[Cell, float], alpha: float = ppi.ALPHA) -> dict[str, Any]:
    """b's win rate from the judge's preference on every scored pair, corrected by the person's decided
    votes on a vs b (prediction-powered inference), beside the human-only interval on the same votes."""
    units = [s for s in seeds if (a, s) in scores and (b, s) in scores]
    f = {s: ppi.preference(scores[(a, s)], scores[(b, s)]) for s in units}
    labels, f_labelled, voted = [], [], set()
    for winner, loser, seed in decided(votes):
        if {winner, loser} == {a, b} and seed in f:
            labels.append(1.0 if winner == b else 0.0)
            f_labelled.append(f[seed])
            voted.add(seed)
    result = ppi.ppi_mean([f[s] for s in units], labels, f_labelled, alpha, voted_units=len(voted))
    result["state"] = ppi.ppi_state(result)
    result["pairs_judged"] = len(units)
    result["votes_used"] = len(labels)
    result["method"] = ("prediction-powered (Angelopoulos et al., Science 2023): the judge on every pair, corrected "
                        "by your votes; fixed-sample 95% interval, not anytime-valid")
    human = ppi.classical_interval(labels, alpha)
    human["method"] = "your votes alone, same votes, fixed-sample 95% interval (CLT)"
    return {"prediction_powered": result, "human_only": human}


def judge_report(labels: Sequence[str], seeds: Sequence[int], votes: Sequence[Mapping[str, Any]],
                 stars: Mapping[Cell, float], scores: Mapping[Cell, float]) -> dict[str, Any]:
    """Everything `ab stats` shows for one judge: agreement, star agreement, and per pair the machine
    verdict and the prediction-powered verdict beside the human-only one."""
    pairs = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            pairs.append({"a": a, "b": b, "machine_verdict": machine_verdict(a, b, seeds, scores),
                          **prediction_powered(a, b, seeds, votes, scores)})
    return {"images_scored": len(scores), "agreement": vote_agreement(votes, scores),
            "stars": star_agreement(stars, scores), "pairs": pairs}
