"""`ab run NAME --ray [ADDRESS]`: an experiment's missing cells on a Ray cluster.

The cells become a Ray Data dataset, one block per planned batch (padded to the batch size, so
each `map_batches` call sees exactly one batch); `CellMaker` actors (one GPU each, or one CPU)
load the pipeline once and make each batch as the local engine does. PNG bytes and rows come
back to the driver, which alone writes the library: SQLite is a single-machine store, and one
writer needs no lock across machines.

Resuming: the driver writes a cell's row only after its PNG, one cell at a time, so a killed
driver leaves whole cells; the next run plans only the missing ones. Ray restarts a dead actor
and retries its batch; a cell that comes back twice (a retried batch whose first try had already
streamed part of its output) is written once: the driver skips any cell it has written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

from ..errors import PromptkitError
from .cells import SweepPlan, make_batch, outcome_dict, plan_sweep, write_cell

RAY_MISSING = "--ray needs Ray: pip install 'promptkit[ray]' (the ray[data] package)"


def require_ray():
    """The `ray` module with Ray Data, or a one-line error naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise PromptkitError(RAY_MISSING) from None
    return ray


class CellMaker:
    """A Ray actor: loads each model of the plan once, then makes whole planned batches.

    A call gets rows {batch, seed, pad}; it regroups them by planned batch and runs each batch
    with all of its planned seeds, so the images are those of a local run even if Ray ever
    handed over a batch in two parts (only the rows asked for are returned).
    """

    def __init__(self, variants, batches, engine_options: dict[str, Any], profile: bool = False) -> None:
        from ..engine.backend import EngineOptions
        from ..engine.cache import PipelineCache
        from ..plugins.manager import load_backend

        started = time.perf_counter()
        self.variants, self.batches, self.profile = variants, batches, profile
        cache, options = PipelineCache(), EngineOptions(**engine_options)
        # Each model's backend (SD, a flow-matching family, a plugin's), as the local worker loads it.
        self.engines = {model: load_backend(model, options, cache=cache)
                        for model in dict.fromkeys(v.model for v in variants)}
        self.load_seconds = time.perf_counter() - started

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        asked: dict[int, set[int]] = {}
        for batch, seed, pad in zip(rows["batch"], rows["seed"], rows["pad"]):
            if not pad:
                asked.setdefault(int(batch), set()).add(int(seed))
        out: dict[str, list] = {key: [] for key in ("label", "seed", "png", "sha256", "row", "notes", "load_seconds")}
        for batch, seeds in asked.items():
            index, planned = self.batches[batch]
            variant = self.variants[index]
            made, notes = make_batch(self.engines[variant.model], variant, list(planned), self.profile)
            for cell in (c for c in made if c["seed"] in seeds):
                for key in ("label", "seed", "png", "sha256", "row"):
                    out[key].append(cell[key])
                out["notes"].append(json.dumps(notes))
                out["load_seconds"].append(self.load_seconds)
                notes, self.load_seconds = [], 0.0  # said once
        import numpy as np

        # Objects, not numpy's fixed-width bytes (which drop trailing NULs): the PNGs travel as they are.
        return {key: np.array(values, dtype=object) for key, values in out.items()}


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at ADDRESS (None or "local": start one here); True when this call started Ray."""
    import logging

    if ray.is_initialized():
        return False
    # Ray's start-up notices (token authentication, progress bars off) are not the person's business.
    logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address and address != "local":
        kwargs["address"] = address
    else:
        kwargs["address"] = "local"
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise PromptkitError(f"--ray {address}: no Ray cluster answers there ({exc})") from None
    return True


def _dataset(ray, plan: SweepPlan):
    """One block per planned batch, each padded with `pad` rows to the batch size: a `map_batches`
    call of that batch size then holds exactly one planned batch."""
    blocks = []
    for number, (_index, seeds) in enumerate(plan.batches):
        padding = plan.batch_size - len(seeds)
        blocks.append({"batch": [number] * plan.batch_size, "seed": list(seeds) + [-1] * padding,
                       "pad": [False] * len(seeds) + [True] * padding})
    import pyarrow as pa

    return ray.data.from_arrow([pa.table(block) for block in blocks])


def run_on_ray(library, name: str, *, address: str | None = None, workers: int | None = None,
               model: str | None = None, lora_dir: str | None = None, batch_size: int | None = None,
               engine_options: dict[str, Any] | None = None, profile: bool = False, progress=None) -> dict[str, Any]:
    """Make experiment NAME's missing cells on Ray and write them into LIBRARY (this process alone writes).

    :param address: a running cluster ("auto", "HOST:6379", "ray://HOST:10001"); None starts a local one.
    :param workers: actors at once (default: one per GPU of the cluster, else 1).
    :returns: what a local `ab run` returns (generations, notes, timings, load_seconds, engine).
    """
    ray = require_ray()
    plan = plan_sweep(library, name, model, lora_dir, batch_size, (engine_options or {}).get("allow_pickle", False))
    if not plan.batches:
        return outcome_dict([], [], False, {}, 0.0, "ray")
    # Ray's error listener prints its notices (a killed actor's task, say) on stdout, where `--json` puts
    # its answer: they go to stderr while Ray runs for us.
    with contextlib.redirect_stdout(sys.stderr):
        return _run(ray, library, plan, address, workers, engine_options, profile, progress)


def _run(ray, library, plan: SweepPlan, address: str | None, workers: int | None,
         engine_options: dict[str, Any] | None, profile: bool, progress) -> dict[str, Any]:
    started_ray = _connect(ray, address)
    try:
        import logging

        from ray.data import ActorPoolStrategy, DataContext

        logging.getLogger("ray.data").setLevel(logging.ERROR)  # the progress is ours: cells done of total
        context = DataContext.get_current()
        context.enable_progress_bars = False
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        slots = gpus or max(1, int(resources.get("CPU", 1)))
        notes = [f"--workers {workers}: the cluster has {slots} {'GPUs' if gpus else 'CPUs'}; using {slots}"
                 ] if workers and workers > slots else []
        workers = min(workers or max(1, gpus), slots)
        made = _dataset(ray, plan).map_batches(
            CellMaker, fn_constructor_kwargs={"variants": plan.variants, "batches": plan.batches,
                                              "engine_options": dict(engine_options or {}), "profile": profile},
            batch_size=plan.batch_size, compute=ActorPoolStrategy(size=workers), num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1,
            batch_format="numpy")
        try:
            outcome = _collect(library, plan, made, progress, f"ray ({workers} {'GPU' if gpus else 'CPU'} workers)")
        except Exception as exc:
            refusal = _promptkit_error(exc)
            if refusal is None:
                raise
            first_line = (str(refusal).strip().splitlines() or [type(refusal).__name__])[0]
            raise PromptkitError(f"a Ray worker refused: {first_line}") from None
        outcome["notes"] = notes + outcome["notes"]
        return outcome
    finally:
        if started_ray:
            ray.shutdown()


def _promptkit_error(exc: BaseException) -> PromptkitError | None:
    """The PromptkitError a worker raised, out of the exceptions Ray wraps it in (None when there is none)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)  # Ray's RayTaskError keeps the worker's exception here
        if isinstance(current, PromptkitError) and not isinstance(cause, BaseException):
            return current
        stack += [current.__cause__, current.__context__, cause]
    return None


def _collect(library, plan: SweepPlan, made, progress, engine: str) -> dict[str, Any]:
    """Write each cell as it streams back; a cell already written is skipped (never a second row).

    First Ctrl-C: the cells already back are written, then the run stops (`interrupted`; the workers'
    batches in flight are dropped and a re-run makes them); a second Ctrl-C stops at once."""
    from ..generation import StopAfterBatch

    written: dict[tuple[str, int], dict[str, Any]] = {}
    notes: list[str] = []
    timings = {"database": 0.0}
    load_seconds = 0.0
    total = plan.total
    with StopAfterBatch() as stop:
        try:
            for cell in made.iter_rows():
                key = (str(cell["label"]), int(cell["seed"]))
                notes += json.loads(cell["notes"])
                load_seconds = max(load_seconds, float(cell["load_seconds"]))
                if key in written or key in plan.done_before:
                    continue
                written[key] = write_cell(library, cell)
                timings["database"] += written[key].pop("seconds")
                if progress:
                    progress(len(written), total)
                if stop.requested:
                    break
        except Exception:
            if not stop.requested:  # Ctrl-C reached Ray's processes too (a terminal signals the whole group)
                raise
    return outcome_dict(list(written.values()), notes, stop.requested, timings, load_seconds, engine)
