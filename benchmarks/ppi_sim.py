"""Simulated judges: are prediction-powered intervals valid, and how much narrower than votes alone?

Usage: python benchmarks/ppi_sim.py [--runs 2000] [--seed 0]

A simulated person prefers b on each image pair with probability `truth` (their win rate for b);
a simulated judge agrees with the person on a pair with probability `agreement`. Each run has N
pairs the judge scores and n of them the person votes on (chosen at random). For each setting the
table gives the coverage of the true win rate and the mean width of three 95% intervals at the
same n votes: prediction-powered (promptkit.judges.ppi, Angelopoulos et al., Science 2023), the
human-only CLT interval and the human-only Wilson interval.

The tests call `simulate` with smaller sizes (tests/test_ppi.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from promptkit.judges.agreement import wilson  # noqa: E402
from promptkit.judges.ppi import classical_interval, ppi_mean  # noqa: E402


def simulate(runs: int, pairs: int, votes: int, agreement: float = 0.8, truth: float = 0.6,
             seed: int = 0) -> dict[str, float]:
    """Coverage of TRUTH and mean width of the PPI, human-only CLT and Wilson intervals over RUNS runs."""
    rng = np.random.default_rng(seed)
    person = rng.random((runs, pairs)) < truth
    agrees = rng.random((runs, pairs)) < agreement
    judge = np.where(agrees, person, ~person).astype(float)
    covered = {"ppi": 0, "human": 0, "wilson": 0}
    widths = {"ppi": 0.0, "human": 0.0, "wilson": 0.0}
    for run in range(runs):
        voted = rng.choice(pairs, size=votes, replace=False)
        y, f = person[run, voted].astype(float), judge[run, voted]
        intervals = {"ppi": ppi_mean(judge[run], y, f), "human": classical_interval(y)}
        low, high = wilson(int(y.sum()), int(votes))
        intervals["wilson"] = {"ci_low": low, "ci_high": high}
        for name, ci in intervals.items():
            covered[name] += ci["ci_low"] <= truth <= ci["ci_high"]
            widths[name] += ci["ci_high"] - ci["ci_low"]
    out = {f"coverage_{k}": covered[k] / runs for k in covered}
    out.update({f"width_{k}": widths[k] / runs for k in widths})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'agree':>5} {'N':>5} {'n':>4}  {'cover PPI':>9} {'cover CLT':>9} {'cover Wils':>10}  "
          f"{'width PPI':>9} {'width CLT':>9} {'width Wils':>10}  {'PPI/Wilson':>10}")
    for agreement in (0.6, 0.7, 0.8, 0.9):
        for pairs, votes in ((200, 20), (200, 50), (1000, 50), (1000, 100), (5000, 100)):
            r = simulate(args.runs, pairs, votes, agreement, seed=args.seed)
            print(f"{agreement:>5.2f} {pairs:>5} {votes:>4}  {r['coverage_ppi']:>9.3f} {r['coverage_human']:>9.3f} "
                  f"{r['coverage_wilson']:>10.3f}  {r['width_ppi']:>9.3f} {r['width_human']:>9.3f} "
                  f"{r['width_wilson']:>10.3f}  {r['width_ppi'] / r['width_wilson']:>10.3f}")


if __name__ == "__main__":
    main()
