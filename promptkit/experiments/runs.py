"""Experiment runs: create, find and list experiments, their cells, generating the missing
ones, adopting images made outside, and adding seeds."""

from __future__ import annotations

from typing import Any

from ..errors import BadParameter
from ..generation import GenerationJob, JobOutcome, Progress, recorded_inputs, run_job, start_writer
from ..library import Library, utc_now
from ..params import GenerationParams
from .variants import _NAME_RE, ExperimentProblem, VariantSpec, check_label, check_overrides, variant_params


def check_new_experiment(library: Library, name: str, variants: list[VariantSpec], seeds: list[int],
                         params: GenerationParams, model: str | None = None) -> list[tuple[VariantSpec, int]]:
    """Everything create_experiment checks, reading only: run it before storing an experiment's
    input images, so a bad name or prompt leaves no file behind. Returns (variant, prompt id)s."""
    check_experiment_name(name)
    if len(variants) < 2:
        raise ExperimentProblem(f"an experiment needs at least two variants; got {len(variants)}")
    labels = [check_label(v.label) for v in variants]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ExperimentProblem(f"variant label {duplicates[0]!r} is used twice")
    if not seeds:
        raise BadParameter("an experiment needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise BadParameter("the seed list repeats a seed")
    resolved = []
    for spec in variants:
        prompt = library.get_prompt(spec.prompt)
        check_overrides(params, spec.overrides, model)
        resolved.append((spec, prompt["id"]))
    if library.experiment_exists(name):
        raise ExperimentProblem(f"an experiment named {name!r} already exists; choose another name")
    return resolved


def create_experiment(
    library: Library,
    name: str,
    variants: list[VariantSpec],
    seeds: list[int],
    params: GenerationParams,
    model: str | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Store an experiment with its variants; nothing is written if anything is wrong."""
    # 1. Check inputs
    resolved = check_new_experiment(library, name, variants, seeds, params, model)
    # 2. Write, all or nothing (the name is checked again under the write lock)
    experiment_id = library.insert_experiment(
        name, seeds, {**params.to_dict(), **(extra or {})}, model,
        [(spec.label, prompt_id, spec.overrides) for spec, prompt_id in resolved])
    if experiment_id is None:
        raise ExperimentProblem(f"an experiment named {name!r} already exists; choose another name")
    return experiment_id


def check_experiment_name(name: str) -> str:
    """NAME if it is allowed as an experiment's name (1-100 characters, not all digits)."""
    if not _NAME_RE.match(name or "") or name.strip().isdigit():
        raise BadParameter(f"experiment name {name!r} is not allowed: 1-100 characters, not all digits")
    return name


def rename_experiment(library: Library, name: str, new_name: str) -> dict[str, Any]:
    """Rename experiment NAME (or id) to NEW_NAME; refused in one line when NEW_NAME is not allowed or taken."""
    return library.rename_experiment(name, check_experiment_name(new_name))


def get_experiment(library: Library, name: str) -> dict[str, Any]:
    """An experiment by name (or id) with its variants (each with its prompt)."""
    experiment = library.experiment_row(name)
    for variant in experiment["variants"]:
        variant["prompt"] = library.get_prompt(variant["prompt_id"])
    return experiment


def list_experiments(library: Library) -> list[dict[str, Any]]:
    """Every experiment with how many seeds, variants, generations and votes it has."""
    return library.experiment_summaries()


def cells(library: Library, experiment: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """(label, seed) -> the cell's generation (the first one made)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for gen in library.experiment_generations(experiment["id"]):
        found.setdefault((gen["label"], gen["seed"]), gen)
    return found


def missing_cells(library: Library, experiment: dict[str, Any]) -> dict[str, list[int]]:
    done = cells(library, experiment)
    return {v["label"]: [s for s in experiment["seeds"] if (v["label"], s) not in done]
            for v in experiment["variants"]}


def variant_job_params(experiment: dict[str, Any], variant: dict[str, Any],
                       lora_dir: str | None = None) -> GenerationParams:
    """A variant's parameters with the `<lora:NAME:SCALE>` tags of its prompt resolved in LORA_DIR
    (else the folder recorded by `ab new`), as `generate` resolves them; checks only, writes nothing."""
    from ..inputs import merge_loras, prompt_loras

    params = variant_params(experiment, variant)
    tagged = prompt_loras(variant["prompt"]["positive"], lora_dir or experiment["params"].get("lora_dir"))
    if tagged:
        params.extra["loras"] = merge_loras(params.extra.get("loras") or [], tagged)
    return params


def run_experiment(library: Library, engine, name: str, batch_size: int | None = 4,
                   progress: Progress | None = None, profile: bool = False,
                   lora_dir: str | None = None, only: dict[str, list[int]] | None = None) -> JobOutcome:
    """Generate every missing (variant, seed) cell; an interrupted run resumes where it stopped.

    LoRA tags in a variant's prompt are resolved in LORA_DIR (else the folder `ab new` recorded).
    ONLY ({label: seeds}, as `missing_cells` gives them) makes just those cells: one process's share
    of a sweep (promptkit.sweeps.accelerate_runner).
    """
    experiment = get_experiment(library, name)
    todo = missing_cells(library, experiment) if only is None else {
        v["label"]: list(only.get(v["label"]) or []) for v in experiment["variants"]}
    outcome = JobOutcome()
    # Every variant is planned and checked against its model before any image is made: its LoRA
    # tags resolve, and one that cannot run (a refiner on an SD 1.x base, say) must not leave the
    # others half generated.
    plans = []
    for variant in experiment["variants"]:
        if not todo[variant["label"]]:
            continue
        params = variant_job_params(experiment, variant, lora_dir)
        variant_engine = engine
        if variant["overrides"].get("model") and variant["overrides"]["model"] != engine.model:
            from ..engine.cache import get_backend

            # Another family's model runs on its own backend (same prompt, seeds and size).
            variant_engine = get_backend(variant["overrides"]["model"], engine.options)
        check_variant_engine(variant, params, variant_engine, engine)
        plans.append((variant, params, variant_engine))
    # One writer for every variant: a variant's last batch is written while the next denoises.
    writer = start_writer(library, batch_size)
    try:
        _run_variants(library, experiment, todo, plans, batch_size, writer, outcome, progress, profile)
    finally:
        writer.finish()
    writer.collect(outcome)  # the rows, in id order, and the writer's own timings and warnings
    return outcome


def check_variant_engine(variant: dict[str, Any], params: GenerationParams, variant_engine, engine) -> None:
    """A variant against the model it runs on, before any image: its inputs, its sampler (a flow-matching
    family takes Euler only) and, across a flow-matching family and another, one fixed size."""
    variant_engine.check_request(params.extra)
    if hasattr(variant_engine, "resolve_params"):
        variant_engine.resolve_params(params)
    from ..families import UNET_FAMILIES

    families = {getattr(variant_engine, "family", None), getattr(engine, "family", None)}
    flow = any(family not in UNET_FAMILIES for family in families)  # SD 1.x vs 2.x keep their native sizes
    if len(families) > 1 and flow and (params.width is None or params.height is None):
        raise BadParameter(f"variant {variant['label']!r} runs on another family's model: the experiment needs "
                           "one fixed size for every variant (give --width and --height)")


def _run_variants(library: Library, experiment: dict[str, Any], todo: dict[str, list[int]], plans: list[tuple],
                  batch_size: int | None, writer, outcome: JobOutcome, progress: Progress | None,
                  profile: bool) -> None:
    from ..inputs import store_loras

    total = sum(len(seeds) for seeds in todo.values())
    done_before = 0
    for variant, params, variant_engine in plans:
        seeds = todo[variant["label"]]
        store_loras(library, params.extra.get("loras") or [])
        job = GenerationJob(prompt=variant["prompt"], params=params, seeds=seeds,
                            batch_size=batch_size, experiment_id=experiment["id"], variant=variant["label"])

        def step(done: int, _total: int, offset: int = done_before) -> None:
            if progress:
                progress(offset + done, total)

        part = run_job(library, variant_engine, job, progress=step, profile=profile, writer=writer)
        outcome.notes.extend(part.notes)
        for key, value in part.timings.items():
            outcome.timings[key] = outcome.timings.get(key, 0.0) + value
        done_before += len(seeds)
        if part.interrupted:
            outcome.interrupted = True
            break


def adopt_generations(library: Library, name: str, label: str, generation_ids: list[int]) -> list[int]:
    """Record images made outside the experiment as LABEL's cells, where they match it exactly.

    Each becomes a new generation row in the experiment pointing at the same image file (the
    original row stays where it was). A generation is taken only when it is of the variant's
    prompt, on one of the experiment's seeds, with the variant's parameters and model, and its
    cell is still empty; the others are skipped. Returns the new rows' ids.
    """
    experiment = get_experiment(library, name)
    variant = next((v for v in experiment["variants"] if v["label"] == label), None)
    if variant is None:
        raise ExperimentProblem(f"experiment {name!r} has no variant {label!r}")
    params = variant_params(experiment, variant)
    model = variant["overrides"].get("model") or experiment["model"]
    taken = set(cells(library, experiment))
    adopted = []
    for generation_id in generation_ids:
        row = library.get_generation(generation_id)
        checks = [row["prompt_id"] == variant["prompt_id"], row["seed"] in experiment["seeds"],
                  (label, row["seed"]) not in taken, row["experiment_id"] is None, row["model"] == model,
                  row["sampler"] == params.sampler, row["steps"] == params.steps, row["cfg"] == params.cfg,
                  row["noise_device"] == params.noise_device,
                  params.width is None or row["width"] == params.width,
                  params.height is None or row["height"] == params.height,
                  recorded_inputs(row["params"]) == params.extra]
        if not all(checks):
            continue
        copy = {k: v for k, v in row.items() if k != "id"}
        copy.update(experiment_id=experiment["id"], variant=label, created_at=utc_now())
        adopted.append(library.add_generation(copy))
        taken.add((label, row["seed"]))
    return adopted


def add_seeds(library: Library, name: str, seeds: list[int]) -> list[int]:
    """Extend the experiment's seed list; every variant gets the new seeds on the next run."""
    experiment = get_experiment(library, name)
    new = [s for s in dict.fromkeys(seeds) if s not in experiment["seeds"]]
    library.set_experiment_seeds(experiment["id"], experiment["seeds"] + new)
    return new


