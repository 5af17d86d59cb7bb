"""Blind pairwise votes on an experiment: record and undo a vote, list them, and pick the next pair."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Collection
from typing import Any

from ..library import Library
from .runs import cells, get_experiment
from .variants import ExperimentProblem


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
    vote_id = library.insert_vote(experiment["id"], seed, left_gen, right_gen, winner_gen)
    return {"id": vote_id, "experiment": experiment["name"], "seed": seed, "left": left, "right": right,
            "winner": winner}


def undo_last_vote(library: Library, name: str) -> dict[str, Any]:
    """Delete the experiment's most recent vote and return it."""
    experiment = get_experiment(library, name)
    votes = experiment_votes(library, experiment)
    if not votes:
        raise ExperimentProblem(f"experiment {name!r} has no votes to undo")
    last = votes[-1]
    library.delete_vote(last["id"])
    return last


def experiment_votes(library: Library, experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """Votes with labels: id, seed, left, right, winner ('tie' or a label)."""
    return [{"id": v["id"], "seed": v["seed"], "left": v["left"], "right": v["right"],
             "winner": "tie" if v["tie"] else v["winner"], "created_at": v["created_at"]}
            for v in library.experiment_vote_rows(experiment["id"])]


def all_pairs(experiment: dict[str, Any]) -> list[tuple[str, str]]:
    return list(itertools.combinations([v["label"] for v in experiment["variants"]], 2))


Candidate = tuple[int, str, str]  # (seed, label, label)


def pick_candidate(candidates: list[Candidate], skipped: Collection[tuple[int, frozenset[str]]] = (),
                   last_seed: int | None = None) -> Candidate:
    """The pair to serve next: one not skipped before a skipped one; then one on another seed than LAST_SEED
    (a seed's pairs are not served back to back while another seed has one left), from the seed with the most
    pairs left (so the seeds take turns to the end); else (and with no LAST_SEED) the first in order."""
    skipped = set(skipped)
    left = Counter(seed for seed, *_ in candidates) if last_seed is not None else Counter()
    return min(candidates, key=lambda c: ((c[0], frozenset(c[1:])) in skipped, c[0] == last_seed, -left[c[0]]))


def next_pair(library: Library, name: str, rng: random.Random | None = None,
              skip: Collection[tuple[int, frozenset[str]]] = (), last_seed: int | None = None) -> dict[str, Any] | None:
    """The next (seed, pair) to judge blind: fewest votes first, sides shuffled. None when all are voted.

    :param skip: (seed, {label, label}) pairs the judge passed over; offered last, after every other.
    :param last_seed: the seed of the pair served last; a pair on another seed comes first when there is one.
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
    if experiment["params"].get("matrix"):  # a prompt matrix: pairs that differ in the least settled term
        from ..effects import matrix_candidates

        candidates = matrix_candidates(experiment["params"]["matrix"], experiment_votes(library, experiment),
                                       candidates)
    seed, a, b = pick_candidate(candidates, skip, last_seed)
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    return {"experiment": experiment["name"], "seed": seed,
            "left": {"label": left, **done[(left, seed)]}, "right": {"label": right, **done[(right, seed)]},
            "voted": total - len(candidates), "total": total}


