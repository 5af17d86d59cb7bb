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
    args = parser.parse_args()
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
    print(f"command-to-first-image, tiny SD pipeline on CPU, {args.steps} steps, {args.repeats} runs each")
    print(f"{'path':<34}{'median s':>10}{'min':>8}{'max':>8}")
    for label, runs in (("cold: generate --no-engine", cold), ("warm: generate on the engine", warm)):
        print(f"{label:<34}{statistics.median(runs):>10.3f}{min(runs):>8.3f}{max(runs):>8.3f}")
    print(f"{'speed-up (cold / warm)':<34}{statistics.median(cold) / statistics.median(warm):>10.2f}")


if __name__ == "__main__":
    main()
