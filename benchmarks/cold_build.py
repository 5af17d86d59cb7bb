"""`promptkit build` cold: a fresh interpreter renders and lints a prompt (tokens counted with the
bundled CLIP vocabulary), timed from launching the process to its exit; the anchor is a bare
`python -c pass`. The median of several runs, each in a new process (the OS file cache stays warm).

    python benchmarks/cold_build.py [--runs 7] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUILD = ["-m", "promptkit", "build", "--subject", "a lighthouse on a cliff", "--environment", "stormy sea at dusk",
         "--style", "watercolor", "--quality", "standard"]
GOAL_S = 0.5


CPU: list[float] = []  # each build's CPU seconds (user + system): steadier than wall time on a shared machine


def timed(args: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if args is BUILD:
        CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def measure(runs: int) -> tuple[list[float], list[float]]:
    """(build times, bare interpreter times), interleaved, after one warm-up of each."""
    with tempfile.TemporaryDirectory(prefix="pk-cold-build-") as home:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "PROMPTKIT_DB": str(Path(home) / "library.db"), "XDG_CACHE_HOME": str(Path(home) / "cache")}
        timed(BUILD, env), timed(["-c", "pass"], env)
        builds, bare = [], []
        CPU.clear()
        for _ in range(runs):
            builds.append(timed(BUILD, env))
            bare.append(timed(["-c", "pass"], env))
    return builds, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="5 runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    builds, bare = measure(runs)
    from benchmarks.figures import Figure, figures_json, format_table

    median = statistics.median(builds)
    figures = [Figure("cold `promptkit build` (fresh interpreter)", median, "s", anchor=statistics.median(bare),
                      goal=f"< {GOAL_S} s", met=median < GOAL_S,
                      note=f"median of {runs} runs, each a new process, min {min(builds):.3f} s, max "
                           f"{max(builds):.3f} s; CPU (user + system) median {statistics.median(CPU):.3f} s; "
                           "anchor: `python -c pass`")]
    title = f"cold build: {runs} runs"
    print(figures_json(figures, benchmark="cold build", title=title) if args.json else format_table(figures, title))


if __name__ == "__main__":
    main()
