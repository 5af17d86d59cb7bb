"""A/B experiments: variants on one seed list, paired generation, blind pairwise votes."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from .errors import BadParameter, NotFound, PromptkitError
from .generation import GenerationJob, JobOutcome, Progress, recorded_inputs, run_job, start_writer
from .library import Library, utc_now
from .params import GenerationParams

# strength, lora_scale (every LoRA of the experiment) and control_scale (every ControlNet) live in params.extra.
EXTRA_OVERRIDES = ("strength", "lora_scale", "control_scale")
# The SDXL refiner (params.extra["refiner"]): `refiner=off`, `refiner=on` (the experiment's --refiner) or
# `refiner=MODEL`, and `refiner_switch=F`.
REFINER_OVERRIDES = ("refiner", "refiner_switch")
# model: the variant runs on another checkpoint (loaded once per process, with the same engine options).
OVERRIDABLE = ("sampler", "steps", "cfg", "width", "height", "noise_device", "model", *EXTRA_OVERRIDES,
               *REFINER_OVERRIDES)
_LABEL_RE = re.compile(r"^[^\s:=,]{1,64}$")
_NAME_RE = re.compile(r"^\S(.{0,98}\S)?$")


class ExperimentProblem(PromptkitError):
    """An experiment, variant or vote that cannot be used as asked."""


@dataclass
class VariantSpec:
    """One arm of an experiment: a saved prompt plus parameter overrides."""

    label: str
    prompt: str  # id or name
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_override_value(key: str, value: str) -> Any:
    if key not in OVERRIDABLE:
        raise BadParameter(f"cannot override {key!r} in a variant; choose from {', '.join(OVERRIDABLE)}")
    try:
        if key in ("steps", "width", "height"):
            return int(value)
        if key in ("cfg", "refiner_switch") or key in EXTRA_OVERRIDES:
            return float(value)
        if key == "model":
            from .params import check_model_ref

            check_model_ref(value, allow_pickle=False)
        if key == "refiner":
            return parse_refiner_value(value)
    except ValueError:
        raise BadParameter(f"variant override {key}={value!r} is not a number") from None
    return value


def parse_refiner_value(value: str) -> str:
    """`off`, `on` (the experiment's refiner) or a refiner model: a diffusers folder (made absolute) or hub id."""
    from pathlib import Path

    from .errors import ModelProblem
    from .params import check_model_ref

    word = value.strip()
    if word.lower() in ("off", "on"):
        return word.lower()
    try:
        kind = check_model_ref(word, allow_pickle=False)
    except ModelProblem as exc:
        raise ModelProblem(f"`refiner` {word!r}: {exc}") from None
    if kind not in ("folder", "hub"):
        raise ModelProblem(f"`refiner` must be off, on, or a diffusers folder or hub id, not {word!r}")
    return word if kind == "hub" else str(Path(word).expanduser().resolve())


def parse_variant(text: str) -> VariantSpec:
    """`LABEL=PROMPT[:k=v,k=v]`, e.g. `B=lighthouse-2:cfg=9,sampler=Euler a`."""
    label, sep, rest = text.partition("=")
    if not sep or not rest:
        raise BadParameter(f"--variant expects LABEL=PROMPT[:k=v,…], got {text!r}")
    prompt, overrides = rest, {}
    head, colon, tail = rest.rpartition(":")
    if colon and re.fullmatch(r"\s*\w+\s*=[^,]*(,\s*\w+\s*=[^,]*)*", tail):
        prompt = head
        for pair in tail.split(","):
            key, _, value = pair.partition("=")
            overrides[key.strip()] = parse_override_value(key.strip(), value.strip())
    return VariantSpec(label.strip(), prompt.strip(), overrides)


def params_with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> GenerationParams:
    """BASE parameters (a GenerationParams dict) with a variant's overrides applied and checked."""
    plain = {k: v for k, v in overrides.items()
             if k not in EXTRA_OVERRIDES and k not in REFINER_OVERRIDES and k != "model"}
    extra = json.loads(json.dumps(base.get("extra") or {}))
    _apply_refiner(extra, overrides)
    if "strength" in overrides:
        extra["strength"] = float(overrides["strength"])
    for key, units, flag in (("lora_scale", "loras", "--lora"), ("control_scale", "controlnets", "--controlnet")):
        if key in overrides:
            if not extra.get(units):
                raise BadParameter(f"`{key}` can vary only when the experiment has a {flag.strip('-')} ({flag})")
            for unit in extra[units]:
                unit["scale"] = float(overrides[key])
    return GenerationParams(**{**base, **plain, "extra": extra})


def _apply_refiner(extra: dict[str, Any], overrides: dict[str, Any]) -> None:
    """`refiner=off|on|MODEL` and `refiner_switch=F` on a copy of the experiment's extra."""
    from .params import model_fingerprint

    choice = overrides.get("refiner")
    if choice == "off":
        extra.pop("refiner", None)
    elif choice == "on":
        if not extra.get("refiner"):
            raise BadParameter("`refiner=on` uses the experiment's refiner, and it has none: "
                               "make it with --refiner MODEL, or give the variant refiner=MODEL")
    elif choice:
        switch = (extra.get("refiner") or {}).get("switch", 0.8)
        extra["refiner"] = {"model": choice, "switch": float(switch), "model_hash": model_fingerprint(choice)}
    if "refiner_switch" in overrides:
        if not extra.get("refiner"):
            raise BadParameter("`refiner_switch` needs a refiner: the experiment's --refiner MODEL or the "
                               "variant's refiner=MODEL" + (" (this variant has refiner=off)" if choice == "off"
                                                            else ""))
        extra["refiner"]["switch"] = float(overrides["refiner_switch"])


def check_refiner_base(extra: dict[str, Any], model: str | None) -> None:
    """Refuse a refiner on a base that is not SDXL, when MODEL is a local folder (a hub id is checked at run)."""
    from pathlib import Path

    from .errors import ModelProblem
    from .families import detect_family, family_label

    if not extra.get("refiner"):
        return
    if extra.get("init_image") or extra.get("controlnets"):
        raise BadParameter("`refiner` applies to SDXL text-to-image without ControlNet; this experiment has "
                           + ("an init image" if extra.get("init_image") else "a ControlNet"))
    if not model or not Path(model).expanduser().is_dir():
        return
    family = detect_family(model)["family"]
    if family != "sdxl":
        raise ModelProblem(f"`refiner` needs an SDXL base model, but model {model!r} is {family_label(family)}")


def check_overrides(params: GenerationParams, overrides: dict[str, Any], model: str | None) -> GenerationParams:
    """A variant's parameters, checked (a refiner against its base model too); writes nothing."""
    checked = params_with_overrides(params.to_dict(), overrides)
    check_refiner_base(checked.extra, overrides.get("model") or model)
    return checked


def check_axes(params: GenerationParams, x: dict[str, Any], y: dict[str, Any], model: str | None) -> None:
    """Every cell of an X/Y plot's parameter axes, checked as `check_overrides` does."""
    xs = x["values"] if x["name"] in PARAM_AXES else [None]
    ys = y["values"] if y["name"] in PARAM_AXES else [None]
    for xv, yv in itertools.product(xs, ys):
        check_overrides(params, cell_overrides({a["name"]: v for a, v in ((x, xv), (y, yv)) if v is not None}), model)


def cell_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """An X/Y cell's parameter overrides: in the refiner=off cells of a refiner_switch axis there
    is no refiner to switch, so the switch is dropped (those cells repeat)."""
    if overrides.get("refiner") == "off":
        overrides = {k: v for k, v in overrides.items() if k != "refiner_switch"}
    return overrides


def check_label(label: str) -> str:
    if not _LABEL_RE.match(label) or label.lower() == "tie":
        raise BadParameter(f"variant label {label!r} is not allowed: 1-64 characters, no spaces, ':', '=' or ','"
                           " and not 'tie'")
    return label


def check_new_experiment(library: Library, name: str, variants: list[VariantSpec], seeds: list[int],
                         params: GenerationParams, model: str | None = None) -> list[tuple[VariantSpec, int]]:
    """Everything create_experiment checks, reading only: run it before storing an experiment's
    input images, so a bad name or prompt leaves no file behind. Returns (variant, prompt id)s."""
    if not _NAME_RE.match(name or "") or name.strip().isdigit():
        raise BadParameter(f"experiment name {name!r} is not allowed: 1-100 characters, not all digits")
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
    if library.db.execute("SELECT 1 FROM experiments WHERE name = ?", [name]).fetchone():
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
    # 2. Write, all or nothing
    with library.write() as db:
        if db.execute("SELECT 1 FROM experiments WHERE name = ?", [name]).fetchone():
            raise ExperimentProblem(f"an experiment named {name!r} already exists; choose another name")
        experiments = db["experiments"]
        experiments.insert({
            "name": name,
            "seeds": json.dumps([int(s) for s in seeds]),
            "params": json.dumps({**params.to_dict(), **(extra or {})}, sort_keys=True),
            "model": model,
            "created_at": utc_now(),
        })
        experiment_id = int(experiments.last_pk)
        db["variants"].insert_all(
            {"experiment_id": experiment_id, "label": spec.label, "prompt_id": prompt_id,
             "params": json.dumps(spec.overrides, sort_keys=True)}
            for spec, prompt_id in resolved
        )
    return experiment_id


def get_experiment(library: Library, name: str) -> dict[str, Any]:
    """An experiment by name (or id) with its variants (each with its prompt)."""
    text = str(name).strip()
    # ASCII digits only ("³".isdigit() is true) and within SQLite's integer range.
    by_id = text.isascii() and text.isdigit() and len(text) <= 18
    column = "id" if by_id else "name"
    row = library.db.execute(f"SELECT id, name, seeds, params, model, created_at FROM experiments WHERE {column} = ?",
                             [int(text) if by_id else text]).fetchone()
    if row is None:
        raise NotFound(f"no experiment named {text!r}; see `promptkit ab list`")
    experiment = {"id": row[0], "name": row[1], "seeds": json.loads(row[2]), "params": json.loads(row[3] or "{}"),
                  "model": row[4], "created_at": row[5]}
    variants = []
    for label, prompt_id, overrides in library.db.execute(
        "SELECT label, prompt_id, params FROM variants WHERE experiment_id = ? ORDER BY rowid", [row[0]]
    ):
        variants.append({"label": label, "prompt_id": prompt_id, "overrides": json.loads(overrides or "{}"),
                         "prompt": library.get_prompt(prompt_id)})
    experiment["variants"] = variants
    return experiment


def list_experiments(library: Library) -> list[dict[str, Any]]:
    rows = library.db.execute(
        "SELECT e.id, e.name, e.seeds, e.created_at, "
        "(SELECT count(*) FROM variants v WHERE v.experiment_id = e.id), "
        "(SELECT count(*) FROM generations g WHERE g.experiment_id = e.id), "
        "(SELECT count(*) FROM votes w WHERE w.experiment_id = e.id) "
        "FROM experiments e ORDER BY e.id"
    ).fetchall()
    return [{"id": r[0], "name": r[1], "seeds": len(json.loads(r[2])), "created_at": r[3], "variants": r[4],
             "generations": r[5], "votes": r[6]} for r in rows]


def variant_params(experiment: dict[str, Any], variant: dict[str, Any]) -> GenerationParams:
    base = {k: v for k, v in experiment["params"].items() if k in GenerationParams.__dataclass_fields__}
    return params_with_overrides(base, variant["overrides"])


def cells(library: Library, experiment: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """(label, seed) -> the cell's generation (the first one made)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for gen_id, label, seed, path, sha in library.db.execute(
        "SELECT id, variant, seed, image_path, image_sha256 FROM generations WHERE experiment_id = ? ORDER BY id",
        [experiment["id"]],
    ):
        found.setdefault((label, seed), {"id": gen_id, "label": label, "seed": seed, "image_path": path,
                                         "image_sha256": sha})
    return found


def missing_cells(library: Library, experiment: dict[str, Any]) -> dict[str, list[int]]:
    done = cells(library, experiment)
    return {v["label"]: [s for s in experiment["seeds"] if (v["label"], s) not in done]
            for v in experiment["variants"]}


def variant_job_params(experiment: dict[str, Any], variant: dict[str, Any],
                       lora_dir: str | None = None) -> GenerationParams:
    """A variant's parameters with the `<lora:NAME:SCALE>` tags of its prompt resolved in LORA_DIR
    (else the folder recorded by `ab new`), as `generate` resolves them; checks only, writes nothing."""
    from .inputs import merge_loras, prompt_loras

    params = variant_params(experiment, variant)
    tagged = prompt_loras(variant["prompt"]["positive"], lora_dir or experiment["params"].get("lora_dir"))
    if tagged:
        params.extra["loras"] = merge_loras(params.extra.get("loras") or [], tagged)
    return params


def run_experiment(library: Library, engine, name: str, batch_size: int | None = 4,
                   progress: Progress | None = None, profile: bool = False,
                   lora_dir: str | None = None) -> JobOutcome:
    """Generate every missing (variant, seed) cell; an interrupted run resumes where it stopped.

    LoRA tags in a variant's prompt are resolved in LORA_DIR (else the folder `ab new` recorded).
    """
    experiment = get_experiment(library, name)
    todo = missing_cells(library, experiment)
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
            variant_engine = type(engine).get(variant["overrides"]["model"], engine.options)
        variant_engine.check_request(params.extra)
        plans.append((variant, params, variant_engine))
    # One writer for every variant: a variant's last batch is written while the next denoises.
    writer = start_writer(library, batch_size)
    try:
        _run_variants(library, experiment, todo, plans, batch_size, writer, outcome, progress, profile)
    finally:
        writer.finish()
    writer.collect(outcome)  # the rows, in id order, and the writer's own timings and warnings
    return outcome


def _run_variants(library: Library, experiment: dict[str, Any], todo: dict[str, list[int]], plans: list[tuple],
                  batch_size: int | None, writer, outcome: JobOutcome, progress: Progress | None,
                  profile: bool) -> None:
    from .inputs import store_loras

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
    with library.write() as db:
        db.execute("UPDATE experiments SET seeds = ? WHERE id = ?",
                   [json.dumps(experiment["seeds"] + new), experiment["id"]])
    return new


# -- votes -------------------------------------------------------------------------


def _label_for(experiment: dict[str, Any], label: str) -> str:
    labels = [v["label"] for v in experiment["variants"]]
    if label not in labels:
        raise ExperimentProblem(f"experiment {experiment['name']!r} has no variant {label!r}; "
                                f"variants: {', '.join(labels)}")
    return label


def record_vote(
    library: Library,
    name: str,
    seed: int,
    winner: str,
    left: str | None = None,
    right: str | None = None,
) -> dict[str, Any]:
    """Record a pairwise choice on SEED. WINNER is a label or 'tie'; LEFT/RIGHT say how they were shown.

    With exactly two variants LEFT/RIGHT default to the variants' order.
    """
    experiment = get_experiment(library, name)
    labels = [v["label"] for v in experiment["variants"]]
    if left is None and right is None:
        if len(labels) != 2:
            raise ExperimentProblem(f"experiment {name!r} has {len(labels)} variants: say which pair was shown "
                                    "(--left LABEL --right LABEL)")
        left, right = labels
    if left is None or right is None:
        raise ExperimentProblem("give both the left and the right variant of the pair shown")
    _label_for(experiment, left)
    _label_for(experiment, right)
    if left == right:
        raise ExperimentProblem("a vote compares two different variants")
    if winner != "tie":
        _label_for(experiment, winner)
        if winner not in (left, right):
            raise ExperimentProblem(f"the winner {winner!r} is neither of the pair shown ({left}, {right})")
    seed = int(seed)
    if seed not in experiment["seeds"]:
        raise ExperimentProblem(f"seed {seed} is not in experiment {name!r}")
    done = cells(library, experiment)
    for label in (left, right):
        if (label, seed) not in done:
            raise ExperimentProblem(f"seed {seed} was not generated for variant {label!r}; "
                                    f"run `promptkit ab run {name}` first")
    left_gen, right_gen = done[(left, seed)]["id"], done[(right, seed)]["id"]
    winner_gen = None if winner == "tie" else done[(winner, seed)]["id"]
    with library.write() as db:
        votes = db["votes"]
        votes.insert({"experiment_id": experiment["id"], "seed": seed, "left_generation_id": left_gen,
                      "right_generation_id": right_gen, "winner_generation_id": winner_gen,
                      "created_at": utc_now()})
        vote_id = int(votes.last_pk)
    return {"id": vote_id, "experiment": experiment["name"], "seed": seed, "left": left, "right": right,
            "winner": winner}


def undo_last_vote(library: Library, name: str) -> dict[str, Any]:
    """Delete the experiment's most recent vote and return it."""
    experiment = get_experiment(library, name)
    votes = experiment_votes(library, experiment)
    if not votes:
        raise ExperimentProblem(f"experiment {name!r} has no votes to undo")
    last = votes[-1]
    with library.write() as db:
        db.execute("DELETE FROM votes WHERE id = ?", [last["id"]])
    return last


def experiment_votes(library: Library, experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """Votes with labels: id, seed, left, right, winner ('tie' or a label)."""
    label_of = {row[0]: row[1] for row in library.db.execute(
        "SELECT id, variant FROM generations WHERE experiment_id = ?", [experiment["id"]])}
    out = []
    for vote_id, seed, left, right, winner, created in library.db.execute(
        "SELECT id, seed, left_generation_id, right_generation_id, winner_generation_id, created_at "
        "FROM votes WHERE experiment_id = ? ORDER BY id", [experiment["id"]]
    ):
        out.append({"id": vote_id, "seed": seed, "left": label_of.get(left), "right": label_of.get(right),
                    "winner": "tie" if winner is None else label_of.get(winner), "created_at": created})
    return out


def all_pairs(experiment: dict[str, Any]) -> list[tuple[str, str]]:
    return list(itertools.combinations([v["label"] for v in experiment["variants"]], 2))


def next_pair(library: Library, name: str, rng: random.Random | None = None,
              skip: Collection[tuple[int, frozenset[str]]] = ()) -> dict[str, Any] | None:
    """The next (seed, pair) to judge blind: fewest votes first, sides shuffled. None when all are voted.

    :param skip: (seed, {label, label}) pairs the judge passed over; offered last, after every other.
    """
    rng = rng or random.Random()
    experiment = get_experiment(library, name)
    done = cells(library, experiment)
    voted: dict[tuple[int, frozenset], int] = {}
    for vote in experiment_votes(library, experiment):
        key = (vote["seed"], frozenset((vote["left"], vote["right"])))
        voted[key] = voted.get(key, 0) + 1
    candidates = []
    for seed in experiment["seeds"]:
        for a, b in all_pairs(experiment):
            if (a, seed) in done and (b, seed) in done and (seed, frozenset((a, b))) not in voted:
                candidates.append((seed, a, b))
    total = sum(1 for seed in experiment["seeds"] for a, b in all_pairs(experiment)
                if (a, seed) in done and (b, seed) in done)
    if not candidates:
        return None
    skipped = set(skip)
    seed, a, b = min(candidates, key=lambda c: (c[0], frozenset(c[1:])) in skipped)
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    return {"experiment": experiment["name"], "seed": seed,
            "left": {"label": left, **done[(left, seed)]}, "right": {"label": right, **done[(right, seed)]},
            "voted": total - len(candidates), "total": total}


# -- X/Y grids ---------------------------------------------------------------------

PARAM_AXES = {"cfg": float, "steps": int, "sampler": str, "width": int, "height": int, "model": str,
              "strength": float, "lora_scale": float, "control_scale": float, "refiner": parse_refiner_value,
              "refiner_switch": float}
FIELD_AXES = ("subject", "action", "environment", "style", "quality")


def parse_axis(text: str) -> dict[str, Any]:
    """`cfg=3,7,11`, `sampler=Euler,DDIM`, `style=watercolor,sketch`, `seed=1-4`."""
    from .params import canonical_sampler, parse_seeds

    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not raw.strip():
        raise BadParameter(f"axis {text!r} should look like NAME=V1,V2,…")
    if name == "seed":
        values: list[Any] = parse_seeds(raw)
    elif name in PARAM_AXES:
        try:
            values = [PARAM_AXES[name](v.strip()) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise BadParameter(f"axis {name}: {raw!r} has a value that is not a number") from None
        if name == "sampler":
            values = [canonical_sampler(v) for v in values]
    elif name in FIELD_AXES:
        values = [v.strip() for v in raw.split(",") if v.strip()]
    else:
        raise BadParameter(f"unknown axis {name!r}; choose from seed, {', '.join(PARAM_AXES)}, "
                           f"{', '.join(FIELD_AXES)}")
    if len(set(map(str, values))) != len(values) or not values:
        raise BadParameter(f"axis {name} needs distinct values")
    return {"name": name, "values": values}


def _axis_label(name: str, value: Any) -> str:
    if name in ("model", "refiner"):
        value = str(value).rstrip("/").split("/")[-1]
    return re.sub(r"[\s:=,]+", "-", f"{name}{value}")[:31]


def create_xy_experiment(library: Library, name: str, prompt_ref: str, x: dict[str, Any], y: dict[str, Any],
                         seeds: list[int], params: GenerationParams, model: str | None = None,
                         templates_dir: str | None = None, extra: dict[str, Any] | None = None) -> int:
    """An X/Y plot over two axes, stored as an experiment: one variant per (x, y) cell."""
    from .templates import Fields, PromptBuilder

    if x["name"] == y["name"]:
        raise BadParameter("the X and Y axes must differ")
    seed_axis = "x" if x["name"] == "seed" else "y" if y["name"] == "seed" else None
    if seed_axis:
        seeds = (x if seed_axis == "x" else y)["values"]
    base = library.get_prompt(prompt_ref)
    builder = PromptBuilder(templates_dir)
    xs = [None] if seed_axis == "x" else x["values"]
    ys = [None] if seed_axis == "y" else y["values"]
    # Render every field-axis prompt first: a bad preset must fail before anything is written.
    plans = []
    for yv in ys:
        for xv in xs:
            overrides: dict[str, Any] = {}
            fields = dict(base["fields"] or {})
            changed = False
            for axis, value in ((x, xv), (y, yv)):
                if value is None:
                    continue
                if axis["name"] in PARAM_AXES:
                    overrides[axis["name"]] = value
                else:
                    changed = True
                    fields[axis["name"]] = (value.split("+") if axis["name"] in ("style", "quality") else value)
            overrides = cell_overrides(overrides)
            prompt = builder.render(Fields.from_dict(fields), base["template"] or "default") if changed else None
            label = "_".join(_axis_label(a["name"], v) for a, v in ((x, xv), (y, yv)) if v is not None)
            key = f"{'' if xv is None else xv}|{'' if yv is None else yv}"
            plans.append((label, key, overrides, prompt))
    with library.write():
        specs, labels = [], {}
        for label, key, overrides, prompt in plans:
            prompt_id = base["id"] if prompt is None else library.save_prompt(prompt, parent_id=base["id"],
                                                                              tags=["xy", name])
            specs.append(VariantSpec(label, str(prompt_id), overrides))
            labels[key] = label
        return create_experiment(library, name, specs, seeds, params, model,
                                 extra={**(extra or {}), "xy": {"x": x, "y": y, "labels": labels}})
