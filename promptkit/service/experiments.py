"""A/B and X/Y experiments: create, run, add seeds, blind pairs and votes, verdicts, sheets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..experiments import VariantSpec
from ..errors import BadParameter
from .generation import Progress, job_spec, resolve_model, run_spec

if TYPE_CHECKING:
    from ..library import Library
    from ..inputs import InputRequest, PreparedInputs
    from ..params import GenerationParams

PairKey = tuple[int, frozenset]


def _lora_dir_record(lora_dir: str | None) -> dict[str, Any] | None:
    """`lora_dir` at creation, kept with the experiment for `ab run`'s <lora:…> tags."""
    return {"lora_dir": str(Path(lora_dir).expanduser().resolve())} if lora_dir else None


def _variant_specs(variants: Mapping[str, str] | list) -> list[VariantSpec]:
    """VariantSpecs from {label: prompt}, "LABEL=PROMPT[:k=v,…]" texts or VariantSpecs."""
    from ..experiments import parse_variant

    if isinstance(variants, Mapping):
        return [VariantSpec(label, str(prompt)) for label, prompt in variants.items()]
    return [v if isinstance(v, VariantSpec) else parse_variant(v) for v in variants]


def _seed_list(seeds: list[int] | str) -> list[int]:
    from ..params import parse_seeds

    return parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]


@dataclass
class ExperimentPlan:
    """A checked experiment, before anything is stored: variants, seeds, parameters and inputs."""

    variants: list[VariantSpec]
    seeds: list[int]
    params: GenerationParams  # its `extra` holds the checked inputs
    prepared: PreparedInputs  # the input images to store
    lora_dir: str | None = None
    model: str | None = None
    xy: tuple[dict[str, Any], dict[str, Any] | None] | None = None
    prompt: str | None = None  # the X/Y plot's prompt


def plan_experiment(variants: Mapping[str, str] | list, seeds: list[int] | str = "1-8", *, params: GenerationParams | None = None,
                    inputs: InputRequest | None = None, model: str | None = None) -> ExperimentPlan:
    """Check an A/B experiment's variants, seeds, parameters and inputs without opening any library.

    :param variants: {label: prompt id or name}, or "LABEL=PROMPT[:k=v,…]" texts (overrides such as cfg=9).
    :param seeds: a list, or "1,2,3", "1-8", "random:N".
    :param params: the shared `GenerationParams`; :param inputs: an `InputRequest` shared by every variant.
    :param model: the default model for `run_experiment`.
    """
    from ..experiments import check_overrides

    specs, seed_list = _variant_specs(variants), _seed_list(seeds)
    _check_model(model)
    params, prepared, request = _prepare(params, inputs)
    for spec in specs:
        check_overrides(params, spec.overrides, model)
    return ExperimentPlan(specs, seed_list, params, prepared, request.lora_dir, model)


def plan_xy_experiment(prompt: int | str, x: str, y: str | None = None, seeds: list[int] | str = "1", *,
                       params: GenerationParams | None = None,
                       inputs: InputRequest | None = None, model: str | None = None) -> ExperimentPlan:
    """Check an X/Y plot's axes, parameters and inputs without opening any library.

    :param x: the X axis, e.g. "cfg=3,7,11", "sampler=Euler,DDIM", "style=watercolor,sketch", "seed=1-4".
    :param y: the Y axis, as `x`, or None for a one-axis plot. :param seeds: the seeds when neither axis is seed.
    """
    from ..experiments import check_axes, parse_axis

    x_axis, y_axis = parse_axis(x), (parse_axis(y) if y else None)
    _check_model(model)
    params, prepared, request = _prepare(params, inputs)
    check_axes(params, x_axis, y_axis, model)
    variants = [VariantSpec("A", str(prompt)), VariantSpec("B", str(prompt))]
    return ExperimentPlan(variants, _seed_list(seeds), params, prepared, request.lora_dir, model,
                          xy=(x_axis, y_axis), prompt=str(prompt))


def _check_model(model: str | None) -> None:
    """Refuse a model that cannot be found, as `generate` does, before anything is stored; a pickle
    checkpoint is let through here, since `ab run --allow-pickle` decides about it."""
    if model is not None:
        from ..params import check_model_ref

        check_model_ref(model, allow_pickle=True)


def _prepare(params: GenerationParams | None, inputs: InputRequest | None
             ) -> tuple[GenerationParams, PreparedInputs, InputRequest]:
    from ..inputs import InputRequest, prepare_inputs
    from ..params import GenerationParams

    params, request = params or GenerationParams(), inputs or InputRequest()
    prepared = prepare_inputs(request)
    params.extra = prepared.extra
    return params, prepared, request


