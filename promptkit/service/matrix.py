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
                templates_dir: str | None = None, model: str | None = None) -> dict[str, Any]:
    """Render every variant of a matrix and say which design it is; stores nothing.

    :param prompt: the saved base prompt (id or name).
    :param terms: "golden hour" (added at the end of the prompt) or "FIELD=TEXT" ("environment=golden hour",
        "style=cinematic": added to that field of the template).
    :param pairs_only: the base and each term alone, instead of the combinations.
    :returns: base, terms, design (kind, text, generators, resolution, aliases), variants, tokens (per term).
    """
    from ..experiments.matrix import plan_matrix as plan, term_tokens

    planned = plan(library, str(prompt), list(terms), pairs_only, templates_dir)
    planned["tokens"] = term_tokens(planned, model)
    return planned


def new_matrix_experiment(library: Library, name: str, prompt: int | str, terms: list[str],
                          seeds: list[int] | str = "1-8", *, pairs_only: bool = False,
                          params: GenerationParams | None = None, inputs: InputRequest | None = None,
                          model: str | None = None, templates_dir: str | None = None,
                          **settings: Any) -> dict[str, Any]:
    """Create matrix experiment NAME: the base prompt with the terms switched on and off, all on the same seeds.

    Up to 4 terms every combination (2^k variants); 5 to 15 terms a 16-variant fractional factorial
    that keeps every term's main effect estimable (the design and what it confounds are returned);
    `pairs_only` the base and each term alone. Nothing is stored if anything is wrong.

    :param name: the experiment's name. :param prompt: the saved base prompt (id or name).
    :param terms: see `plan_matrix`. :param seeds: a list, or "1,2,3", "1-8", "random:N".
    :param params: the shared `GenerationParams` (or its fields as keywords: steps=10, ...).
    :param inputs: an `InputRequest` shared by every variant. :param model: the default model for `run_experiment`.
    :returns: the experiment (id, name, seeds, params, model, variants) with `design`, `terms`
        (term, letter, tokens, cut_off_in) and `letters`.
    """
    from ..experiments import check_experiment_name, get_experiment
    from ..experiments.matrix import create_matrix_experiment
    from ..experiments.variants import ExperimentProblem
    from ..errors import BadParameter
    from ..params import GenerationParams

    if params is None:
        params = GenerationParams(**settings)
    # 1. Check everything before anything is written
    check_experiment_name(name)
    seed_list = _seed_list(seeds)
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise BadParameter("--seeds needs at least one seed, none repeated")
    _check_model(model)
    planned = plan_matrix(library, prompt, terms, pairs_only=pairs_only, templates_dir=templates_dir, model=model)
    if library.experiment_exists(name):
        raise ExperimentProblem(f"an experiment named {name!r} already exists; choose another name")
    params, prepared, request = _prepare(params, inputs)
    # 2. Store the input images, then the variant prompts and the experiment in one transaction
    params.extra = prepared.store(library)
    create_matrix_experiment(library, name, planned, seed_list, params, model, extra=_lora_dir_record(request.lora_dir))
    return _matrix_summary(get_experiment(library, name), planned)


def _matrix_summary(experiment: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    record = experiment["params"]["matrix"]
    letters = {text: letter for letter, text in record["letters"].items()}
    data = experiment_summary(experiment)
    data["design"] = record["design"]
    data["letters"] = record["letters"]
    data["terms"] = [{**t, "letter": letters[t["term"]]} for t in planned["tokens"]]
    return data


def matrix_effects(library: Library, name: str) -> dict[str, Any]:
    """Each term's effect in matrix experiment NAME, best first: what `ab stats` shows as `terms`.

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
