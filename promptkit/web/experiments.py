"""A/B experiments on the review page: the list, results, blind voting, and their JSON API.

Blindness: the review page and `next-pair` never name a variant or a generation id. Each image
is served through an opaque token (an HMAC, under a secret made when the app starts, of the
experiment, seed and generation id), and its pixels are re-encoded without the PNG text
chunks, which hold the prompt. A pair token (an HMAC of the seed and both generation ids,
in the order shown) lets the page vote "left", "right" or "tie" and the server record which
variant was on which side.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import secrets
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..errors import BadParameter, NotFound
from ..experiments import cells, experiment_votes, get_experiment, list_experiments
from ..library import Library
from ..service import experiments as service
from .api import PROBLEMS, Problem
from .connections import open_library
from .templating import image_url, render

TOKEN_CHARS = 32  # 128 bits of an HMAC-SHA256: unguessable, short enough for a URL
MAX_SEED = 2**63 - 1
MAX_SKIPPED = 64
SHEET_CACHE_SIZE = 8

ExperimentName = Annotated[str, Path(min_length=1, max_length=200, description="An experiment's name (or id).")]
Token = Annotated[str, Path(min_length=1, max_length=64, description="An opaque image token from next-pair.")]
NOT_FOUND = {404: {"model": Problem, "description": "No such experiment, or nothing to vote on."}}

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["experiments"], responses={**PROBLEMS, **NOT_FOUND})


# -- blind tokens ----------------------------------------------------------------


def new_secret() -> bytes:
    """The key of an app's tokens, made when the app is: tokens from an earlier run stop working."""
    return secrets.token_bytes(32)


def _secret(request: Request) -> bytes:
    return request.app.state.blind_secret


