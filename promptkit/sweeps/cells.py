"""What a sweep worker needs, shared by the Ray and accelerate runners: the experiment's missing
cells planned as the local run batches them, one batch made on a loaded backend, and one cell
written to the library.

The plan is made where the library is (the driver, or each accelerate process before any of
them writes). A worker only touches the engine: `make_batch` returns PNG bytes and the row the
local writer would insert, so `write_cell` stores exactly what `ab run` stores.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadParameter, PromptkitError

DEFAULT_BATCH = 4  # what `--batch-size auto` gives on a CPU; a sweep's batches are planned before any model loads


@dataclass
class VariantPlan:
    """One variant as a worker runs it: its prompt row, parameters and model (plain data, picklable)."""

    label: str
    prompt: dict[str, Any]
    params: Any  # GenerationParams, its `extra` with LoRAs resolved and stored
    model: str
    experiment_id: int
    inputs: Any = None  # RunInputs read from the library by the planner (init image, mask, control images)


@dataclass
class SweepPlan:
    """Every missing cell of an experiment, as the batches a local `ab run` makes, in its order."""

    name: str
    variants: list[VariantPlan]
    batches: list[tuple[int, list[int]]]  # (index into variants, the batch's seeds)
    batch_size: int
    model: str  # the experiment's default model (a variant may override it)
    done_before: set[tuple[str, int]] = field(default_factory=set)  # cells written before this run

    @property
    def total(self) -> int:
        return sum(len(seeds) for _v, seeds in self.batches)


def sweep_batch_size(batch_size: int | None) -> int:
    """The batch size a sweep uses: the one given, else DEFAULT_BATCH (what `auto` picks on a CPU;
    on GPUs pass --batch-size, since each worker's free memory is not known when cells are planned)."""
    return DEFAULT_BATCH if batch_size is None else int(batch_size)


def plan_batches(todo: dict[str, list[int]], labels: list[str], batch_size: int) -> list[tuple[int, list[int]]]:
    """(variant index, seeds) per batch: each variant's missing seeds in chunks of BATCH_SIZE, variants
    in the experiment's order: the batches `runs.run_experiment` makes, so each image has the same bytes."""
    if batch_size < 1:
        raise BadParameter(f"`batch_size` must be at least 1 but is {batch_size}")
    batches = []
    for index, label in enumerate(labels):
        seeds = todo.get(label) or []
        batches += [(index, seeds[i : i + batch_size]) for i in range(0, len(seeds), batch_size)]
    return batches


def share_of(plan: SweepPlan, batches: list[tuple[int, list[int]]]) -> dict[str, list[int]]:
    """The seeds per variant label of BATCHES (a contiguous share of the plan's): as `missing_cells` gives them."""
    todo: dict[str, list[int]] = {v.label: [] for v in plan.variants}
    for index, seeds in batches:
        todo[plan.variants[index].label].extend(seeds)
    return todo


def plan_sweep(library, name: str, model: str | None, lora_dir: str | None, batch_size: int | None,
               allow_pickle: bool = False) -> SweepPlan:
    """Read experiment NAME's missing cells and plan them; LoRA copies are stored now, as a local run does."""
    from ..experiments import cells, get_experiment, missing_cells, variant_job_params
    from ..inputs import resolve_inputs, store_loras
    from ..params import resolve_model

    experiment = get_experiment(library, name)
    default_model = model or experiment["model"]
    todo = missing_cells(library, experiment)
    variants = []
    for variant in experiment["variants"]:
        variant_model = variant["overrides"].get("model") or default_model
        if not variant_model:
            raise BadParameter(f"experiment {name!r} has no model; pass --model")
        params = variant_job_params(experiment, variant, lora_dir)
        if todo[variant["label"]]:
            store_loras(library, params.extra.get("loras") or [])
        variants.append(VariantPlan(variant["label"], dict(variant["prompt"]), params,
                                    resolve_model(variant_model, allow_pickle), experiment["id"],
                                    resolve_inputs(library, params.extra)))
    size = sweep_batch_size(batch_size)
    return SweepPlan(experiment["name"], variants, plan_batches(todo, [v.label for v in variants], size), size,
                     resolve_model(default_model, allow_pickle) if default_model else "",
                     set(cells(library, experiment)))


def job_of(variant: VariantPlan, seeds: list[int], batch_size: int):
    """The `GenerationJob` a local run makes for VARIANT's SEEDS."""
    import copy

    from ..generation import GenerationJob

    return GenerationJob(prompt=variant.prompt, params=copy.deepcopy(variant.params), seeds=seeds,
                         batch_size=batch_size, experiment_id=variant.experiment_id, variant=variant.label)


def make_batch(engine, variant: VariantPlan, seeds: list[int], profile: bool = False) -> tuple[list[dict], list[str]]:
    """Generate one planned batch on ENGINE as `generation.run_job` does (same records, the same
    halving on out-of-memory): one {label, seed, png, sha256, row} per image (the row without its
    image and time, which `write_cell` adds), and the notes."""
    import hashlib

    from ..generation import _denoise, check_lora_tags, generation_record, image_flags
    from ..pnginfo import encode_png

    from ..families import check_family_extra

    job = job_of(variant, seeds, len(seeds))
    if hasattr(engine, "resolve_params"):  # a flow-matching family resolves its sampler, as run_job does
        job.params = engine.resolve_params(job.params)
    check_lora_tags(job.prompt["positive"], job.params.extra)
    check_family_extra(getattr(engine, "family", None), job.params.extra, engine.model)
    engine.check_request(job.params.extra)
    engine_info, notes, made = engine.describe(), [], []
    for sub_batch, result in _denoise(engine, job, seeds, profile, notes, variant.inputs):
        size = (result.info["width"], result.info["height"])
        per_image = result.seconds / len(sub_batch)
        for index, (seed, image) in enumerate(zip(sub_batch, result.images)):
            record = generation_record(job, engine_info, seed, sub_batch, index, size, result.info)
            flags = image_flags(image)
            if flags:
                record.flags = flags
                notes.append(f"seed {record.seed}: {'; '.join(flags)}")
            png = encode_png(image, record)
            row = record.to_row(prompt_id=job.prompt["id"], experiment_id=job.experiment_id, variant=job.variant,
                                seconds=per_image)
            made.append({"label": variant.label, "seed": int(seed), "png": png,
                         "sha256": hashlib.sha256(png).hexdigest(), "row": json.dumps(row)})
    return made, notes


def write_cell(library, cell: dict[str, Any]) -> dict[str, Any]:
    """Store a made cell's PNG, then its row (the row only once the file is on disk), as the local
    writer does; returns what `ab run` reports for it, with the seconds it took."""
    from ..library import utc_now

    started = time.perf_counter()
    png = bytes(cell["png"])
    sha, file = library.store_image(png)
    if sha != cell["sha256"]:
        raise PromptkitError(f"cell {cell['label']} seed {cell['seed']}: the image changed on its way from the "
                             f"worker (sha256 {cell['sha256'][:12]}, received {sha[:12]})")
    row = json.loads(cell["row"])
    row.update(image_sha256=sha, image_path=library.relative_image_path(file), created_at=utc_now())
    gen_id = library.add_generation(row)
    return {"id": gen_id, "seed": int(cell["seed"]), "image_path": str(file), "image_sha256": sha,
            "seconds": time.perf_counter() - started}


def outcome_dict(generations: list[dict], notes: list[str], interrupted: bool, timings: dict[str, float],
                 load_seconds: float, engine: str) -> dict[str, Any]:
    """A sweep's result in the form `service.run_spec` gives for a local run."""
    return {"generations": sorted(generations, key=lambda g: g["id"]), "notes": notes, "interrupted": interrupted,
            "timings": timings, "load_seconds": load_seconds, "engine": engine}
