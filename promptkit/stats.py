"""Verdicts for A/B experiments: the anytime-valid state, with sign tests, Wilson intervals, Wilcoxon on stars
and Bradley–Terry as descriptions.

The decision (state, e-value, confidence sequence, votes to go) comes from promptkit.verdicts and stays
valid however often it is read; the fixed-sample numbers beside it describe the votes but decide nothing.
Every number comes from scipy or choix.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from . import verdicts

ALPHA = 0.05
POWER = 0.80
TARGET_WIN_RATE = 0.65
BOOTSTRAP_SAMPLES = 200
BT_REGULARISATION = 0.01  # choix's alpha: keeps a variant that never lost at a finite score
RANKING_NO_VOTES = "no votes yet"


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    if trials == 0:
        return 0.0, 1.0
    ci = binomtest(successes, trials).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
    return float(ci.low), float(ci.high)


def sign_test_p(successes: int, trials: int) -> float:
    from scipy.stats import binomtest

    if trials == 0:
        return 1.0
    return float(binomtest(successes, trials, 0.5, alternative="two-sided").pvalue)


@lru_cache(maxsize=16)
def votes_needed(win_rate: float = TARGET_WIN_RATE, alpha: float = ALPHA, power: float = POWER) -> int:
    """Decisive votes for an exact two-sided sign test to reach POWER against WIN_RATE."""
    from scipy.stats import binom

    for n in range(5, 5000):
        # Largest c with P(X <= c) <= alpha/2 under no difference: reject when X <= c or X >= n - c.
        c = int(binom.ppf(alpha / 2, n, 0.5))
        while c >= 0 and binom.cdf(c, n, 0.5) > alpha / 2:
            c -= 1
        if c < 0:
            continue
        achieved = binom.cdf(c, n, win_rate) + binom.sf(n - c - 1, n, win_rate)
        if achieved >= power:
            return n
    return 5000


def pair_summary(a: str, b: str, wins_a: int, wins_b: int, ties: int, alpha: float = ALPHA) -> dict[str, Any]:
    """Wins, losses, ties; the anytime-valid state at level alpha, and B's win rate described (Wilson, sign test).

    state is a_better, b_better, equivalent (B's whole confidence sequence within 50% ± MARGIN)
    or undecided, with votes_to_go; confidence_sequence is for B's win rate. With several pairs,
    holm_pairs redoes the state under Holm–Bonferroni.
    """
    decisive = wins_a + wins_b
    low, high = wilson_interval(wins_b, decisive)
    p_value = sign_test_p(wins_b, decisive)
    rate = wins_b / decisive if decisive else None
    if decisive and low > 0.5:
        verdict = f"{b} beats {a} (p = {p_value:.3g}; {b} wins {rate:.0%}, 95% CI {low:.0%}–{high:.0%})"
    elif decisive and high < 0.5:
        verdict = f"{a} beats {b} (p = {p_value:.3g}; {a} wins {1 - rate:.0%}, 95% CI {1 - high:.0%}–{1 - low:.0%})"
    else:
        more = max(1, votes_needed() - decisive)
        verdict = (f"not enough evidence yet: about {more} more decisive votes would be needed to detect a "
                   f"{TARGET_WIN_RATE:.0%} win rate (exact sign test, two-sided α = {ALPHA}, {POWER:.0%} power; "
                   "ties do not count)")
    summary = {"a": a, "b": b, "wins_a": wins_a, "wins_b": wins_b, "ties": ties, "win_rate_b": rate,
               "ci_low": low, "ci_high": high, "p_value": p_value, "verdict": verdict}
    return summary | _sequential(a, b, wins_a, wins_b, alpha, 1, alpha)


def _sequential(a: str, b: str, wins_a: int, wins_b: int, level: float, comparisons: int,
                family_alpha: float) -> dict[str, Any]:
    """The anytime-valid keys of a pair summary, decided at this pair's level."""
    decision = verdicts.decide(wins_a, wins_b, level, verdicts.MARGIN)
    decision["verdict_text"] = verdicts.verdict_text(decision["state"], a, b, decision.get("votes_to_go"))
    decision["margin"] = verdicts.MARGIN
    decision["method"] = verdicts.method_text(comparisons, family_alpha)
    return decision


def holm_pairs(pairs: list[dict[str, Any]], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """The pair summaries with their sequential verdicts redone under Holm–Bonferroni over all the pairs.

    Holm runs on the anytime-valid p-values min(1, 1/e); each pair's state, confidence sequence
    and votes_to_go are then at the level Holm gives it (see verdicts.holm_levels).
    """
    levels = verdicts.holm_levels([p["e_value"] for p in pairs], alpha)
    return [p | _sequential(p["a"], p["b"], p["wins_a"], p["wins_b"], level, len(pairs), alpha)
            for p, level in zip(pairs, levels)]


def position_summary(votes: list[dict[str, Any]]) -> dict[str, Any]:
    """Left/right position bias: the share of decisive votes that went to the left image, with a Wilson interval."""
    left = sum(1 for v in votes if v["winner"] == v["left"])
    right = sum(1 for v in votes if v["winner"] == v["right"])
    return verdicts.position_bias(left, right, ALPHA)


def agreement_summary(votes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Kappa between raters (a vote's "rater"; one person by default, then None) on the pairs they share."""
    choices: dict[tuple, dict[str, str]] = {}
    for v in votes:
        if v.get("rater"):
            item = (v["seed"], *sorted((v["left"], v["right"])))
            choices.setdefault(item, {})[v["rater"]] = v["winner"]
    return verdicts.rater_agreement(choices)


def paired_ratings(stars_a: dict[int, float], stars_b: dict[int, float]) -> dict[str, Any]:
    """Mean paired star difference (B − A, same seed) and a Wilcoxon signed-rank p-value."""
    from scipy.stats import wilcoxon

    seeds = sorted(set(stars_a) & set(stars_b))
    diffs = np.array([stars_b[s] - stars_a[s] for s in seeds], dtype=float)
    if len(diffs) == 0:
        return {"pairs": 0, "mean_difference": None, "p_value": None}
    if not np.any(diffs):
        return {"pairs": len(diffs), "mean_difference": 0.0, "p_value": 1.0}
    return {"pairs": len(diffs), "mean_difference": float(diffs.mean()),
            "p_value": float(wilcoxon(diffs, zero_method="wilcox").pvalue)}


UNPAIRED_METHOD = ("unpaired: the images are replicates from a backend without seeds, so a vote compares "
                   "independent draws of A and B (the win rate is the chance an A image beats a B image) and "
                   "stars are compared by Mann–Whitney U")


def unpaired_ratings(stars_a: dict[int, float], stars_b: dict[int, float]) -> dict[str, Any]:
    """Mean star difference (B − A) over unpaired replicates and a two-sided Mann–Whitney U p-value."""
    from scipy.stats import mannwhitneyu

    a = np.array(list(stars_a.values()), dtype=float)
    b = np.array(list(stars_b.values()), dtype=float)
    out: dict[str, Any] = {"pairs": 0, "n_a": len(a), "n_b": len(b), "test": "Mann–Whitney U"}
    if not len(a) or not len(b):
        return out | {"mean_difference": None, "p_value": None}
    if np.all(np.concatenate([a, b]) == a[0]):
        return out | {"mean_difference": 0.0, "p_value": 1.0}
    return out | {"mean_difference": float(b.mean() - a.mean()),
                  "p_value": float(mannwhitneyu(b, a, alternative="two-sided").pvalue)}


def win_matrix(labels: list[str], comparisons: list[tuple[str, str]]) -> np.ndarray:
    """counts[i, j] = how often labels[i] beat labels[j]."""
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)))
    for winner, loser in comparisons:
        counts[index[winner], index[loser]] += 1
    return counts


def bradley_terry(labels: list[str], comparisons: list[tuple[str, str]], seed: int = 0) -> list[dict[str, Any]]:
    """Ranking from (winner, loser) pairs: regularised Bradley–Terry scores with bootstrap 95% intervals.

    With no decisive votes there is nothing to rank: the ranking is empty (say RANKING_NO_VOTES),
    never every variant at +0.00 with a zero-width interval, which would read as certainty.

    The model depends on the votes only through the win-count matrix, so choix's dense solver
    fits it, and a bootstrap resample of the votes is a multinomial draw of that matrix: the
    same statistic as resampling votes one by one, at a cost independent of the vote count.
    """
    import choix

    n = len(labels)
    counts = win_matrix(labels, comparisons)
    total = int(counts.sum())
    if not total:
        return []

    def fit(matrix: np.ndarray) -> np.ndarray:
        scores = choix.ilsr_pairwise_dense(matrix, alpha=BT_REGULARISATION) if matrix.sum() else np.zeros(n)
        return scores - scores.mean()

    point = fit(counts)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, counts.ravel() / total, size=BOOTSTRAP_SAMPLES)
    fits = np.array([fit(draw.reshape(n, n).astype(float)) for draw in draws])
    low, high = np.percentile(fits, 2.5, axis=0), np.percentile(fits, 97.5, axis=0)
    ranking = [{"label": label, "score": float(point[i]), "ci_low": float(low[i]), "ci_high": float(high[i])}
               for i, label in enumerate(labels)]
    return sorted(ranking, key=lambda r: -r["score"])


