"""Simulated A/B experiments: is the anytime-valid verdict valid when read after every vote, and what does it cost?

Usage: python benchmarks/verdicts_sim.py [--runs 2000] [--adaptive-runs 200] [--seed 0]

Prints three tables:
1. two identical prompts, the verdict read after every decisive vote up to 500: how often a
   winner is declared by the fixed-sample exact sign test (read from the 10th vote on) and by
   the beta-binomial mixture e-value (e >= 1/alpha);
2. a true win rate of 0.70: the median decisive votes to the e-value's verdict, beside the
   fixed sign test's plan for 80% power;
3. four variants with Bradley–Terry strengths: votes until one variant is declared better
   than every other (Holm over the six pairs), pairs chosen by promptkit's adaptive chooser
   or uniformly at random (median and share of runs that found the true top).

The tests call these functions with smaller sizes (tests/test_verdicts.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from promptkit.verdicts import ALPHA, choose_next_pair, log_e_value  # noqa: E402

STRENGTHS = (0.0, 0.5, 1.0, 1.6)  # Bradley–Terry log-strengths: the top beats the next 65% of the time


def _paths(runs: int, votes: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative B wins after each decisive vote (runs × votes) and the vote counts 1..votes."""
    rng = np.random.default_rng(seed)
    wins = np.cumsum(rng.random((runs, votes)) < rate, axis=1)
    return wins, np.arange(1, votes + 1)


def null_false_verdicts(runs: int = 2000, votes: int = 500, seed: int = 0, alpha: float = ALPHA,
                        first_look: int = 10) -> dict[str, float]:
    """Share of runs between two identical prompts in which each rule ever declares a winner."""
    from scipy.stats import binom

    wins, n = _paths(runs, votes, 0.5, seed)
    e_rejects = (log_e_value(wins, n) >= math.log(1 / alpha)).any(axis=1)
    # Exact two-sided sign test, p = min(1, 2 P(X <= min(k, n - k))), looked at from first_look on.
    k, m = wins[:, first_look - 1:], n[first_look - 1:]
    p_values = np.minimum(1.0, 2 * binom.cdf(np.minimum(k, m - k), m, 0.5))
    sign_rejects = (p_values <= alpha).any(axis=1)
    return {"runs": runs, "votes": votes, "sign_test": float(sign_rejects.mean()),
            "e_value": float(e_rejects.mean())}


def votes_to_verdict(rate: float = 0.70, runs: int = 2000, votes: int = 1000, seed: int = 1,
                     alpha: float = ALPHA) -> dict[str, float]:
    """Decisive votes until the e-value declares a winner at a true win rate; runs that never do count as votes."""
    wins, n = _paths(runs, votes, rate, seed)
    crossed = log_e_value(wins, n) >= math.log(1 / alpha)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1, votes)
    right = crossed.any(axis=1) & (wins[np.arange(runs), first - 1] * 2 > first)
    return {"runs": runs, "rate": rate, "median_votes": float(np.median(first)),
            "decided": float(crossed.any(axis=1).mean()), "right_winner": float(right.mean())}


def _holm_top(wins: np.ndarray, alpha: float) -> np.ndarray:
    """For each run (wins: runs × k × k), the variant declared better than all others under Holm, or -1."""
    runs, k, _ = wins.shape
    rows, cols = np.triu_indices(k, 1)
    w_i, w_j = wins[:, rows, cols], wins[:, cols, rows]
    log_e = log_e_value(w_i, w_i + w_j)
    m = len(rows)
    order = np.argsort(-log_e, axis=1)
    sorted_e = np.take_along_axis(log_e, order, axis=1)
    passes = np.cumprod(sorted_e >= np.log((m - np.arange(m)) / alpha), axis=1).astype(bool)
    rejected = np.zeros_like(passes)
    np.put_along_axis(rejected, order, passes, axis=1)
    beats = np.zeros((runs, k, k), dtype=bool)
    beats[:, rows, cols] = rejected & (w_i > w_j)
    beats[:, cols, rows] = rejected & (w_j > w_i)
    top = beats.sum(axis=2) == k - 1
    return np.where(top.any(axis=1), top.argmax(axis=1), -1)