def create_planned(library: Library, name: str, plan: ExperimentPlan, templates_dir: str | None = None
                   ) -> dict[str, Any]:
    """Store a planned experiment as NAME: its input images, then its variants (or X/Y cells), all checked first.

    :returns: the experiment (id, name, seeds, params, model, variants).
    """
    from ..experiments import check_new_experiment, create_experiment, create_xy_experiment, get_experiment

    seeds = [0] if plan.xy else plan.seeds
    # A missing prompt or a taken name is refused before any input image is stored.
    check_new_experiment(library, name, plan.variants, seeds, plan.params, plan.model)
    plan.params.extra = plan.prepared.store(library)
    extra = _lora_dir_record(plan.lora_dir)
    if plan.xy:
        create_xy_experiment(library, name, plan.prompt, plan.xy[0], plan.xy[1], plan.seeds, plan.params,
                             plan.model, templates_dir, extra=extra)
    else:
        create_experiment(library, name, plan.variants, plan.seeds, plan.params, plan.model, extra=extra)
    return experiment_summary(get_experiment(library, name))


def new_experiment(library: Library, name: str, variants: Mapping[str, str] | list, seeds: list[int] | str = "1-8",
                   *, params: GenerationParams | None = None, inputs: InputRequest | None = None,
                   model: str | None = None, **settings: Any) -> dict[str, Any]:
    """Create experiment NAME: two or more variants on one seed list; nothing is stored if anything is wrong.

    :param name: the experiment's name (1-100 characters, not all digits).
    :param variants: {label: prompt id or name}, or "LABEL=PROMPT[:k=v,…]" texts (overrides such as cfg=9).
    :param seeds: a list, or "1,2,3", "1-8", "random:N".
    :param params: the shared `GenerationParams`; without it, its fields may be passed as keywords
        (steps=10, cfg=6.5, ...).
    :param inputs: an `InputRequest` shared by every variant.
    :param model: the default model for `run_experiment`.
    :returns: the experiment (id, name, seeds, params, model, variants).
    """
    if params is None and settings:
        from ..params import GenerationParams

        params = GenerationParams(**settings)
    return create_planned(library, name, plan_experiment(variants, seeds, params=params, inputs=inputs, model=model))


def new_xy_experiment(library: Library, name: str, prompt: int | str, x: str, y: str | None = None, seeds: list[int] | str = "1",
                      *, params: GenerationParams | None = None, inputs: InputRequest | None = None,
                      model: str | None = None, templates_dir: str | None = None) -> dict[str, Any]:
    """Create an X/Y plot over two of cfg, steps, sampler, seed or a prompt field, stored as an experiment.

    :param name: the experiment's name.
    :param prompt: the saved prompt to vary (id or name).
    :param x: the X axis, e.g. "cfg=3,7,11", "sampler=Euler,DDIM", "style=watercolor,sketch", "seed=1-4".
    :param y: the Y axis, as `x`, or None for a one-axis plot.
    :param seeds: the seeds when neither axis is seed.
    :param params: the shared `GenerationParams`; :param inputs: an `InputRequest`.
    :param model: the default model for `run_experiment`.
    :param templates_dir: the template folder that renders the prompt-field axes.
    """
    plan = plan_xy_experiment(prompt, x, y, seeds, params=params, inputs=inputs, model=model)
    return create_planned(library, name, plan, templates_dir)


def delete_experiment(library: Library, name: str, with_images: bool = False) -> dict[str, Any]:
    """Delete experiment NAME (or id) with its variants and votes, in one transaction; its prompts stay.

    :param with_images: also delete its cells' generation rows and their ratings (needed when it has
        any); the image files stay until `doctor --fix` quarantines those no row uses.
    :returns: id, name, generations_deleted, votes_deleted, ratings_deleted.
    """
    return library.delete_experiment(name, with_generations=with_images)


def rename_experiment(library: Library, name: str, new_name: str) -> dict[str, Any]:
    """Rename experiment NAME (or id) to NEW_NAME; returns id, old_name, name."""
    from ..experiments import rename_experiment as rename

    return rename(library, name, new_name)


