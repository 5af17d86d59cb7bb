"""An image from ComfyUI as an experiment's cell: the checks before it is stored, and the claim inside the
rows' transaction.

A cell is (variant, seed). ComfyUI's image fills it only when it is of the variant's prompt (the text
*A/B Variant* gave), one image for the seed, with the settings the variant overrides (steps, CFG, sampler,
size) as the variant has them: otherwise the pair would compare something else than the experiment says.
A seed the experiment does not list yet is added to its seeds, so the other variants' cells on it show as
missing and the review page pairs them once they are filled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BadParameter, PromptkitError

if TYPE_CHECKING:
    from ..library import Library
    from .saving import ComfySettings


def _override_mismatch(overrides: dict[str, Any], settings: ComfySettings, size: tuple[int, int]) -> str | None:
    """What differs from what the variant sets, in words, or None."""
    from .saving import a1111_sampler

    given = {"steps": int(settings.steps), "cfg": float(settings.cfg),
             "sampler": a1111_sampler(settings.sampler_name, settings.scheduler), "width": size[0], "height": size[1]}
    for key, value in given.items():
        wanted = overrides.get(key)
        if wanted is not None and (float(wanted) != value if key == "cfg" else wanted != value):
            return f"{key} {value!r} but the variant sets {wanted!r}"
    return None


def check_cell(library: Library, experiment: str, variant: str, settings: ComfySettings,
               pictures: list[Any]) -> dict[str, Any]:
    """The cell these images fill, checked: {experiment, label, prompt (row), text (PromptText)}."""
    from ..records import PromptText
    from .prompting import variant_prompt

    if not (str(experiment).strip() and str(variant).strip()):
        raise BadParameter("an experiment's cell needs both the experiment and the variant (experiment, variant)")
    from ..params import MAX_SEED

    found = variant_prompt(library, experiment, variant)
    name, label, row = found["experiment"]["name"], found["label"], found["prompt"]
    if int(settings.seed) > MAX_SEED:
        raise BadParameter(f"experiment seeds go from 0 to {MAX_SEED}, as `promptkit ab run` uses them, but this one is "
                           f"{settings.seed} (seed)")
    if len(pictures) != 1:
        raise BadParameter(f"a cell of experiment {name!r} takes one image per seed, not a batch of "
                           f"{len(pictures)} (images)")
    if (settings.positive, settings.negative) != (row["positive"], row["negative"]):
        raise BadParameter(f"the prompt is not variant {label!r}'s of experiment {name!r}: connect A/B Variant's "
                           "positive and negative (positive)")
    mismatch = _override_mismatch(found["overrides"], settings, pictures[0].size)
    if mismatch:
        raise BadParameter(f"variant {label!r} of experiment {name!r}: {mismatch}")
    cell = {"experiment": found["experiment"], "label": label, "prompt": row, "text": PromptText.from_row(row)}
    _check_empty(library, cell, int(settings.seed))
    return cell


def _check_empty(library: Library, cell: dict[str, Any], seed: int) -> None:
    from ..experiments import cells

    taken = cells(library, cell["experiment"]).get((cell["label"], seed))
    if taken is not None:
        raise PromptkitError(f"variant {cell['label']!r} of experiment {cell['experiment']['name']!r} has its image "
                             f"for seed {seed} already (generation {taken['id']}); queue another seed (seed)")


def claim_cell(library: Library, cell: dict[str, Any], seed: int) -> None:
    """Inside the rows' transaction: the cell is still empty, and SEED is among the experiment's seeds."""
    from ..experiments import get_experiment

    _check_empty(library, cell, seed)
    current = get_experiment(library, str(cell["experiment"]["id"]))
    if seed not in current["seeds"]:
        library.set_experiment_seeds(current["id"], [*current["seeds"], seed])
