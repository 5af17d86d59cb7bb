"""`ab stats` at scale: an experiment with 3 variants and 10,000 votes, bootstrap included.

Usage: python benchmarks/ab_stats_scale.py [--votes 10000] [--repeats 5]
Rows only: generations are faked as hashes. Prints the median and max time of experiment_stats (goal < 500 ms).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(db: Path, votes: int, seeds: int = 500) -> None:
    from promptkit.library import Library, utc_now

    rng = random.Random(0)
    with Library(db) as lib, lib.write() as conn:
        now = utc_now()
        prompt_ids = []
        prompts, experiments, generations = conn["prompts"], conn["experiments"], conn["generations"]
        for label in "ABC":
            prompts.insert({"name": f"p{label}", "template": "default", "template_digest": "", "fields": "{}",
                                    "positive": f"prompt {label}", "negative": "", "tags": "[]", "notes": "",
                                    "starred": 0, "created_at": now})
            prompt_ids.append(prompts.last_pk)
        experiments.insert({"name": "big", "seeds": json.dumps(list(range(seeds))), "params": "{}",
                                    "model": "tiny", "created_at": now})
        exp = experiments.last_pk
        conn["variants"].insert_all({"experiment_id": exp, "label": label, "prompt_id": pid, "params": "{}"}
                                    for label, pid in zip("ABC", prompt_ids))
        gen_ids = {}
        for label, pid in zip("ABC", prompt_ids):
            for seed in range(seeds):
                sha = hashlib.sha256(f"{label}{seed}".encode()).hexdigest()
                generations.insert({"prompt_id": pid, "experiment_id": exp, "variant": label, "seed": seed,
                                            "image_sha256": sha, "image_path": f"x/{sha}.png", "created_at": now})
                gen_ids[(label, seed)] = generations.last_pk
        strength = {"A": 1.0, "B": 1.4, "C": 0.8}
        rows = []
        for _ in range(votes):
            seed = rng.randrange(seeds)
            a, b = rng.sample("ABC", 2)
            p_a = strength[a] / (strength[a] + strength[b])
            roll = rng.random()
            winner = None if roll < 0.1 else gen_ids[(a, seed)] if roll < 0.1 + 0.9 * p_a else gen_ids[(b, seed)]
            rows.append({"experiment_id": exp, "seed": seed, "left_generation_id": gen_ids[(a, seed)],
                         "right_generation_id": gen_ids[(b, seed)], "winner_generation_id": winner,
                         "created_at": now})
        conn["votes"].insert_all(rows, batch_size=1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--votes", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 repeats (the 10,000 votes stay)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    from promptkit.library import Library
    from promptkit.stats import experiment_stats

    db = Path(tempfile.mkdtemp(prefix="pk-abstats-")) / "library.db"
    build(db, args.votes)
    times = []
    with Library(db) as lib:
        experiment_stats(lib, "big")  # warm imports (scipy, choix) once
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = experiment_stats(lib, "big")
            times.append(time.perf_counter() - started)
    median = statistics.median(times)
    from benchmarks.figures import Figure, figures_json, format_table

    title = f"ab stats: 3 variants, {result['votes']} votes, bootstrap included, {args.repeats} runs"
    figures = [Figure(f"ab stats, {result['votes']} votes (median)", 1000 * median, "ms", goal="< 500 ms",
                      met=median < 0.5, note=f"max {1000 * max(times):.1f} ms; Bradley-Terry + 200 bootstrap fits")]
    print(figures_json(figures, benchmark="ab_stats_scale", title=title) if args.json
          else format_table(figures, title))


if __name__ == "__main__":
    main()
