"""`accelerate launch -m promptkit ab run NAME` (or `ab run NAME --accelerate`): an experiment's
missing cells split between the processes of one machine.

Every process reads the same missing cells and plans the same batches (those of a local run);
a barrier holds them all until each has read, so no process's first row changes another's plan.
`PartialState.split_between_processes` then gives each a contiguous run of whole batches, and
each makes its share with the local engine (`experiments.run_experiment(only=...)`).

Each process writes its own rows, through the library's `BEGIN IMMEDIATE` transactions in WAL
mode, rather than handing them to rank 0. Why:
- a cell is durable the moment its process makes it: a process that dies loses its batch in
  flight, nothing else (rows handed to rank 0 would die with rank 0, or wait on it);
- no collective call per batch: gathering PNGs to rank 0 makes every process wait for the
  slowest at each step, and ships megabytes through gloo/NCCL for a write that takes milliseconds;
- the write lock is held for one INSERT (the PNG is written before, outside it), so N GPUs each
  writing a few rows per several-second batch hardly ever wait: `timings` reports the seconds
  spent in the database over all processes (measured in tests/test_sweeps.py and the README).
The processes share one machine's disk, which SQLite's locking needs: this runner is for one
machine; across machines use `--ray`, where the driver alone writes.

Resuming: every cell belongs to exactly one process's share and is written once, after its PNG;
a re-run plans only the cells still missing.
"""

from __future__ import annotations

import datetime
import os
import threading
from typing import Any

from ..errors import PromptkitError
from .cells import outcome_dict, plan_sweep, share_of

BARRIER_HOURS = 48
ACCELERATE_MISSING = "--accelerate needs accelerate: pip install accelerate"


def launched() -> bool:
    """Whether `accelerate launch` (or torchrun) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 or "ACCELERATE_MIXED_PRECISION" in os.environ


def process_state(device: str | None):
    """accelerate's PartialState: on CPUs (no CUDA, --device cpu or `accelerate launch --cpu`) the gloo backend."""
    try:
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env
    except ImportError:
        raise PromptkitError(ACCELERATE_MISSING) from None
    import torch

    cpu = device == "cpu" or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    # The last barrier waits for the slowest share; torch's 30-minute default would end a long sweep.
    return PartialState(cpu=cpu, timeout=datetime.timedelta(hours=BARRIER_HOURS))


class _Watcher(threading.Thread):
    """On the main process: cells done out of the run's total, counted in the library (every process's rows)."""

    def __init__(self, library_path, plan, progress) -> None:
        super().__init__(name="promptkit-sweep-progress", daemon=True)
        self.library_path, self.plan, self.progress = library_path, plan, progress
        self.stopped = threading.Event()

    def run(self) -> None:
        from ..experiments import cells, get_experiment
        from ..library import Library

        with Library(self.library_path) as library:
            experiment = get_experiment(library, self.plan.name)
            last = -1
            while True:
                final = self.stopped.wait(0.5)
                done = len(set(cells(library, experiment)) - self.plan.done_before)
                if done != last:
                    self.progress(min(done, self.plan.total), self.plan.total)
                    last = done
                if final:
                    return


def run_with_accelerate(library, name: str, *, model: str | None = None, lora_dir: str | None = None,
                        batch_size: int | None = None, engine_options: dict[str, Any] | None = None,
                        profile: bool = False, progress=None) -> tuple[dict[str, Any], bool]:
    """Make this process's share of experiment NAME's missing cells; returns (outcome, whether this is
    the main process). The main process's outcome lists every process's new cells."""
    from accelerate.utils import gather_object

    options = dict(engine_options or {})
    state = process_state(options.get("device"))
    if not options.get("device"):
        # This process's GPU becomes torch's current one and the engine runs on "cuda": what it
        # loads, and the free memory it measures, are this GPU's.
        options["device"] = state.device.type
        if state.device.type == "cuda":
            import torch

            torch.cuda.set_device(state.device)
    plan = plan_sweep(library, name, model, lora_dir, batch_size, options.get("allow_pickle", False))
    state.wait_for_everyone()  # every process has read the missing cells before any writes one
    with state.split_between_processes(plan.batches) as mine:
        share = share_of(plan, list(mine))
    watcher = _Watcher(library.path, plan, progress) if state.is_main_process and progress and plan.total else None
    if watcher:
        watcher.start()
    try:
        outcome, rows = _make_share(library, plan, name, share, options, lora_dir, profile)
    finally:
        state.wait_for_everyone()
        if watcher:
            watcher.stopped.set()
            watcher.join()
    parts = gather_object([(outcome, rows)])
    result = outcome_dict(_new_cells(library, plan) if state.is_main_process else [], [], False, {}, 0.0,
                          f"accelerate ({state.num_processes} processes)")
    for part, written in parts:
        result["notes"] += part["notes"]
        result["interrupted"] |= part["interrupted"]
        result["load_seconds"] = max(result["load_seconds"], part["load_seconds"])
        for key, value in part["timings"].items():
            result["timings"][key] = result["timings"].get(key, 0.0) + value
    result["processes"] = [{"cells": written, "database_s": part["timings"].get("database", 0.0)}
                           for part, written in parts]
    return result, state.is_main_process


def _make_share(library, plan, name: str, share: dict[str, list[int]], options: dict[str, Any],
                lora_dir: str | None, profile: bool) -> tuple[dict[str, Any], int]:
    """This process's cells through the local run (its engine loaded only when it has any)."""
    rows = sum(len(seeds) for seeds in share.values())
    if not rows:
        return {"notes": [], "interrupted": False, "timings": {}, "load_seconds": 0.0}, 0
    from ..engine.backend import EngineOptions
    from ..experiments import run_experiment
    from ..plugins.manager import load_backend

    engine = load_backend(plan.model or next(v.model for v in plan.variants if share[v.label]),
                          EngineOptions(**options))
    outcome = run_experiment(library, engine, name, batch_size=plan.batch_size, profile=profile, lora_dir=lora_dir,
                             only=share)
    return {"notes": outcome.notes, "interrupted": outcome.interrupted, "timings": outcome.timings,
            "load_seconds": engine.load_seconds}, len(outcome.generations)


def _new_cells(library, plan) -> list[dict[str, Any]]:
    """The cells written by this run, every process's, as `ab run` reports them."""
    from ..experiments import cells, get_experiment

    found = cells(library, get_experiment(library, plan.name))
    return [{"id": gen["id"], "seed": seed, "image_path": str(library.path.parent / gen["image_path"]),
             "image_sha256": gen["image_sha256"]}
            for (label, seed), gen in found.items() if (label, seed) not in plan.done_before]
