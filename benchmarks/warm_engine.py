"""Command-to-first-image: `promptkit generate` cold (loads the model) versus on a warm engine.

Usage: python benchmarks/warm_engine.py [--repeats 5]
Times whole `promptkit generate PROMPT --seeds 1` processes on the tiny pipeline and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 runs each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    work = Path(tempfile.mkdtemp(prefix="pk-warm-"))
    socket_path = Path(f"/tmp/pk-bench-{os.getpid()}.sock")
    env = dict(os.environ, PROMPTKIT_DB=str(work / "library.db"), PROMPTKIT_ENGINE=str(socket_path))
    pk = [sys.executable, "-m", "promptkit"]
    subprocess.run(pk + ["model", "tiny", str(work / "tiny-sd")], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(pk + ["build", "--subject", "a lighthouse", "--save", "bench"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    generate = pk + ["generate", "bench", "--model", str(work / "tiny-sd"), "--seeds", "1", "--steps",
                     str(args.steps), "--quiet"]
    timed(generate + ["--no-engine"], env, work)  # warm the OS file cache for the cold path too
    cold = [timed(generate + ["--no-engine"], env, work) for _ in range(args.repeats)]
    worker = subprocess.Popen(pk + ["worker", "start", "--socket", str(socket_path), "--model",
                                    str(work / "tiny-sd")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        from promptkit.worker import EngineUnavailable, engine_status

        while True:
            try:
                engine_status(socket_path)
                break
            except EngineUnavailable:
                time.sleep(0.1)
        timed(generate, env, work)  # the first job on a new engine also warms its caches: not counted
        warm = [timed(generate, env, work) for _ in range(args.repeats)]
    finally:
        worker.terminate()
        worker.wait()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.figures import Figure, figures_json, format_table

    title = f"command-to-first-image, tiny SD pipeline on CPU, {args.steps} steps, {args.repeats} runs each"
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    figures = [
        Figure("first image, cold `generate --no-engine`", cold_s, "s", note=f"min {min(cold):.2f}, max {max(cold):.2f}"),
        Figure("first image, warm engine", warm_s, "s", anchor=cold_s, goal="faster than cold", met=warm_s < cold_s,
               note=f"min {min(warm):.2f}, max {max(warm):.2f}; ratio = warm / cold"),
    ]
    print(figures_json(figures, benchmark="warm_engine", title=title) if args.json else format_table(figures, title))


if __name__ == "__main__":
    main()