def _adaptive_pairs(wins: np.ndarray, labels: list[str], active: np.ndarray) -> np.ndarray:
    pairs = np.zeros((len(wins), 2), dtype=int)
    for r in np.flatnonzero(active):
        counts = {(labels[i], labels[j]): (int(wins[r, i, j]), int(wins[r, j, i]))
                  for i in range(len(labels)) for j in range(i + 1, len(labels))}
        chosen = choose_next_pair(labels, counts)
        if chosen is None:  # every pair settled without a single top (cannot happen with distinct strengths)
            chosen = {"a": labels[0], "b": labels[1]}
        pairs[r] = labels.index(chosen["a"]), labels.index(chosen["b"])
    return pairs


def votes_to_top(adaptive: bool, runs: int = 200, cap: int = 3000, seed: int = 2, alpha: float = ALPHA,
                 strengths: tuple[float, ...] = STRENGTHS) -> dict[str, float]:
    """Votes until one variant is declared better than every other; the true top is the last of strengths."""
    rng = np.random.default_rng(seed)
    k = len(strengths)
    labels = [chr(ord("A") + i) for i in range(k)]
    s = np.asarray(strengths)
    beat = 1 / (1 + np.exp(-(s[:, None] - s[None, :])))
    rows, cols = np.triu_indices(k, 1)
    wins = np.zeros((runs, k, k), dtype=int)
    done_at = np.full(runs, cap)
    found = np.full(runs, -1)
    active = np.ones(runs, dtype=bool)
    for vote in range(1, cap + 1):
        if adaptive:
            pairs = _adaptive_pairs(wins, labels, active)
        else:
            pick = rng.integers(len(rows), size=runs)
            pairs = np.stack([rows[pick], cols[pick]], axis=1)
        i, j = pairs[:, 0], pairs[:, 1]
        first_wins = rng.random(runs) < beat[i, j]
        idx = np.flatnonzero(active)
        winner = np.where(first_wins, i, j)[idx]
        loser = np.where(first_wins, j, i)[idx]
        np.add.at(wins, (idx, winner, loser), 1)
        top = _holm_top(wins[idx], alpha)
        finished = idx[top >= 0]
        done_at[finished], found[finished] = vote, top[top >= 0]
        active[finished] = False
        if not active.any():
            break
    return {"runs": runs, "median_votes": float(np.median(done_at)),
            "true_top_found": float((found == k - 1).mean()), "capped": float((found < 0).mean())}


def main(argv: list[str] | None = None) -> None:
    from promptkit.stats import votes_needed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--adaptive-runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    null = null_false_verdicts(args.runs, seed=args.seed)
    print(f"1. Two identical prompts, verdict read after every decisive vote up to {null['votes']} "
          f"({null['runs']} runs, α = {ALPHA})")
    print(f"   {'rule':<46} {'false winner':>12}")
    print(f"   {'fixed-sample exact sign test (from vote 10)':<46} {null['sign_test']:>12.1%}")
    print(f"   {'beta-binomial mixture e-value (e >= 20)':<46} {null['e_value']:>12.1%}")
    at70 = votes_to_verdict(0.70, args.runs, seed=args.seed + 1)
    print(f"2. True win rate 0.70 ({at70['runs']} runs)")
    print(f"   {'rule':<46} {'votes':>12}")
    print(f"   {'e-value: median decisive votes to a verdict':<46} {at70['median_votes']:>12.0f}")
    print(f"   {'fixed sign test: planned votes for 80% power':<46} {votes_needed(0.70):>12d}")
    print(f"   e-value verdicts reached: {at70['decided']:.1%}, naming the right winner: {at70['right_winner']:.1%}")
    print(f"3. Four variants, strengths {STRENGTHS} (top beats the next "
          f"{1 / (1 + math.exp(STRENGTHS[-2] - STRENGTHS[-1])):.0%}); votes until one is declared better "
          f"than all others, Holm over 6 pairs ({args.adaptive_runs} runs)")
    print(f"   {'pairs':<22} {'median votes':>12} {'true top found':>15} {'hit the cap':>12}")
    for name, adaptive in (("adaptive chooser", True), ("uniform random", False)):
        r = votes_to_top(adaptive, args.adaptive_runs, seed=args.seed + 2)
        print(f"   {name:<22} {r['median_votes']:>12.0f} {r['true_top_found']:>15.1%} {r['capped']:>12.1%}")


if __name__ == "__main__":
    main()
