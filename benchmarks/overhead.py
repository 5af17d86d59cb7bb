"""promptkit generate vs a bare diffusers call: same tiny pipeline, seeds and batch size, one process.

Each repetition times both paths on the whole job, in alternating order (bare first, then
promptkit first, ...), so that a machine getting faster or slower during the run hits both;
the ratio is taken pair by pair, and the table gives the median ratio and its spread
(min-max). Goal: promptkit adds at most 2% on the tiny CPU pipeline.

Threads: by default torch's own choice (one per core). On a small machine shared with other
work, torch's spin-waiting threads slow down many times over whenever another process holds
a core, and that noise swamps a 2% effect; `--threads 1` keeps the pairs comparable (it also
leaves promptkit's writer thread a core of its own on an otherwise idle 2-core machine, so
say which setting a figure used).

Usage: python benchmarks/overhead.py [--images 64] [--batch-size 4] [--steps 20] [--repeats 5]
       [--threads N] [--quick] [--json] [--only bare|promptkit]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import Figure, figures_json, format_table, median  # noqa: E402

OVERHEAD_GOAL = 1.02
QUICK_IMAGES = 16


@dataclass
class Timing:
    wall: float  # seconds on the clock
    cpu: float  # this process's CPU seconds, all threads (the writer thread's work included)


@dataclass
class OverheadResult:
    images: int
    batch_size: int
    steps: int
    threads: int
    bare: list[Timing]
    promptkit: list[Timing]

    def ratios(self, kind: str = "wall") -> list[float]:
        return [getattr(p, kind) / getattr(b, kind) for p, b in zip(self.promptkit, self.bare)]


class OverheadBench:
    """The tiny pipeline loaded once, and the two ways of running the same job on it."""

    def __init__(self, images: int, batch_size: int, steps: int, work: Path) -> None:
        import torch

        from promptkit.engine import Engine, EngineOptions
        from promptkit.library import Library
        from promptkit.params import GenerationParams
        from promptkit.templates import Fields, PromptBuilder
        from promptkit.tinymodel import write_tiny_pipeline

        self.torch = torch
        model = write_tiny_pipeline(work / "tiny-sd")
        self.engine = Engine.get(str(model), EngineOptions(device="cpu"))
        self.params = GenerationParams(steps=steps, cfg=7.0, sampler="Euler")
        self.engine._set_sampler(self.params.sampler)
        self.prompt = PromptBuilder().render(Fields(subject="a lighthouse", style=["watercolor"]))
        self.library = Library(work / "library.db")
        self.row = self.library.get_prompt(self.library.save_prompt(self.prompt))
        self.seeds = list(range(images))
        self.batch_size = batch_size

    def bare(self, seeds: list[int] | None = None) -> Timing:
        """The diffusers pipeline called directly, batch by batch; the images are thrown away."""
        torch, pipe, seeds = self.torch, self.engine.pipe, seeds or self.seeds
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(0, len(seeds), self.batch_size):
            batch = seeds[i : i + self.batch_size]
            with torch.inference_mode():
                pipe(prompt=[self.prompt.positive] * len(batch), negative_prompt=[self.prompt.negative] * len(batch),
                     num_inference_steps=self.params.steps, guidance_scale=self.params.cfg,
                     generator=[torch.Generator("cpu").manual_seed(s) for s in batch], output_type="pil")
        return Timing(time.perf_counter() - started, time.process_time() - cpu_started)

    def promptkit(self, seeds: list[int] | None = None) -> Timing:
        """`promptkit generate`'s path: run_job, with PNGs written and rows recorded."""
        from promptkit.generation import GenerationJob, run_job

        started, cpu_started = time.perf_counter(), time.process_time()
        run_job(self.library, self.engine, GenerationJob(prompt=self.row, params=self.params,
                                                         seeds=seeds or self.seeds, batch_size=self.batch_size))
        return Timing(time.perf_counter() - started, time.process_time() - cpu_started)


def measure_overhead(images: int = 64, batch_size: int = 4, steps: int = 20, repeats: int = 5,
                     threads: int | None = None) -> OverheadResult:
    import torch

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="promptkit-overhead-") as work:
        bench = OverheadBench(images, batch_size, steps, Path(work))
        warm = bench.seeds[: batch_size * 2]
        bench.bare(warm)  # warm up both paths once
        bench.promptkit(warm)
        bare_times, promptkit_times = [], []
        for repeat in range(repeats):
            if repeat % 2 == 0:
                bare_times.append(bench.bare())
                promptkit_times.append(bench.promptkit())
            else:
                promptkit_times.append(bench.promptkit())
                bare_times.append(bench.bare())
        bench.library.close()
    return OverheadResult(images, batch_size, steps, torch.get_num_threads(), bare_times, promptkit_times)