def _token(request: Request, *parts: Any) -> str:
    message = ":".join(str(p) for p in parts).encode()
    return hmac.new(_secret(request), message, hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def image_token(request: Request, experiment: dict[str, Any], generation: dict[str, Any]) -> str:
    return _token(request, "image", experiment["id"], generation["seed"], generation["id"])


def pair_token(request: Request, experiment: dict[str, Any], seed: int, left: dict[str, Any],
               right: dict[str, Any]) -> str:
    return _token(request, "pair", experiment["id"], seed, left["id"], right["id"])


def _ordered_pairs(done: dict[tuple[str, int], dict[str, Any]], labels: list[str], seed: int):
    for left in labels:
        for right in labels:
            if left != right and (left, seed) in done and (right, seed) in done:
                yield left, right


def _pair_for_token(request: Request, experiment: dict[str, Any], done: dict, seed: int,
                    token: str) -> tuple[str, str] | None:
    labels = [v["label"] for v in experiment["variants"]]
    for left, right in _ordered_pairs(done, labels, seed):
        if hmac.compare_digest(pair_token(request, experiment, seed, done[(left, seed)], done[(right, seed)]), token):
            return left, right
    return None


def _skipped_pairs(request: Request, experiment: dict[str, Any], done: dict, tokens: list[str]):
    """(seed, {label, label}) for each pair token the page skipped."""
    wanted = set(tokens)
    labels = [v["label"] for v in experiment["variants"]]
    found = set()
    for seed in experiment["seeds"]:
        for left, right in _ordered_pairs(done, labels, seed):
            if pair_token(request, experiment, seed, done[(left, seed)], done[(right, seed)]) in wanted:
                found.add((seed, frozenset((left, right))))
    return found


# -- shapes ----------------------------------------------------------------------


class ExperimentSummary(BaseModel):
    id: int
    name: str
    variants: int
    seeds: int
    generations: int
    votes: int
    url: str = Field(description="The results page.")
    review_url: str = Field(description="The blind voting page.")


class ExperimentList(BaseModel):
    experiments: list[ExperimentSummary]


class Variant(BaseModel):
    label: str
    prompt_id: int
    prompt_name: str | None
    positive: str
    negative: str
    overrides: dict[str, Any]


class Cell(BaseModel):
    label: str
    seed: int
    generation_id: int
    image_url: str
    thumbnail_url: str


class Vote(BaseModel):
    id: int
    seed: int
    left: str | None = Field(description="The variant shown on the left.")
    right: str | None = Field(description="The variant shown on the right.")
    winner: str | None = Field(description="The winning variant's label, or 'tie'.")
    rater: str | None = Field(None, description="Who voted (one local person, 'me', by default).")
    created_at: str | None = None
    replaced: list[int] = Field([], description="Ids of this rater's earlier votes on the same pair, now replaced.")


class ExperimentDetail(BaseModel):
    id: int
    name: str
    seeds: list[int]
    params: dict[str, Any]
    model: str | None
    created_at: str | None
    variants: list[Variant]
    cells: list[Cell]
    votes: list[Vote]
    voted: int = Field(description="Pairs judged at least once.")
    total: int = Field(description="Pairs that can be judged (both images generated).")


class BlindImage(BaseModel):
    image_url: str = Field(description="The image by an opaque token: no variant, no generation id.")


class NextPair(BaseModel):
    experiment: str
    done: bool = Field(description="True when every pair has a vote.")
    seed: int | None = None
    pair: str | None = Field(None, description="Opaque token of this pair in the order shown; send it with the vote.")
    left: BlindImage | None = None
    right: BlindImage | None = None
    voted: int
    total: int


class VoteRequest(BaseModel):
    """`{"seed": S, "winner": "LABEL" | "tie", "left": "LABEL", "right": "LABEL"}`, or, from the blind
    page, `{"seed": S, "pair": TOKEN, "winner": "left" | "right" | "tie"}`."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(ge=0, le=MAX_SEED, strict=True)
    winner: str = Field(min_length=1, max_length=64, description="A label or 'tie'; with `pair`: left, right or tie.")
    left: str | None = Field(None, min_length=1, max_length=64, description="The label shown on the left.")
    right: str | None = Field(None, min_length=1, max_length=64, description="The label shown on the right.")
    pair: str | None = Field(None, min_length=1, max_length=64, description="The pair token from next-pair.")
    rater: str | None = Field(None, min_length=1, max_length=64,
                              description="Who voted (default 'me'); their second vote on a pair replaces the first.")

    @model_validator(mode="after")
    def _one_way_to_say_the_sides(self) -> VoteRequest:
        if self.pair is not None:
            if self.left is not None or self.right is not None:
                raise ValueError("give either `pair` or `left`/`right`, not both")
            if self.winner not in ("left", "right", "tie"):
                raise ValueError(f"with `pair`, `winner` is 'left', 'right' or 'tie', not {self.winner!r}")
        return self


class UndoRequest(BaseModel):
    """`{"rater": NAME}`: undo NAME's last vote (the page sends it); without it, the last vote of anyone."""

    model_config = ConfigDict(extra="forbid")

    rater: str | None = Field(None, min_length=1, max_length=64)


class Ratings(BaseModel):
    pairs: int
    mean_difference: float | None
    p_value: float | None


class PairStats(BaseModel):
    a: str
    b: str
    wins_a: int
    wins_b: int
    ties: int
    win_rate_b: float | None = Field(description="B's share of decisive votes (ties left out).")
    ci_low: float = Field(description="Wilson 95% interval of win_rate_b.")
    ci_high: float
    p_value: float = Field(description="Exact two-sided sign test.")
    verdict: str
    ratings: Ratings
    state: str = Field(description="Anytime-valid: a_better, b_better, equivalent or undecided.")
    votes_to_go: int | None = Field(None, description="With state undecided: decisive votes still needed, estimated.")
    e_value: float = Field(description="Beta-binomial mixture e-value against equally good.")
    confidence_sequence: list[float] = Field(description="B's win rate, valid whenever read, at `alpha`.")
    alpha: float
    margin: float = Field(description="equivalent: the whole confidence sequence within 50% ± margin.")
    verdict_text: str
    method: str


class RankingRow(BaseModel):
    label: str
    score: float
    ci_low: float
    ci_high: float


class ExperimentStats(BaseModel):
    experiment: str
    variants: list[str]
    votes: int
    pairs: list[PairStats]
    ranking: list[RankingRow] | None = Field(None, description="Bradley–Terry, with 3 or more variants.")
    ranking_text: str | None = Field(None, description="What the ranking is, or 'no votes yet'.")
    position_bias: dict[str, Any] | None = Field(None, description="Share of decisive votes for the left image.")
    agreement: dict[str, Any] | None = Field(None, description="Cohen's (2 raters) or Fleiss' (3+) kappa.")
    terms: list[dict[str, Any]] | None = Field(None, description="A prompt matrix's per-term effects (promptkit.effects).")
    judges: list[dict[str, Any]] | None = Field(None, description="Automatic judges beside the votes (promptkit score).")


# -- helpers ---------------------------------------------------------------------


def _progress(library: Library, experiment: dict[str, Any], rater: str | None = None) -> tuple[int, int]:
    """(pairs the rater voted on, pairs with both images)."""
    from ..experiments.votes import pair_progress

    return pair_progress(library, experiment["name"], rater)


def _cell_out(generation: dict[str, Any]) -> Cell:
    return Cell(label=generation["label"], seed=generation["seed"], generation_id=generation["id"],
                image_url=image_url(generation), thumbnail_url=image_url(generation, thumbnail=True))


def _blind_image_url(request: Request, experiment: dict[str, Any], generation: dict[str, Any]) -> str:
    return f"/experiments/{experiment['id']}/blind/{image_token(request, experiment, generation)}"


def _next_pair_out(request: Request, library: Library, name: str, skip: list[str],
                   rater: str | None = None) -> NextPair:
    experiment = get_experiment(library, name)
    skipped = _skipped_pairs(request, experiment, cells(library, experiment), skip) if skip else set()
    pending = service.next_pair(library, experiment["name"], skip=skipped, rater=rater)
    if pending is None:
        voted, total = _progress(library, experiment, rater)
        return NextPair(experiment=experiment["name"], done=True, voted=voted, total=total)
    left, right = pending["left"], pending["right"]
    return NextPair(experiment=experiment["name"], done=False, seed=pending["seed"],
                    pair=pair_token(request, experiment, pending["seed"], left, right),
                    left=BlindImage(image_url=_blind_image_url(request, experiment, left)),
                    right=BlindImage(image_url=_blind_image_url(request, experiment, right)),
                    voted=pending["voted"], total=pending["total"])


# -- API -------------------------------------------------------------------------


@api_router.get("/experiments", response_model=ExperimentList)
def api_list_experiments(request: Request) -> ExperimentList:
    """Every experiment with its variant, seed, image and vote counts."""
    with open_library(request) as library:
        rows = list_experiments(library)
    return ExperimentList(experiments=[
        ExperimentSummary(**row, url=f"/experiments/{row['id']}", review_url=f"/experiments/{row['id']}/review")
        for row in rows
    ])


@api_router.get("/experiments/{name}", response_model=ExperimentDetail)
def api_experiment(request: Request, name: ExperimentName) -> ExperimentDetail:
    """An experiment: variants with their prompts, generated cells (with image URLs) and votes."""
    with open_library(request) as library:
        experiment = get_experiment(library, name)
        done = cells(library, experiment)
        votes = experiment_votes(library, experiment)
        voted, total = _progress(library, experiment)
    variants = [Variant(label=v["label"], prompt_id=v["prompt_id"], prompt_name=v["prompt"].get("name"),
                        positive=v["prompt"]["positive"], negative=v["prompt"]["negative"],
                        overrides=v["overrides"] if isinstance(v["overrides"], dict) else {})
                for v in experiment["variants"]]
    return ExperimentDetail(
        **{k: experiment[k] for k in ("id", "name", "seeds", "model", "created_at")},
        params=experiment["params"] if isinstance(experiment["params"], dict) else {},
        variants=variants, cells=[_cell_out(g) for _, g in sorted(done.items(), key=lambda kv: (kv[0][1], kv[0][0]))],
        votes=[Vote(**v) for v in votes], voted=voted, total=total,
    )


@api_router.get("/experiments/{name}/next-pair", response_model=NextPair)
def api_next_pair(
    request: Request,
    name: ExperimentName,
    skip: Annotated[list[str], Query(max_length=MAX_SKIPPED, description="Pair tokens passed over; offered last.")] = [],  # noqa: B006
    rater: Annotated[str | None, Query(min_length=1, max_length=64, description="Who is voting (default 'me').")] = None,
) -> NextPair:
    """The next pair for the rater to judge blind: the one whose vote should move the verdict most (the same
    chooser as `ab vote`), sides shuffled; opaque image URLs, no labels. done: the rater voted on every pair."""
    with open_library(request) as library:
        return _next_pair_out(request, library, name, [t[:64] for t in skip], rater)


@api_router.post("/experiments/{name}/votes", response_model=Vote, status_code=201)
def api_vote(request: Request, name: ExperimentName, body: VoteRequest) -> Vote:
    """Record a vote on one seed; the answer names the variants (the reveal). A rater's second vote on the same
    pair replaces the first ("replaced" lists what it replaced)."""
    with open_library(request) as library:
        experiment = get_experiment(library, name)
        winner, left, right = body.winner, body.left, body.right
        if body.pair is not None:
            sides = _pair_for_token(request, experiment, cells(library, experiment), body.seed, body.pair)
            if sides is None:
                raise BadParameter(f"pair token {body.pair!r} is not a pair of seed {body.seed} in this experiment "
                                   "(or the page was served before a restart); load the next pair again")
            left, right = sides
            winner = {"left": left, "right": right, "tie": "tie"}[body.winner]
        vote = service.vote(library, experiment["name"], body.seed, winner, left, right, rater=body.rater)
        created = library.vote_created_at(vote["id"])
    return Vote(id=vote["id"], seed=vote["seed"], left=vote["left"], right=vote["right"], winner=vote["winner"],
                rater=vote["rater"], created_at=created, replaced=vote["replaced"])


@api_router.post("/experiments/{name}/votes/undo", response_model=Vote)
def api_undo_vote(
    request: Request,
    name: ExperimentName,
    rater: Annotated[str | None, Query(min_length=1, max_length=64, description="Undo this rater's last vote.")] = None,
    body: UndoRequest | None = None,
) -> Vote:
    """Delete the experiment's most recent vote (the rater's, with ?rater= or `{"rater": NAME}`) and return it."""
    if body is not None and body.rater is not None:
        rater = body.rater
    with open_library(request) as library:
        return Vote(**service.undo_vote(library, get_experiment(library, name)["name"], rater))


@api_router.get("/experiments/{name}/stats", response_model=ExperimentStats, response_model_exclude_unset=True)
def api_stats(request: Request, name: ExperimentName) -> dict[str, Any]:
    """What `promptkit ab stats --json` prints: per pair wins, ties, win rate, Wilson interval, p, verdict."""
    with open_library(request) as library:
        return service.experiment_stats(library, get_experiment(library, name)["name"])


# -- images ----------------------------------------------------------------------


@router.get("/experiments/{name}/blind/{token}")
def blind_image(request: Request, name: ExperimentName, token: Token) -> Response:
    """An experiment's image by its opaque token, as a PNG without any metadata."""
    with open_library(request) as library:
        experiment = get_experiment(library, name)
        for generation in cells(library, experiment).values():
            if hmac.compare_digest(image_token(request, experiment, generation), token):
                file = library.generation_image(generation["id"])
                break
        else:
            raise NotFound("no such image in this experiment (tokens change when the page restarts)")
    return Response(_pixels_only(str(file), file.stat().st_mtime_ns), media_type="image/png",
                    headers={"cache-control": "private, max-age=3600"})


@functools.lru_cache(maxsize=256)
def _pixels_only(file: str, _mtime_ns: int) -> bytes:
    """The image re-encoded from its pixels: the PNG text chunks (prompt, parameters) are left behind."""
    from PIL import Image

    try:
        with Image.open(file) as picture:
            buffer = io.BytesIO()
            picture.convert("RGB").save(buffer, format="PNG")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise NotFound(f"{FilePath(file).name} is not a readable image: {exc}") from None
    return buffer.getvalue()


_sheets: OrderedDict[tuple, bytes] = OrderedDict()
_sheets_lock = threading.Lock()


@router.get("/experiments/{name}/sheet.png")
def contact_sheet_image(request: Request, name: ExperimentName) -> Response:
    """The contact sheet (rows = seeds, columns = variants, votes marked), drawn on request and kept
    in memory until a vote or an image changes it."""
    from ..sheets import xy_sheet

    with open_library(request) as library:
        experiment = get_experiment(library, name)
        state = library.experiment_version(experiment["id"])
        key = (str(request.app.state.library_path), experiment["id"], repr(experiment["seeds"]), *state)
        with _sheets_lock:
            body = _sheets.get(key)
        if body is None:
            with tempfile.TemporaryDirectory() as folder:
                output = FilePath(folder) / "sheet.png"
                xy_sheet(library, experiment["name"], output)
                body = output.read_bytes()
            with _sheets_lock:
                _sheets[key] = body
                while len(_sheets) > SHEET_CACHE_SIZE:
                    _sheets.popitem(last=False)
    return Response(body, media_type="image/png", headers={"cache-control": "no-cache"})


# -- pages -----------------------------------------------------------------------


@router.get("/experiments", response_class=HTMLResponse)
def experiments_page(request: Request) -> HTMLResponse:
    with open_library(request) as library:
        rows = list_experiments(library)
        for row in rows:
            experiment = get_experiment(library, str(row["id"]))
            row["voted"], row["total"] = _progress(library, experiment)
            row["labels"] = [v["label"] for v in experiment["variants"]]
    return render(request, "experiments.html", title="Experiments", experiments=rows, current_nav="/experiments")


@router.get("/experiments/{name}", response_class=HTMLResponse)
def results_page(request: Request, name: ExperimentName) -> HTMLResponse:
    with open_library(request) as library:
        experiment = get_experiment(library, name)
        done = cells(library, experiment)
        votes = experiment_votes(library, experiment)
        stats = service.experiment_stats(library, experiment["name"])
        voted, total = _progress(library, experiment)
    labels = [v["label"] for v in experiment["variants"]]
    votes_by_seed: dict[int, list[dict[str, Any]]] = {}
    for vote in votes:
        votes_by_seed.setdefault(vote["seed"], []).append(vote)
    rows = [{"seed": seed, "cells": [done.get((label, seed)) for label in labels],
             "marks": seed_marks(labels, votes_by_seed.get(seed, [])),
             "votes": votes_by_seed.get(seed, [])} for seed in experiment["seeds"]]
    key_pairs, other_pairs = key_comparisons(stats)
    return render(request, "experiment.html", title=experiment["name"], experiment=experiment, labels=labels,
                  rows=rows, stats=stats, voted=voted, total=total, has_images=bool(done),
                  headline=_headline(stats), state=_state_line(stats), key_pairs=key_pairs, other_pairs=other_pairs,
                  current_nav="/experiments")


KEY_COMPARISONS = 3  # cards shown in full; the other comparisons go into one compact table


def key_comparisons(stats: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The few comparisons that matter, and the rest: with more than KEY_COMPARISONS pairs, the leader
    (first in the ranking) against its nearest rivals, else the first pairs; every pair when there are few."""
    pairs = stats["pairs"]
    if len(pairs) <= KEY_COMPARISONS:
        return pairs, []
    ranking = [row["label"] for row in stats.get("ranking") or []]
    if ranking:
        place = {label: i for i, label in enumerate(ranking)}
        leader = ranking[0]
        order = sorted(pairs, key=lambda p: (leader not in (p["a"], p["b"]), place[p["a"]] + place[p["b"]]))
    else:
        order = list(pairs)
    key = order[:KEY_COMPARISONS]
    return key, [p for p in pairs if p not in key]


def _state_line(stats: dict[str, Any]) -> dict[str, Any]:
    """The anytime-valid verdict for the verdict card: its state and words (one pair), or a count of the
    comparisons decided (several, Holm-corrected)."""
    pairs = stats["pairs"]
    if len(pairs) == 1:
        return {"state": pairs[0]["state"], "text": pairs[0]["verdict_text"]}
    decided = sum(1 for p in pairs if p["state"] != "undecided")
    state = "settled" if decided == len(pairs) else "undecided"
    text = ("every comparison is decided — you can stop" if state == "settled" else
            f"{decided} of {len(pairs)} comparisons decided; keep voting (the review page asks for the pairs that "
            "matter most)")
    return {"state": state, "text": text}


def seed_marks(labels: list[str], votes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each variant's mark on one seed, from its own votes there: `won` (it won a vote), `tie` (no win,
    a tie), `lost` (only losses) or None (no votes), with its tally as `title`."""
    tally = {label: {"won": 0, "tie": 0, "lost": 0} for label in labels}
    for vote in votes:
        sides = [side for side in (vote["left"], vote["right"]) if side in tally]
        for side in sides:
            if vote["winner"] == "tie":
                tally[side]["tie"] += 1
            else:
                tally[side]["won" if vote["winner"] == side else "lost"] += 1
    marks = {}
    for label, counts in tally.items():
        mark = next((kind for kind in ("won", "tie", "lost") if counts[kind]), None)
        words = [f"{word} {counts[kind]}" for kind, word in (("won", "won"), ("tie", "tied"), ("lost", "lost"))
                 if counts[kind]]
        marks[label] = {"mark": mark, "title": ", ".join(words) or "no votes"}
    return marks


def _headline(stats: dict[str, Any]) -> str:
    """The verdict in one sentence: the only pair's, or a summary of the pairs and the ranking."""
    if not stats["votes"]:
        return "No votes yet: open the blind review and judge some pairs."
    if len(stats["pairs"]) == 1:
        text = stats["pairs"][0]["verdict"]  # may start with a label, whose case matters
        return "Not" + text[3:] if text.startswith("not ") else text
    decided = [p for p in stats["pairs"] if p["state"] != "undecided"]
    ranking = stats.get("ranking") or []
    leads = (f"{ranking[0]['label']} leads the ranking" if len(ranking) > 1
             and ranking[0]["score"] - ranking[1]["score"] > 1e-6 else "no variant leads the ranking")
    if not decided:
        return f"Not enough evidence yet for any pair; {leads} so far."
    return f"{len(decided)} of {len(stats['pairs'])} pairs decided; {leads}."


@router.get("/experiments/{name}/review", response_class=HTMLResponse)
def review_page(request: Request, name: ExperimentName) -> HTMLResponse:
    """Blind voting: only the experiment's name, the seed and opaque image URLs reach this page.

    `?rater=NAME` votes as NAME (default "me"): the pairs NAME voted on already are not offered again."""
    from ..experiments.votes import check_rater

    rater = check_rater(request.query_params.get("rater"))
    with open_library(request) as library:
        experiment = get_experiment(library, name)
        first = _next_pair_out(request, library, name, [], rater)
    return render(request, "review.html", title=f"Review {experiment['name']}", experiment_name=experiment["name"],
                  experiment_id=experiment["id"], variant_count=len(experiment["variants"]), first=first,
                  rater=rater, current_nav="/experiments")

