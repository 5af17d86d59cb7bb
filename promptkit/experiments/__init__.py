"""A/B experiments: variants on one seed list, paired generation, blind pairwise votes.

- `variants.py`: a variant (prompt + overrides), parsing, the override and refiner rules, labels;
- `grids.py`: X/Y plots (axes, their labels, an X/Y plot stored as an experiment);
- `runs.py`: create, find and list experiments, their cells, run the missing ones, adopt, add seeds;
- `votes.py`: record and undo votes, list them, the next blind pair.

The rows are read and written through `promptkit.library`; no SQL lives here.
"""

from __future__ import annotations

from .grids import FIELD_AXES, PARAM_AXES, check_axes, create_xy_experiment, parse_axis
from .runs import (
    add_seeds,
    adopt_generations,
    cells,
    check_experiment_name,
    check_new_experiment,
    create_experiment,
    get_experiment,
    list_experiments,
    missing_cells,
    rename_experiment,
    run_experiment,
    variant_job_params,
)
from .variants import (
    EXTRA_OVERRIDES,
    OVERRIDABLE,
    REFINER_OVERRIDES,
    ExperimentProblem,
    VariantSpec,
    cell_overrides,
    check_label,
    check_overrides,
    check_refiner_base,
    params_with_overrides,
    parse_override_value,
    parse_refiner_value,
    parse_variant,
    variant_params,
)
from .votes import all_pairs, experiment_votes, next_pair, record_vote, undo_last_vote

__all__ = [
    "EXTRA_OVERRIDES", "FIELD_AXES", "OVERRIDABLE", "PARAM_AXES", "REFINER_OVERRIDES", "ExperimentProblem",
    "VariantSpec", "add_seeds", "adopt_generations", "all_pairs", "cell_overrides", "cells", "check_axes",
    "check_experiment_name", "check_label", "check_new_experiment", "check_overrides", "check_refiner_base",
    "create_experiment",
    "create_xy_experiment", "experiment_votes", "get_experiment", "list_experiments", "missing_cells", "next_pair",
    "params_with_overrides", "parse_axis", "parse_override_value", "parse_refiner_value", "parse_variant",
    "record_vote", "rename_experiment", "run_experiment", "undo_last_vote", "variant_job_params", "variant_params",
]