def median_interval(ratios: list[float], coverage: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median ratio: the order statistics
    x(j+1) and x(n-j), which hold the median with probability 1 - 2 P(Binomial(n, 1/2) <= j),
    for the largest j that keeps that at least COVERAGE (min and max when no j does)."""
    from math import comb

    xs, n = sorted(ratios), len(ratios)
    j = 0
    while j + 1 < n / 2 and 1 - 2 * sum(comb(n, i) for i in range(j + 2)) / 2**n >= coverage:
        j += 1
    return xs[j], xs[n - 1 - j]


def verdict(ratios: list[float], goal: float) -> bool | None:
    """met when the median ratio's 95% interval (median_interval) lies within the goal, NOT met
    when it lies past it, else unclear (None). With 7 pairs the interval is min-max (98%); with
    15 it is the 4th smallest to the 4th largest (96%), so one stray pair on a shared machine
    does not decide the verdict either way.
    """
    low, high = median_interval(ratios)
    if high <= goal:
        return True
    if low > goal:
        return False
    return None


def overhead_figures(result: OverheadResult) -> list[Figure]:
    """Wall-clock ratio (the goal) and CPU-time ratio (the work promptkit adds, on any core)."""
    threads = f"{result.threads} thread{'s' if result.threads > 1 else ''}"
    setup = (f"tiny SD pipeline, CPU, {result.images} images, batch {result.batch_size}, {result.steps} steps, "
             f"{threads}, {len(result.bare)} alternating pairs; ratio: median of the pairs' ratios "
             "(its 95% interval, which decides the verdict); load average "
             f"{os.getloadavg()[0]:.1f}")
    figures = []
    for kind, label in (("wall", "wall"), ("cpu", "CPU")):
        ratios = result.ratios(kind)
        per_image = lambda timings: 1000 * median(getattr(t, kind) for t in timings) / result.images  # noqa: E731
        figures.append(Figure(
            f"generate / bare diffusers, {label} time, {threads}",
            per_image(result.promptkit), "ms/img", anchor=per_image(result.bare),
            ratio=median(ratios), ratio_spread=median_interval(ratios),
            goal=f"ratio <= {OVERHEAD_GOAL:.2f}" if kind == "wall" else "",
            met=verdict(ratios, OVERHEAD_GOAL) if kind == "wall" else None,
            note=(f"{setup}; every pair: min {min(ratios):.3f}, max {max(ratios):.3f}") if kind == "wall" else "CPU seconds of the whole process (all threads): the work promptkit "
                                              "adds (PNG encoding, sha256, fsync, SQLite), whichever core runs it",
        ))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help=f"images per job (default 64; --quick {QUICK_IMAGES})")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5, help="alternating pairs of timed jobs (at least 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_IMAGES} images per job")
    parser.add_argument("--only", choices=("bare", "promptkit"), default=None,
                        help="time one path once, after a warm-up, and print its seconds (for pairing whole "
                             "processes with an outside timer)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    images = args.images or (QUICK_IMAGES if args.quick else 64)
    if args.only:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        with tempfile.TemporaryDirectory(prefix="promptkit-overhead-") as work:
            bench = OverheadBench(images, args.batch_size, args.steps, Path(work))
            run = bench.bare if args.only == "bare" else bench.promptkit
            run(bench.seeds[: args.batch_size])
            timing = run()
            print(f"{args.only}: {timing.wall:.3f} s wall, {timing.cpu:.3f} s CPU for {images} images")
            bench.library.close()
        return
    if args.repeats < 5:
        parser.error(f"--repeats must be at least 5 but is {args.repeats}")
    result = measure_overhead(images, args.batch_size, args.steps, args.repeats, args.threads)
    figures = overhead_figures(result)
    if args.json:
        print(figures_json(figures, benchmark="overhead"))
        return
    print(format_table(figures, "promptkit's overhead on the tiny pipeline"))
    print("pairs, wall seconds (bare, promptkit): " + ", ".join(
        f"({b.wall:.2f}, {p.wall:.2f})" for b, p in zip(result.bare, result.promptkit)))


if __name__ == "__main__":
    main()
