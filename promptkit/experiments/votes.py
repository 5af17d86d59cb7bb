"""Blind pairwise votes on an experiment: record and undo a vote, list them, and pick the next pair.

One vote per rater per pair: a second vote by the same rater on the same pair (experiment, seed
and the two generations, whichever side each was shown on) replaces the first, so it never
counts twice. The next pair comes from `promptkit.verdicts.choose_next_pair`, the one chooser
behind the review page, `ab vote` and the API.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Collection
from typing import Any

from ..library import Library
from ..library.votes import DEFAULT_RATER
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
    rater: str = DEFAULT_RATER,
) -> dict[str, Any]:
    """Record RATER's pairwise choice on SEED. WINNER is a label or 'tie'; LEFT/RIGHT say how they were shown.

    With exactly two variants LEFT/RIGHT default to the variants' order. RATER's earlier vote on
    the same pair, if any, is replaced (its id is in "replaced").
    """
    rater = check_rater(rater)
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
    vote_id, replaced = library.insert_vote(experiment["id"], seed, left_gen, right_gen, winner_gen, rater)
    return {"id": vote_id, "experiment": experiment["name"], "seed": seed, "left": left, "right": right,
            "winner": winner, "rater": rater, "replaced": replaced}


RATER_CHARS = 64


def check_rater(rater: str | None) -> str:
    """RATER stripped; refused unless it is 1-64 printable characters. None means DEFAULT_RATER."""
    if rater is None:
        return DEFAULT_RATER
    text = str(rater).strip()
    if not text or len(text) > RATER_CHARS or not text.isprintable():
        raise ExperimentProblem(f"`rater` must be 1-{RATER_CHARS} printable characters, not {rater!r}")
    return text


def undo_last_vote(library: Library, name: str, rater: str | None = None) -> dict[str, Any]:
    """Delete the experiment's most recent vote (RATER's, when given) and return it.

    A vote that replaced an earlier one is simply removed: the earlier one is not restored.
    """
    experiment = get_experiment(library, name)
    votes = experiment_votes(library, experiment)
    if rater is not None:
        rater = check_rater(rater)
        votes = [v for v in votes if v["rater"] == rater]
    if not votes:
        raise ExperimentProblem(f"experiment {name!r} has no votes to undo" + (f" by {rater!r}" if rater else ""))
    last = votes[-1]
    library.delete_vote(last["id"])
    return last


def experiment_votes(library: Library, experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """Votes with labels, oldest first: id, seed, left, right, winner ('tie' or a label), rater, created_at."""
    return [{"id": v["id"], "seed": v["seed"], "left": v["left"], "right": v["right"],
             "winner": "tie" if v["tie"] else v["winner"], "rater": v["rater"], "created_at": v["created_at"]}
            for v in library.experiment_vote_rows(experiment["id"])]


def counted_votes(votes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The votes that count: each rater's latest on each pair (seed and two variants), oldest first.

    New votes replace their rater's earlier one as they are cast; this also keeps duplicates made
    before that rule (libraries from before m008) from counting twice.
    """
    latest = {(v["rater"], v["seed"], frozenset((v["left"], v["right"]))): v for v in votes}
    return sorted(latest.values(), key=lambda v: v["id"])


def all_pairs(experiment: dict[str, Any]) -> list[tuple[str, str]]:
    return list(itertools.combinations([v["label"] for v in experiment["variants"]], 2))


Candidate = tuple[int, str, str]  # (seed, label, label)


def pick_candidate(candidates: list[Candidate], skipped: Collection[tuple[int, frozenset[str]]] = (),
                   last_seed: int | None = None) -> Candidate:
    """The pair to serve next without verdicts (`next_pair` applies the same first two rules, then the
    adaptive chooser): one not skipped before a skipped one; then one on another seed than LAST_SEED
    (a seed's pairs are not served back to back while another seed has one left), from the seed with the most
    pairs left (so the seeds take turns to the end); else (and with no LAST_SEED) the first in order."""
    skipped = set(skipped)
    left = Counter(seed for seed, *_ in candidates) if last_seed is not None else Counter()
    return min(candidates, key=lambda c: ((c[0], frozenset(c[1:])) in skipped, c[0] == last_seed, -left[c[0]]))


