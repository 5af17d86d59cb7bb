"""Prompt matrices: which words helped. Create a matrix experiment from a base prompt and terms
(or from wildcards), and read each term's effect from the blind votes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .experiments import _check_model, _lora_dir_record, _prepare, _seed_list, experiment_summary

if TYPE_CHECKING:
    from ..inputs import InputRequest
    from ..library import Library
    from ..params import GenerationParams


def plan_matrix(library: Library, prompt: int | str, terms: list[str], *, pairs_only: bool = False,
                templates_dir: str | None = None, model: str | None = None,
                wildcards: str | None = None) -> dict[str, Any]:
    """Render every variant of a matrix and say which design it is; stores nothing.

    :param prompt: the saved base prompt (id or name).
    :param terms: "golden hour" (added at the end of the prompt) or "FIELD=TEXT" ("environment=golden hour",
        "style=cinematic": added to that field of the template).
    :param pairs_only: the base and each term alone, instead of the combinations.
    :param wildcards: the wildcard folder for `__name__` in a term; a term with `{a|b}` or `__name__`
        becomes one term per expansion.
    :returns: base, terms, design (kind, text, generators, resolution, aliases), variants, tokens (per term).
    """
    from ..experiments.matrix import plan_matrix as plan, term_tokens

    planned = plan(library, str(prompt), list(terms), pairs_only, templates_dir, wildcards)
    planned["tokens"] = term_tokens(planned, model)
    return planned


def new_matrix_experiment(library: Library, name: str, prompt: int | str, terms: list[str],
                          seeds: list[int] | str = "1-8", *, pairs_only: bool = False,
                          params: GenerationParams | None = None, inputs: InputRequest | None = None,
                          model: str | None = None, templates_dir: str | None = None,
                          wildcards: str | None = None, **settings: Any) -> dict[str, Any]:
    """Create matrix experiment NAME: the base prompt with the terms switched on and off, all on the same seeds.

    Up to 4 terms every combination (2^k variants); 5 to 15 terms a 16-variant fractional factorial
    that keeps every term's main effect estimable (the design and what it confounds are returned);
    `pairs_only` the base and each term alone. Nothing is stored if anything is wrong.

    :param name: the experiment's name. :param prompt: the saved base prompt (id or name).
    :param terms: see `plan_matrix`. :param seeds: a list, or "1,2,3", "1-8", "random:N".
    :param params: the shared `GenerationParams` (or its fields as keywords: steps=10, ...).
    :param inputs: an `InputRequest` shared by every variant. :param model: the default model for `run_experiment`.
    :param wildcards: the wildcard folder (see `plan_matrix`).
    :returns: the experiment (id, name, seeds, params, model, variants) with `design`, `terms`
        (term, letter, tokens, cut_off_in) and `letters`.
    """
    from ..experiments import get_experiment
    from ..experiments.matrix import create_matrix_experiment

    # 1. Check everything before anything is written
    seed_list = _check_new(library, name, seeds, model)
    planned = plan_matrix(library, prompt, terms, pairs_only=pairs_only, templates_dir=templates_dir, model=model,
                          wildcards=wildcards)
    # 2. Store the input images, then the variant prompts and the experiment in one transaction
    params, extra = _store_inputs(library, name, params, inputs, settings)
    create_matrix_experiment(library, name, planned, seed_list, params, model, extra=extra)
    return _matrix_summary(get_experiment(library, name), planned)


def _check_new(library: Library, name: str, seeds: list[int] | str, model: str | None) -> list[int]:
    from ..errors import BadParameter
    from ..experiments import check_experiment_name

    check_experiment_name(name)
    seed_list = _seed_list(seeds)
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise BadParameter("--seeds needs at least one seed, none repeated")
    _check_model(model)
    return seed_list


def _store_inputs(library: Library, name: str, params: GenerationParams | None, inputs: InputRequest | None,
                  settings: dict[str, Any]) -> tuple[GenerationParams, dict[str, Any] | None]:
    """The checked parameters with the input images stored (after the name is checked free)."""
    from ..experiments.variants import ExperimentProblem
    from ..params import GenerationParams

    if library.experiment_exists(name):
        raise ExperimentProblem(f"an experiment named {name!r} already exists; choose another name")
    params, prepared, request = _prepare(params if params is not None else GenerationParams(**settings), inputs)
    params.extra = prepared.store(library)
    return params, _lora_dir_record(request.lora_dir)


def new_wildcard_experiment(library: Library, name: str, prompt: int | str, text: str,
                            seeds: list[int] | str = "1-8", *, wildcards: str | None = None,
                            mode: str = "combinatorial", count: int | None = None, seed: int = 0,
                            params: GenerationParams | None = None, inputs: InputRequest | None = None,
                            model: str | None = None, templates_dir: str | None = None,
                            **settings: Any) -> dict[str, Any]:
    """Create experiment NAME with one variant per expansion of wildcard TEXT added to the base prompt.

    :param text: `{red|green|blue} light`, `{2$$a|b|c}`, `__colors__` (a line of colors.txt in WILDCARDS),
        optionally `FIELD=…` to add it to a template field.
    :param mode: "combinatorial" (every expansion, at most 64) or "random" (COUNT drawn with SEED).
    :returns: the experiment with `wildcards`: per variant label its text and the choices it made.
    """
    from ..experiments import get_experiment
    from ..experiments.matrix import create_wildcard_experiment, plan_wildcard_variants

    seed_list = _check_new(library, name, seeds, model)
    planned = plan_wildcard_variants(library, str(prompt), text, wildcards=wildcards, mode=mode, count=count,
                                     seed=seed, templates_dir=templates_dir)
    params, extra = _store_inputs(library, name, params, inputs, settings)
    create_wildcard_experiment(library, name, planned, seed_list, params, model, extra=extra)
    experiment = get_experiment(library, name)
    return {**experiment_summary(experiment), "wildcards": experiment["params"]["wildcards"]}


def expand_wildcards(text: str, *, wildcards: str | None = None, mode: str = "combinatorial",
                     count: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """TEXT's expansions, each with the choices it made ({"text", "choices": [{"from", "chose"}]}); writes nothing.

    :param text: wildcard text: {a|b}, {2$$a|b|c}, {1-2$$ and $$a|b}, __name__; a leading `FIELD=` (as
        `new_wildcard_experiment` takes it) is left out of the expansions.
    :param wildcards: the folder __name__ reads NAME.txt from (nothing outside it).
    :param mode: "combinatorial" (every expansion, at most 64) or "random" (COUNT drawn with SEED).
    """
    from ..experiments.matrix import split_field
    from ..wildcards import expand

    field, body = split_field(text)
    text = body if field is not None else text
    return [e.to_dict() for e in expand(text, wildcards=wildcards, mode=mode, count=count, seed=seed, flag="--text")]


def _matrix_summary(experiment: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    record = experiment["params"]["matrix"]
    data = experiment_summary(experiment)
    data["design"] = record["design"]
    data["letters"] = record["letters"]
    data["terms"] = planned["tokens"]
    return data


def matrix_effects(library: Library, name: str) -> dict[str, Any]:
    """Each term's effect in matrix experiment NAME, best first: what `ab stats` shows as `terms`.

    :param name: the matrix experiment's name or id.
    :returns: experiment, votes, design (its text says what it confounds), letters and terms: per term
        `term`, `effect` (win probability against its absence), `low`, `high` (95%), `votes`, `state`
        (helps, hurts, no_effect, undecided) and, when cells are rated, `stars`.
    """
    from ..experiments import get_experiment
    from ..experiments.variants import ExperimentProblem
    from ..stats import experiment_stats

    experiment = get_experiment(library, name)
    if not experiment["params"].get("matrix"):
        raise ExperimentProblem(f"experiment {experiment['name']!r} is not a matrix (made by `ab matrix`)")
    stats = experiment_stats(library, experiment["name"])
    record = experiment["params"]["matrix"]
    return {"experiment": experiment["name"], "votes": stats["votes"], "design": record["design"],
            "letters": record["letters"], "terms": stats["terms"]}
