"""Run the benchmarks that fit this machine and print one table.

CPU benchmarks always run; GPU ones only when torch sees a CUDA GPU (else a row says they
were skipped and why). Each benchmark runs as its own process (`python benchmarks/X.py ...
--json`), so one's memory and threads cannot slow the next, and each script also runs alone.
Adding a benchmark is one entry in BENCHMARKS.

Usage: python benchmarks/run.py [--quick] [--json] [--only NAME]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import Figure, format_table, skipped  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Benchmark:
    """One benchmark script and how to run it; `quick_args=None` leaves it out of --quick."""

    name: str
    script: str  # a file in benchmarks/ that prints its figures as JSON when given --json
    full_args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] | None = ("--quick",)
    needs_cuda: bool = False

    def command(self, quick: bool) -> list[str]:
        args = self.quick_args if quick else self.full_args
        return ["python", f"benchmarks/{self.script}", *(args or ())]


BENCHMARKS = [
    # One torch thread keeps the pairs comparable on a shared 2-core machine (see overhead.py).
    Benchmark("overhead, 1 thread", "overhead.py", full_args=("--threads", "1", "--repeats", "15"),
              quick_args=("--quick", "--threads", "1", "--repeats", "15")),
    Benchmark("overhead, torch's default threads", "overhead.py", full_args=("--repeats", "5"), quick_args=None),
    Benchmark("library at scale", "library_scale.py"),
    Benchmark("SD 1.5 size on GPU", "gpu_sd15.py", needs_cuda=True),
    Benchmark("ab stats at scale", "ab_stats_scale.py"),
    Benchmark("sweep", "sweep.py"),
    Benchmark("warm engine", "warm_engine.py"),
    Benchmark("cold build", "cold_build.py"),
    Benchmark("import folder", "import_folder.py"),
]


def machine_context() -> dict[str, str]:
    """Date, hardware and versions, for the table's header and BENCHMARKS.md."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = "unknown"

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": f"{os.cpu_count()} cores, {model}",
        "memory": memory,
        "load average": " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
        "versions": f"python {platform.python_version()}, torch {version('torch')}, diffusers {version('diffusers')}, "
                    f"transformers {version('transformers')}, sqlite {sqlite3.sqlite_version}",
    }


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def run_benchmark(bench: Benchmark, quick: bool) -> tuple[list[Figure], float]:
    """Run one benchmark's script as its own process; its figures and the seconds it took."""
    command = bench.command(quick)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *command[1:], "--json"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [Figure(bench.name, None, note=f"skipped: failed (exit {done.returncode}): {last}")], seconds
    payload = json.loads(done.stdout[done.stdout.index("{"):])
    return [Figure.from_dict(f) for f in payload["figures"]], seconds


def run_all(quick: bool, only: str | None = None) -> tuple[list[Figure], list[str]]:
    """Every benchmark that fits; the figures and, per benchmark, the command and its seconds."""
    figures, commands = [], []
    has_cuda = None
    for bench in BENCHMARKS:
        if only and only not in bench.name:
            continue
        command = " ".join(bench.command(quick))
        if quick and bench.quick_args is None:
            figures.append(skipped(bench.name, "not in --quick; run without --quick"))
            continue
        if bench.needs_cuda:
            has_cuda = cuda_available() if has_cuda is None else has_cuda
            if not has_cuda:
                figures.append(skipped(bench.name, "no CUDA GPU (torch.cuda.is_available() is False)"))
                commands.append(f"{command}  (skipped: no CUDA GPU)")
                continue
        found, seconds = run_benchmark(bench, quick)
        figures += found
        commands.append(f"{command}  ({seconds:.0f} s)")
    return figures, commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (under 5 minutes on 2 cores)")
    parser.add_argument("--json", action="store_true", help="print the context and figures as JSON")
    parser.add_argument("--only", default=None, help="run only the benchmarks whose name contains this")
    args = parser.parse_args(argv)
    context = machine_context()
    started = time.perf_counter()
    figures, commands = run_all(args.quick, args.only)
    context["seconds"] = f"{time.perf_counter() - started:.0f}"
    context["load average after"] = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    if args.json:
        print(json.dumps({**context, "commands": commands, "figures": [f.to_dict() for f in figures]}, indent=2))
    else:
        header = "\n".join(f"{key}: {value}" for key, value in context.items())
        print(format_table(figures, f"promptkit benchmarks{' (--quick)' if args.quick else ''}\n{header}\n"))
        print("\ncommands (run from the repository root; seconds this run took):")
        print("\n".join(f"  {c}" for c in commands))
    failed = [f for f in figures if f.note.startswith("skipped: failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
