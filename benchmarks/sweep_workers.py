"""Sweeps on workers: cells per second of one experiment on the tiny model, made locally, by 1 and 2
Ray CPU actors, and by 2 `accelerate launch` processes, each with the ratio against the local run;
then what the accelerate runner's choice (each process writes its own rows) costs in the database.

Usage: python benchmarks/sweep_workers.py [--seeds 16] [--steps 4] [--size 64] [--no-accelerate] [--json]

Every run starts cold, as `promptkit ab run` does: the local run loads the model in this process,
each Ray actor loads its own, each accelerate process too (Ray's cluster start is left out; the
accelerate row includes its Python start). On a 2-core machine the point is the overhead (actor
start, model load per worker, PNGs through Ray's object store), not the speed-up; torch runs one
thread per worker, so the local run does too. "after load" leaves out the slowest worker's
model load (its torch import included): what the Ray path costs per cell once the actors are up.
On a multi-GPU machine, `--device cuda` with Ray
gives images per second per GPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_experiment(db: Path, model: str, seeds: int, steps: int, size: int) -> None:
    from promptkit.experiments import VariantSpec, create_experiment
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder

    builder = PromptBuilder()
    with Library(db) as lib:
        a = lib.save_prompt(builder.render(Fields(subject="a lighthouse")), name="plain")
        b = lib.save_prompt(builder.render(Fields(subject="a fox", style=["sketch"])), name="fox")
        create_experiment(lib, "e", [VariantSpec("A", str(a)), VariantSpec("B", str(b))], list(range(seeds)),
                          GenerationParams(steps=steps, cfg=5.0, sampler="Euler", width=size, height=size),
                          model=model)


def time_local(db: Path, model: str, batch: int) -> tuple[float, float]:
    import torch

    from promptkit.engine import Engine, EngineOptions, PipelineCache
    from promptkit.experiments import run_experiment
    from promptkit.library import Library

    torch.set_num_threads(1)
    started = time.perf_counter()
    engine = Engine.get(model, EngineOptions(device="cpu"), cache=PipelineCache())
    with Library(db) as lib:
        run_experiment(lib, engine, "e", batch_size=batch)
    return time.perf_counter() - started, engine.load_seconds


def time_ray(db: Path, workers: int, batch: int) -> tuple[float, float]:
    from promptkit.library import Library
    from promptkit.sweeps.ray_runner import run_on_ray

    started = time.perf_counter()
    with Library(db) as lib:
        outcome = run_on_ray(lib, "e", workers=workers, batch_size=batch, engine_options={"device": "cpu"})
    return time.perf_counter() - started, outcome["load_seconds"]


def time_accelerate(db: Path, batch: int, processes: int = 2) -> tuple[float, None]:
    env = {**os.environ, "PROMPTKIT_DB": str(db),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "promptkit",
               "ab", "run", "e", "--batch-size", str(batch), "--device", "cpu", "-q"]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started, None  # the processes' load time is not reported back


def _write_rows(db: str, start: int, count: int, out) -> None:
    """COUNT rows with distinct 2 kB PNG-sized payloads, as the accelerate runner's writer stores them."""
    from promptkit.library import Library

    with Library(db) as lib:
        row = lib.get_generation(1)
        started = time.perf_counter()
        for i in range(start, start + count):
            sha, file = lib.store_image(os.urandom(2048) + i.to_bytes(8, "big"))
            copy = {k: v for k, v in row.items() if k != "id"}
            copy.update(image_sha256=sha, image_path=lib.relative_image_path(file), seed=10_000 + i)
            lib.add_generation(copy)
        out.put(time.perf_counter() - started)


def time_writers(db: Path, writers: int, rows: int) -> float:
    """Seconds per row written when WRITERS processes write ROWS rows in all at once."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    each = rows // writers
    processes = [context.Process(target=_write_rows, args=(str(db), n * each, each, out)) for n in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    spent = [out.get() for _ in processes]
    return sum(spent) / (each * writers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=16, help="seeds per variant (2 variants)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--no-accelerate", action="store_true", help="leave out the accelerate row")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from promptkit.tinymodel import write_tiny_pipeline

    work = Path(tempfile.mkdtemp(prefix="pk-sweep-workers-"))
    model = str(write_tiny_pipeline(work / "tiny-sd"))
    cells = 2 * args.seeds

    def library(name: str) -> Path:
        db = work / name / "library.db"
        db.parent.mkdir()
        make_experiment(db, model, args.seeds, args.steps, args.size)
        return db

    rows = [("local (this process)", time_local(library("local"), model, args.batch))]
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for workers in (1, 2):
            rows.append((f"ray, {workers} CPU worker{'s' if workers > 1 else ''}",
                         time_ray(library(f"ray{workers}"), workers, args.batch)))
    finally:
        ray.shutdown()
    if not args.no_accelerate:
        rows.append(("accelerate, 2 processes", time_accelerate(library("accelerate"), args.batch)))
    local_rate, local_warm = cells / rows[0][1][0], cells / (rows[0][1][0] - rows[0][1][1])
    table = []
    for name, (seconds, load) in rows:
        warm = None if load is None else cells / (seconds - load)  # after the slowest worker's model load
        table.append({"run": name, "seconds": round(seconds, 2), "cells_per_s": round(cells / seconds, 3),
                      "ratio_vs_local": round(cells / seconds / local_rate, 3),
                      "cells_per_s_after_load": None if warm is None else round(warm, 3),
                      "ratio_after_load": None if warm is None else round(warm / local_warm, 3)})
    writes_db = work / "local" / "library.db"
    writes = {f"{n} writer{'s' if n > 1 else ''}": round(1000 * time_writers(writes_db, n, 200), 2) for n in (1, 2)}
    if args.json:
        print(json.dumps({"cells": cells, "runs": table, "ms_per_row_written": writes}, indent=2))
        return
    print(f"{cells} cells (2 variants x {args.seeds} seeds, {args.steps} steps, {args.size} px, batch {args.batch}), "
          f"cold starts included")
    print(f"{'run':<28}{'seconds':>10}{'cells/s':>10}{'vs local':>10}{'after load':>12}{'vs local':>10}")
    for row in table:
        after = "n/a" if row["cells_per_s_after_load"] is None else f"{row['cells_per_s_after_load']:.3f}"
        ratio = "n/a" if row["ratio_after_load"] is None else f"{row['ratio_after_load']:.3f}"
        print(f"{row['run']:<28}{row['seconds']:>10.2f}{row['cells_per_s']:>10.3f}{row['ratio_vs_local']:>10.3f}"
              f"{after:>12}{ratio:>10}")
    print("ms per row written (PNG file + BEGIN IMMEDIATE insert), 200 rows: "
          + ", ".join(f"{k}: {v}" for k, v in writes.items()))


if __name__ == "__main__":
    main()