def next_pair(library: Library, name: str, rng: random.Random | None = None,
              skip: Collection[tuple[int, frozenset[str]]] = (), last_seed: int | None = None,
              rater: str = DEFAULT_RATER) -> dict[str, Any] | None:
    """The next (seed, pair) for RATER to judge blind, sides shuffled; None when RATER has voted on every pair.

    The pair is the one whose vote is expected to move the verdict most (`verdicts.choose_next_pair`:
    the top contenders whose order is least settled, on their least-voted seed), counting every
    rater's votes; once every verdict is in, the pairs left are still offered, with "settled" True.

    :param skip: (seed, {label, label}) pairs the judge passed over; offered last, after every other.
    :param last_seed: the seed of the pair served last; a pair on another seed comes first when there is one.
    :param rater: who is voting: the pairs they voted on already are not offered again.
    """
    rng = rng or random.Random()
    experiment = get_experiment(library, name)
    done = cells(library, experiment)
    votes = counted_votes(experiment_votes(library, experiment))
    available, candidates = _open_pairs(experiment, done, votes, check_rater(rater))
    if not candidates:
        return None
    if experiment["params"].get("matrix"):  # a prompt matrix: pairs that differ in the least settled term
        from ..effects import matrix_candidates

        candidates = matrix_candidates(experiment["params"]["matrix"], votes, candidates)
    seed, a, b, settled = _choose(experiment, votes, candidates, set(skip), last_seed)
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    return {"experiment": experiment["name"], "seed": seed,
            "left": {"label": left, **done[(left, seed)]}, "right": {"label": right, **done[(right, seed)]},
            "voted": len(available) - len(candidates), "total": len(available), "settled": settled}


def _open_pairs(experiment: dict[str, Any], done: dict, votes: list[dict[str, Any]],
                rater: str) -> tuple[list[Candidate], list[Candidate]]:
    """Every (seed, a, b) with both images made, and those of them RATER has not voted on."""
    mine = {(v["seed"], frozenset((v["left"], v["right"]))) for v in votes if v["rater"] == rater}
    available = [(seed, a, b) for seed in experiment["seeds"] for a, b in all_pairs(experiment)
                 if (a, seed) in done and (b, seed) in done]
    return available, [c for c in available if (c[0], frozenset(c[1:])) not in mine]


def pair_progress(library: Library, name: str, rater: str = DEFAULT_RATER) -> tuple[int, int]:
    """(pairs RATER has voted on, pairs that can be voted on), without choosing the next pair."""
    experiment = get_experiment(library, name)
    votes = counted_votes(experiment_votes(library, experiment))
    available, candidates = _open_pairs(experiment, cells(library, experiment), votes, check_rater(rater))
    return len(available) - len(candidates), len(available)


def _choose(experiment: dict[str, Any], votes: list[dict[str, Any]], candidates: list[Candidate],
            skipped: set[tuple[int, frozenset[str]]], last_seed: int | None) -> tuple[int, str, str, bool]:
    """(seed, a, b, settled) from CANDIDATES: first those not skipped, then those off LAST_SEED when
    there are any (a seed's pairs are not served back to back), then the adaptive chooser's pick."""
    from ..verdicts import choose_next_pair

    pool = [c for c in candidates if (c[0], frozenset(c[1:])) not in skipped] or candidates
    pool = [c for c in pool if c[0] != last_seed] or pool
    labels = [v["label"] for v in experiment["variants"]]
    order = {label: i for i, label in enumerate(labels)}
    counts: dict[tuple[str, str], list[int]] = {}
    seed_votes: Counter = Counter()
    for v in votes:
        if v["left"] not in order or v["right"] not in order:
            continue  # a side whose image is no longer the experiment's
        a, b = sorted((v["left"], v["right"]), key=order.__getitem__)
        seed_votes[(a, b, v["seed"])] += 1
        if v["winner"] in (a, b):
            counts.setdefault((a, b), [0, 0])[v["winner"] == b] += 1
    options = [(a, b, seed) if order[a] < order[b] else (b, a, seed) for seed, a, b in pool]
    arguments = dict(counts={k: tuple(w) for k, w in counts.items()}, seed_votes=seed_votes, options=options)
    chosen = choose_next_pair(labels, **arguments)
    settled = chosen is None
    if settled:
        chosen = choose_next_pair(labels, include_settled=True, **arguments)
    return chosen["seed"], chosen["a"], chosen["b"], settled
