"""Generating images: the worker job spec, generate, reproduce, iterate and the offline demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import PromptkitError

if TYPE_CHECKING:
    from ..library import Library
    from ..engine import Engine
    from ..inputs import InputRequest
    from ..params import GenerationParams

Progress = Callable[[int, int], None]


def job_spec(kind: str, *, db: str | None = None, model: str, engine_options: dict[str, Any] | None = None,
             **fields: Any) -> dict[str, Any]:
    """The one place a job for the warm engine (or this process) is built: a `records.JobRequest`, serialised.

    :param kind: "generate", "ab_run" or "check".
    :param db: the library file, absolute so that a warm engine elsewhere finds it (not for "check").
    :param model: the resolved model reference.
    :param engine_options: device, dtype and memory options (see `EngineOptions`).
    :param fields: the kind's own fields: prompt_id, params, seeds, batch_size, profile (generate);
        name, batch_size, profile, lora_dir (ab_run); extra (check).
    :returns: `JobRequest.to_dict()`, the JSON-able job the worker's socket carries.
    """
    from ..records import JobRequest

    job = JobRequest(kind=kind, db=str(db) if db is not None else None, model=model,
                     engine_options=dict(engine_options or {}), **fields)
    return job.to_dict()


def run_spec(spec: dict[str, Any], progress: Progress | None = None, use_engine: bool = True) -> dict[str, Any]:
    """Run a job on the warm engine when one is up (and `use_engine`), else in this process.

    :returns: the job's outcome: generations, notes, interrupted, engine, load_seconds, timings.
    """
    from ..worker import run_anywhere

    return run_anywhere(spec, progress=progress, use_engine=use_engine)


def resolve_model(model: str, allow_pickle: bool = False) -> str:
    """Check MODEL before any heavy import; local paths become absolute so a warm engine finds them.

    :param model: a diffusers folder, a .safetensors file or a hub id.
    :param allow_pickle: accept a .ckpt/.bin pickle checkpoint.
    """
    from ..params import resolve_model as resolve

    return resolve(model, allow_pickle)


def make_engine(model: str, engine_options: dict[str, Any] | None = None) -> Engine:
    """Load (or reuse) the engine for MODEL in this process.

    :param engine_options: keyword arguments of `EngineOptions` (allow_pickle among them).
    """
    from ..params import check_model_ref

    engine_options = dict(engine_options or {})
    check_model_ref(model, engine_options.get("allow_pickle", False))
    from ..engine import EngineOptions
    from ..engine.cache import get_backend

    return get_backend(model, EngineOptions(**engine_options))


def generate(library: Library, prompt: int | str, model: str, seeds: list[int] | str = "1-4", *,
             params: GenerationParams | None = None, inputs: InputRequest | None = None,
             batch_size: int | str | None = "auto",
             engine_options: dict[str, Any] | None = None, profile: bool = False, use_engine: bool = True,
             progress: Progress | None = None, **settings: Any) -> dict[str, Any]:
    """Generate images of a saved PROMPT on fixed seeds and store every image in LIBRARY.

    :param prompt: the saved prompt's id or name.
    :param model: diffusers folder, .safetensors file or hub id.
    :param seeds: a list of seeds, or the text forms "1,2,3", "1-8", "random:N".
    :param params: a `GenerationParams` (default: 25 steps, CFG 7, DPM++ 2M Karras); or pass its fields
        as keywords (steps=10, cfg=6.5, sampler="Euler", width=, height=, noise_device=).
    :param inputs: an `InputRequest` (init image, mask, LoRAs, ControlNets, refiner), or None.
    :param batch_size: images per pipeline call, or "auto".
    :param engine_options: device, dtype and memory options; `allow_pickle` among them.
    :param use_engine: run on the warm engine when one is up.
    :returns: the job's outcome; "generations" lists the stored rows (id, seed, image_path, ...).
    """
    from ..inputs import InputRequest, prepare_inputs
    from ..params import GenerationParams, parse_batch_size, parse_seeds

    engine_options = dict(engine_options or {})
    params = params or GenerationParams(**settings)
    seed_list = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
    batch_size = parse_batch_size(batch_size) if isinstance(batch_size, str) else batch_size
    prompt_row = library.get_prompt(prompt)
    model = resolve_model(model, engine_options.get("allow_pickle", False))
    # Check every input, then the model's family against LoRAs and ControlNets, before writing anything.
    prepared = prepare_inputs(inputs or InputRequest(), prompt_row["positive"])
    if prepared.extra:
        # The loaded model vets the inputs (its family, its UNet): the warm engine's when one is up.
        check = job_spec("check", model=model, engine_options=engine_options, extra=prepared.extra)
        if run_spec(check, use_engine=use_engine)["engine"] is None:
            use_engine = False  # the model is loaded in this process now: generate here, not load it twice
    params.extra = prepared.store(library)
    spec = job_spec("generate", db=str(library.path.resolve()), model=model, engine_options=engine_options,
                    prompt_id=prompt_row["id"], params=params.to_dict(), seeds=seed_list, batch_size=batch_size,
                    profile=profile)
    return run_spec(spec, progress, use_engine)


def reproduce(library: Library, generation_id: int, engine_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Regenerate a stored image from the library alone and compare its sha256.

    :param generation_id: the image to regenerate.
    :param engine_options: device, dtype and memory options (see `EngineOptions`).
    :returns: match, pixels_match, stored_sha256, new_sha256 and notes.
    """
    from ..generation import reproduce as reproduce_generation

    gen = library.get_generation(generation_id)
    engine = make_engine(gen["model"], engine_options)
    return reproduce_generation(library, engine, generation_id)