def experiment_stats(library, name: str) -> dict[str, Any]:
    """Everything `promptkit ab stats` reports for one experiment."""
    from .experiments import all_pairs, cells, experiment_votes, get_experiment
    from .experiments.votes import counted_votes

    experiment = get_experiment(library, name)
    votes = counted_votes(experiment_votes(library, experiment))  # each rater's latest vote on a pair
    labels = [v["label"] for v in experiment["variants"]]
    cell_map = cells(library, experiment)
    stars = _stars_by_cell(library, experiment, cell_map)
    # Images from a backend without seeds (reproducible 0) are replicates, not seed-matched pairs.
    unpaired = any(gen.get("reproducible") == 0 for gen in cell_map.values())
    pairs = []
    for a, b in all_pairs(experiment):
        relevant = [v for v in votes if {v["left"], v["right"]} == {a, b}]
        wins_a = sum(1 for v in relevant if v["winner"] == a)
        wins_b = sum(1 for v in relevant if v["winner"] == b)
        ties = sum(1 for v in relevant if v["winner"] == "tie")
        summary = pair_summary(a, b, wins_a, wins_b, ties)
        summary["ratings"] = (unpaired_ratings if unpaired else paired_ratings)(stars.get(a, {}), stars.get(b, {}))
        pairs.append(summary)
    pairs = holm_pairs(pairs)
    if unpaired:
        for pair in pairs:
            pair.update(pairing="unpaired", method=f"{pair['method']}; {UNPAIRED_METHOD}",
                        verdict=f"{pair['verdict']} [unpaired replicates]",
                        verdict_text=f"{pair['verdict_text']} [unpaired replicates]")
    result: dict[str, Any] = {"experiment": experiment["name"], "variants": labels, "votes": len(votes),
                              "pairs": pairs,
                              "position_bias": position_summary(votes), "agreement": agreement_summary(votes)}
    if experiment["params"].get("matrix"):  # a prompt matrix: each term's effect (promptkit.effects)
        from .effects import terms_table

        result["terms"] = terms_table(experiment["params"]["matrix"], votes, stars)
    if unpaired:
        result["pairing"] = "unpaired"
    if len(labels) >= 3:
        comparisons = []
        for v in votes:
            if v["winner"] in (v["left"], v["right"]):
                loser = v["right"] if v["winner"] == v["left"] else v["left"]
                comparisons.append((v["winner"], loser))
        result["ranking"] = bradley_terry(labels, comparisons)
        result["ranking_text"] = ("Bradley–Terry scores with bootstrap 95% intervals" if result["ranking"]
                                  else RANKING_NO_VOTES)
    return result


def _stars_by_cell(library, experiment, cell_map) -> dict[str, dict[int, float]]:
    """Stars per (variant, seed): the current rating (the latest, `Library.current_ratings`) of
    the cell's generation; a cell never rated is left out."""
    by_gen = {gen["id"]: (label, seed) for (label, seed), gen in cell_map.items()}
    out: dict[str, dict[int, float]] = {}
    for gen_id, stars in library.current_ratings(list(by_gen)).items():
        label, seed = by_gen[gen_id]
        out.setdefault(label, {})[seed] = float(stars)
    return out