def experiment_summary(experiment: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of an experiment: id, name, seeds, params, model and variants."""
    return {"id": experiment["id"], "name": experiment["name"], "seeds": experiment["seeds"],
            "params": experiment["params"], "model": experiment["model"],
            "variants": [{"label": v["label"], "prompt_id": v["prompt_id"], "overrides": v["overrides"],
                          "positive": v["prompt"]["positive"]} for v in experiment["variants"]]}


def run_job_spec(library: Library, name: str, *, model: str | None = None, lora_dir: str | None = None,
                 batch_size: int | str | None = "auto", engine_options: dict[str, Any] | None = None,
                 profile: bool = False) -> tuple[dict[str, Any] | None, int]:
    """The job that generates every missing cell of experiment NAME, and how many images it makes.

    :returns: (job spec, images to make); the spec is None when the experiment is complete.
    """
    from ..experiments import get_experiment, missing_cells, variant_job_params
    from ..params import parse_batch_size

    engine_options = dict(engine_options or {})
    batch_size = parse_batch_size(batch_size) if isinstance(batch_size, str) else batch_size
    lora_dir = str(Path(lora_dir).expanduser().resolve()) if lora_dir else None
    experiment = get_experiment(library, name)
    model = model or experiment["model"]
    if not model:
        raise BadParameter(f"experiment {name!r} has no model; pass --model")
    missing = missing_cells(library, experiment)
    todo = sum(len(s) for s in missing.values())
    for variant in experiment["variants"]:
        if missing[variant["label"]]:
            variant_job_params(experiment, variant, lora_dir)  # a LoRA tag that cannot resolve: one line, now
    if todo == 0:
        return None, 0
    spec = job_spec("ab_run", db=str(library.path.resolve()),
                    model=resolve_model(model, engine_options.get("allow_pickle", False)),
                    engine_options=engine_options, name=experiment["name"], batch_size=batch_size, profile=profile,
                    lora_dir=lora_dir)
    return spec, todo


def run_experiment(library: Library, name: str, *, model: str | None = None, lora_dir: str | None = None,
                   batch_size: int | str | None = "auto", engine_options: dict[str, Any] | None = None,
                   profile: bool = False, use_engine: bool = True,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Generate every missing (variant, seed) cell of experiment NAME; safe to run again after an interruption.

    :param model: the model (default: the experiment's).
    :param lora_dir: folder for `<lora:NAME:SCALE>` tags (default: the one given at creation).
    :returns: the job's outcome; "generations" lists the new images (empty when nothing was missing).
    """
    spec, _todo = run_job_spec(library, name, model=model, lora_dir=lora_dir, batch_size=batch_size,
                               engine_options=engine_options, profile=profile)
    if spec is None:
        return {"generations": [], "notes": [], "interrupted": False, "engine": None, "timings": {},
                "load_seconds": 0.0}
    return run_spec(spec, progress, use_engine)


def add_seeds(library: Library, name: str, seeds: list[int] | str) -> list[int]:
    """Add seeds to an experiment; the next run extends every variant.

    :param name: the experiment's name or id.
    :param seeds: a list, or "1,2,3", "1-8", "random:N".
    :returns: the seeds added.
    """
    from ..experiments import add_seeds as add

    return add(library, name, _seed_list(seeds))


def pair_key(pair: dict[str, Any]) -> PairKey:
    """(seed, {label, label}): a pair whichever side each label was shown on."""
    return (pair["seed"], frozenset((pair["left"]["label"], pair["right"]["label"])))


def next_pair(library: Library, name: str, skip: set[PairKey] | frozenset = frozenset(),
              last_seed: int | None = None, rater: str | None = None) -> dict[str, Any] | None:
    """The next pair for RATER to judge blind; None when RATER has voted on every pair.

    The pair is the one whose vote is expected to move the verdict most (`promptkit.verdicts.
    choose_next_pair`: among several variants, the top contenders whose order is least settled;
    across seeds, the least-voted first), shown left and right at random; "settled" is True once
    every verdict is in (the pairs left are still offered).

    :param skip: pair keys (see `pair_key`) passed over; they are offered last, after every other.
    :param last_seed: the seed served last: a pair on another seed comes first when one is left.
    :param rater: who is voting (default: the one local person, "me").
    """
    from ..experiments.votes import next_pair as pick

    return pick(library, name, skip=skip, last_seed=last_seed, rater=rater)


class VotingSession:
    """Blind pairs one after another, as the review page offers them: a skipped pair comes back at the end.

    `next()` gives a pair nobody skipped while there is one, then the skipped ones again in turn;
    every pair comes from the same adaptive chooser as the page and `ab vote` (see `next_pair`).
    """

    def __init__(self, library: Library, name: str, rater: str | None = None) -> None:
        from ..experiments.votes import check_rater

        self.library, self.name, self.rater = library, name, check_rater(rater)
        self.skipped: set[PairKey] = set()
        self.cast = 0
        self.last_seed: int | None = None

    def next(self) -> dict[str, Any] | None:
        """The next pair, or None when this rater has voted on every pair; not on the seed served last
        while another seed has a pair left."""
        pair = next_pair(self.library, self.name, skip=self.skipped, last_seed=self.last_seed, rater=self.rater)
        if pair is not None and pair_key(pair) in self.skipped:
            self.skipped.clear()  # every pair left was skipped: start the round of skipped pairs again
        if pair is not None:
            self.last_seed = pair["seed"]
        return pair

    def skip(self, pair: dict[str, Any]) -> None:
        """Pass over PAIR for now."""
        self.skipped.add(pair_key(pair))

    def vote(self, pair: dict[str, Any], choice: str) -> dict[str, Any]:
        """Record this rater's vote on PAIR: CHOICE is "left", "right" or "tie"."""
        winner = {"left": pair["left"]["label"], "right": pair["right"]["label"], "tie": "tie"}[choice]
        record = vote(self.library, self.name, pair["seed"], winner, pair["left"]["label"], pair["right"]["label"],
                      rater=self.rater)
        self.cast += 1
        return record


def vote(library: Library, name: str, seed: int, winner: str, left: str | None = None,
         right: str | None = None, rater: str | None = None) -> dict[str, Any]:
    """Record RATER's pairwise choice on SEED: WINNER is a variant label or "tie".

    A second vote by the same rater on the same pair (seed and two variants, whichever side each
    was on) replaces the first: it never counts twice. The answer's "replaced" lists the ids of the
    votes it replaced.

    :param left: the label shown on the left (needed with three or more variants); :param right: likewise.
    :param rater: who voted (default: the one local person, "me"); 1-64 printable characters.
    """
    from ..experiments import record_vote

    return record_vote(library, name, seed, winner, left, right, rater=rater)


def undo_vote(library: Library, name: str, rater: str | None = None) -> dict[str, Any]:
    """Remove the last vote cast in an experiment (RATER's last, when given) and return it.

    :param name: the experiment's name or id.
    """
    from ..experiments import undo_last_vote

    return undo_last_vote(library, name, rater)


def experiment_stats(library: Library, name: str) -> dict[str, Any]:
    """Wins, ties, win rates with intervals, p-values, star ratings, ranking and verdict per pair.

    :param name: the experiment's name or id.
    """
    from ..stats import experiment_stats as compute
    from .scores import experiment_judges

    result = compute(library, name)
    result["judges"] = experiment_judges(library, name)  # machine judges beside, never inside, the verdict
    return result


def verdict(library: Library, name: str) -> str:
    """The verdict in words, one line per pair of variants: "A vs B: …".

    :param name: the experiment's name or id.
    """
    return "\n".join(f"{pair['a']} vs {pair['b']}: {pair['verdict']}" for pair in experiment_stats(library, name)["pairs"])


def write_sheet(library: Library, name: str, output: str | Path, tile: int | None = None) -> dict[str, Any]:
    """Write a contact sheet (rows = seeds, columns = variants), or the X/Y grid, to OUTPUT (a PNG)."""
    from ..sheets import xy_sheet

    return xy_sheet(library, name, output, tile)


def list_experiments(library: Library) -> list[dict[str, Any]]:
    """Experiments with their variant, image and vote counts."""
    from ..experiments import list_experiments as listing

    return listing(library)


def show_experiment(library: Library, name: str) -> dict[str, Any]:
    """An experiment's summary plus "cells" (one entry per generated (label, seed)) and "created_at"."""
    from ..experiments import cells, get_experiment

    experiment = get_experiment(library, name)
    data = experiment_summary(experiment)
    data["created_at"] = experiment["created_at"]
    data["cells"] = [{"label": k[0], "seed": k[1], **v} for k, v in sorted(cells(library, experiment).items())]
    return data


SIDE_BY_SIDE_GAP = 16


def side_by_side(library: Library, pair: dict[str, Any], path: str | Path) -> None:
    """Write PAIR's two images into one PNG at PATH, left and right, under the keys that pick them (1 and 2)."""
    from PIL import Image

    root = library.path.parent
    with Image.open(root / pair["left"]["image_path"]) as a, Image.open(root / pair["right"]["image_path"]) as b:
        labelled_pair(a, b).save(path, format="PNG")


def labelled_pair(left, right, labels: tuple[str, str] = ("1", "2"), gap: int = SIDE_BY_SIDE_GAP):
    """LEFT and RIGHT (PIL images) side by side, GAP apart, under a band with each one's label centred above it."""
    from PIL import Image, ImageDraw, ImageFont

    band = max(20, min(48, max(left.height, right.height) // 8))
    sheet = Image.new("RGB", (left.width + right.width + gap, band + max(left.height, right.height)), (24, 26, 31))
    sheet.paste(left.convert("RGB"), (0, band))
    sheet.paste(right.convert("RGB"), (left.width + gap, band))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=int(band * 0.75))
    except TypeError:  # Pillow before 10.1 has one bitmap size
        font = ImageFont.load_default()
    for text, x0, width in ((labels[0], 0, left.width), (labels[1], left.width + gap, right.width)):
        box = draw.textbbox((0, 0), text, font=font)
        draw.text((x0 + (width - box[2] - box[0]) / 2, (band - box[3] - box[1]) / 2), text, fill=(240, 240, 240),
                  font=font)
    return sheet