def _iterate_settings(library: Library, parent: dict[str, Any], seeds: list[int] | str | None, model: str | None,
                      allow_pickle: bool) -> tuple[GenerationParams, list[int], str, int]:
    """The parent's parameters, seeds, model and batch size, with SEEDS and MODEL taking precedence."""
    from ..lineage import parent_settings
    from ..params import GenerationParams, parse_seeds

    try:
        params, parent_seeds, parent_model, batch_size = parent_settings(library, parent["id"])
    except PromptkitError:
        if not (seeds and model):
            raise
        params, parent_seeds, parent_model, batch_size = GenerationParams(), [], None, 4
    if isinstance(seeds, str):
        seeds = parse_seeds(seeds)
    return (params, list(seeds) if seeds else parent_seeds, resolve_model(model or parent_model, allow_pickle),
            batch_size)


def iterate(library: Library, prompt: int | str, changes: dict[str, str], *, name: str | None = None,
            model: str | None = None, seeds: list[int] | str | None = None, generate: bool = True,
            lora_dir: str | None = None, templates_dir: str | None = None,
            engine_options: dict[str, Any] | None = None, use_engine: bool = True,
            progress: Progress | None = None) -> dict[str, Any]:
    """Save a child of PROMPT that changes CHANGES, and generate it on the parent's seeds and parameters.

    :param changes: field -> new value (subject, action, environment, style, quality, negative, or an extra).
    :param model: the model (default: the parent's last one); :param seeds: default the parent's.
    :param generate: False saves the child prompt only.
    :param lora_dir: folder for `<lora:NAME>` tags the parent did not have.
    :returns: parent_id, id, fields, positive, negative (diffs), child (the row) and generations.
    """
    from ..inputs import store_loras
    from ..lineage import child_loras, iterate_prompt

    engine_options = dict(engine_options or {})
    parent = library.get_prompt(prompt)
    settings = None
    if generate:
        settings = _iterate_settings(library, parent, seeds, model, engine_options.get("allow_pickle", False))
    def attach_loras(result: dict[str, Any]) -> None:  # a tag that cannot be resolved rolls the child back
        extra = settings[0].extra
        loras = child_loras(extra.get("loras") or [], parent["positive"], result["child"]["positive"], lora_dir)
        extra.pop("loras", None)
        if loras:
            store_loras(library, loras)
            extra["loras"] = loras

    result = library.save_child_prompt(
        lambda: iterate_prompt(library, prompt, changes, name=name, templates_dir=templates_dir),
        attach_loras if settings is not None else None)
    generations: list[dict[str, Any]] = []
    if settings is not None:
        params, seed_list, use_model, batch_size = settings
        spec = job_spec("generate", db=str(library.path.resolve()), model=use_model, engine_options=engine_options,
                        prompt_id=result["child"]["id"], params=params.to_dict(), seeds=seed_list,
                        batch_size=batch_size)
        generations = run_spec(spec, progress, use_engine)["generations"]
    return {"parent_id": result["parent"]["id"], "id": result["child"]["id"], "fields": result["fields"],
            "positive": result["positive"], "negative": result["negative"], "child": result["child"],
            "generations": generations}


def demo(library: Library, model_dir: str | Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The offline quick start: a tiny model, prompts A and B run as an experiment on the same seeds."""
    from ..demo import run_demo

    return run_demo(library, Path(model_dir), say=say)
