"""Verdicts on real experiments: raters, a second vote replacing the first, the one adaptive chooser
behind the API, `ab vote` and the review page, and what `ab stats` and the results page say."""

from __future__ import annotations

import html
import json
import random
import re

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from promptkit.cli import main
from promptkit.experiments import experiment_votes, get_experiment
from promptkit.experiments.votes import counted_votes, next_pair, record_vote
from promptkit.library import Library
from promptkit.service.experiments import VotingSession, pair_key
from promptkit.stats import experiment_stats
from promptkit.verdicts import STATES
from promptkit.web import create_app

ORIGIN = "http://127.0.0.1:8765"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
QUAD = ("w", "x", "y", "z")


def cli(db, *args):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


@pytest.fixture
def lib(experiment_library):
    with Library(experiment_library) as library:
        yield library


@pytest.fixture
def quad(experiment_library):
    """Four variants on seeds 1-2 (six pairs: more than the page shows as cards), their cells copies of
    sky's generation rows (same images), so no model runs."""
    from promptkit.experiments import VariantSpec, create_experiment
    from promptkit.params import GenerationParams

    with Library(experiment_library) as library:
        sky = {(g["label"], g["seed"]): g for g in library.experiment_generations(get_experiment(library, "sky")["id"])}
        prompt = str(get_experiment(library, "sky")["variants"][0]["prompt_id"])
        create_experiment(library, "quad", [VariantSpec(label, prompt, {"cfg": 3.0 + i}) for i, label in enumerate(QUAD)],
                          [1, 2], GenerationParams(steps=2, cfg=5.0, sampler="Euler", width=64, height=64))
        quad_id = get_experiment(library, "quad")["id"]
        for label in QUAD:
            for seed in (1, 2):
                row = library.get_generation(sky[("plain", seed)]["id"])
                row.update(experiment_id=quad_id, variant=label)
                library.add_generation({k: v for k, v in row.items() if k not in ("id", "created_at")})
    return experiment_library


# -- one vote per rater per pair --------------------------------------------------------


def test_a_second_vote_by_the_same_rater_replaces_the_first(lib):
    first = record_vote(lib, "sky", 1, "plain", "plain", "fancy")
    assert first["rater"] == "me" and first["replaced"] == []
    # the same pair with the sides swapped is the same pair
    second = record_vote(lib, "sky", 1, "fancy", "fancy", "plain")
    assert second["replaced"] == [first["id"]]
    votes = experiment_votes(lib, get_experiment(lib, "sky"))
    assert [(v["id"], v["winner"], v["rater"]) for v in votes] == [(second["id"], "fancy", "me")]
    # another rater's vote on the same pair is a vote of its own
    other = record_vote(lib, "sky", 1, "plain", "plain", "fancy", rater="ana")
    assert other["replaced"] == []
    stats = experiment_stats(lib, "sky")
    assert stats["votes"] == 2 and (stats["pairs"][0]["wins_a"], stats["pairs"][0]["wins_b"]) == (1, 1)
    # another seed is another pair
    assert record_vote(lib, "sky", 2, "plain")["replaced"] == []
    assert experiment_stats(lib, "sky")["votes"] == 3


def test_duplicates_from_before_the_rule_count_once(lib):
    """A library from before m008 may hold several votes by one person on one pair: the latest counts."""
    record_vote(lib, "sky", 3, "plain")
    experiment = get_experiment(lib, "sky")
    row = lib.db.execute("SELECT experiment_id, seed, left_generation_id, right_generation_id, winner_generation_id, "
                         "created_at, rater FROM votes").fetchone()
    with lib.write() as db:
        db["votes"].insert(dict(zip(("experiment_id", "seed", "left_generation_id", "right_generation_id",
                                     "winner_generation_id", "created_at", "rater"), row)) | {"winner_generation_id": None})
    votes = experiment_votes(lib, experiment)
    assert len(votes) == 2 and [v["winner"] for v in counted_votes(votes)] == ["tie"]
    stats = experiment_stats(lib, "sky")
    assert stats["votes"] == 1 and stats["pairs"][0]["ties"] == 1


def test_scripted_cli_vote_replaces_and_says_so(experiment_library):
    first = cli(experiment_library, "ab", "vote", "sky", "--seed", "1", "--winner", "plain", "--json")
    assert json.loads(first.output)["replaced"] == []
    again = cli(experiment_library, "ab", "vote", "sky", "--seed", "1", "--winner", "fancy")
    assert "replaces this rater's earlier vote" in again.output
    ana = cli(experiment_library, "ab", "vote", "sky", "--seed", "1", "--winner", "plain", "--rater", "ana")
    assert "rater ana" in ana.output and "replaces" not in ana.output
    stats = json.loads(cli(experiment_library, "ab", "stats", "sky", "--json").output)
    assert stats["votes"] == 2
    help_text = cli(experiment_library, "ab", "vote", "--help").output
    assert "--rater" in help_text and "replaces the first" in help_text


@pytest.mark.parametrize("rater", ["", "   ", "x" * 65, "tab\there"])
def test_a_bad_rater_is_one_line_naming_the_flag_and_nothing_is_written(experiment_library, rater):
    result = CliRunner().invoke(main, ["--db", str(experiment_library), "ab", "vote", "sky", "--seed", "1",
                                       "--winner", "plain", "--rater", rater])
    assert result.exit_code == 1 and "--rater must be 1-64 printable characters" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with Library(experiment_library) as library:
        assert experiment_votes(library, get_experiment(library, "sky")) == []


# -- agreement between raters -------------------------------------------------------------


def test_kappa_cohen_for_two_raters_fleiss_for_three(experiment_library):
    me = {1: "plain", 2: "plain", 3: "fancy", 4: "fancy"}
    ana = {1: "plain", 2: "fancy", 3: "fancy", 4: "fancy"}
    with Library(experiment_library) as library:
        for rater, choices in (("me", me), ("ana", ana)):
            for seed, winner in choices.items():
                record_vote(library, "sky", seed, winner, rater=rater)
    stats = json.loads(cli(experiment_library, "ab", "stats", "sky", "--json").output)
    agreement = stats["agreement"]
    # observed 3/4; chance (2/4 · 1/4 + 2/4 · 3/4) = 1/2: κ = (0.75 − 0.5) / 0.5 = 0.5
    assert agreement["method"] == "Cohen's kappa" and agreement["kappa"] == pytest.approx(0.5)
    assert agreement["raters"] == ["ana", "me"] and agreement["items"] == 4
    text = cli(experiment_library, "ab", "stats", "sky").output
    assert "rater agreement: Cohen's kappa = 0.50 over 4 pairs voted by all of ana, me" in text
    with Library(experiment_library) as library:
        for seed, winner in me.items():
            record_vote(library, "sky", seed, winner, rater="bo")
        assert experiment_stats(library, "sky")["agreement"]["method"] == "Fleiss' kappa"


# -- the stats contract --------------------------------------------------------------------


def test_stats_json_states_and_position_bias(experiment_library):
    with Library(experiment_library) as library:
        for seed in (1, 2, 3):
            record_vote(library, "sky", seed, "fancy", "fancy", "plain")  # fancy on the left each time
    stats = json.loads(cli(experiment_library, "ab", "stats", "sky", "--json").output)
    pair = stats["pairs"][0]
    assert pair["state"] in STATES and pair["state"] == "undecided" and pair["votes_to_go"] > 0
    assert {"wins_a", "wins_b", "ties", "win_rate_b", "ci_low", "ci_high", "p_value", "verdict", "ratings", "e_value",
            "confidence_sequence", "verdict_text", "method"} <= set(pair)
    bias = stats["position_bias"]
    assert (bias["left"], bias["right"], bias["left_share"]) == (3, 0, 1.0) and bias["ci_low"] < 1.0
    text = cli(experiment_library, "ab", "stats", "sky").output
    assert "keep voting: about" in text and "position bias: 100% of decisive votes went to the left image" in text
    trio = json.loads(cli(experiment_library, "ab", "stats", "trio", "--json").output)
    assert all(p["state"] == "undecided" and "Holm" in p["method"] for p in trio["pairs"])
    assert trio["ranking"] == [] and trio["ranking_text"] == "no votes yet"


# -- the one chooser -------------------------------------------------------------------------


def test_next_pair_works_on_the_leaders_least_settled_pair(quad):
    with Library(quad) as library:
        # z beat everyone on seed 1 and w beat x on seed 2: z leads, and its pairs are the open ones
        for other in ("w", "x", "y"):
            record_vote(library, "quad", 1, "z", "z", other)
        record_vote(library, "quad", 2, "w", "w", "x")
        pair = next_pair(library, "quad", rng=random.Random(0))
        assert "z" in {pair["left"]["label"], pair["right"]["label"]} and pair["seed"] == 2
        assert (pair["voted"], pair["total"]) == (4, 12) and pair["settled"] is False
        # the same pair from the service, the session, whatever the sides
        from promptkit.service.experiments import next_pair as service_next

        assert pair_key(service_next(library, "quad")) == pair_key(pair)
        assert pair_key(VotingSession(library, "quad").next()) == pair_key(pair)
        # another rater has every pair still to vote, and is asked about z too
        fresh = next_pair(library, "quad", rater="ana")
        assert fresh["voted"] == 0 and "z" in {fresh["left"]["label"], fresh["right"]["label"]}


def test_the_api_and_the_page_use_the_same_chooser(quad):
    with Library(quad) as library:
        for other in ("w", "x", "y"):
            record_vote(library, "quad", 1, "z", "z", other)
        expected = pair_key(next_pair(library, "quad"))
    with TestClient(create_app(quad), base_url=ORIGIN, headers=SAME_ORIGIN) as client:
        for attempt in range(3):
            shown = client.get("/api/experiments/quad/next-pair").json()
            cast = client.post("/api/experiments/quad/votes", json={"seed": shown["seed"], "pair": shown["pair"],
                                                                     "winner": "tie", "rater": "probe"}).json()
            assert cast["rater"] == "probe"
            # the page sends the rater in the body; a script may put it in the query
            undo = {"json": {"rater": "probe"}} if attempt % 2 else {"params": {"rater": "probe"}}
            assert client.post("/api/experiments/quad/votes/undo", **undo).json()["rater"] == "probe"
            assert (cast["seed"], frozenset((cast["left"], cast["right"]))) == expected
        page = client.get("/experiments/quad/review?rater=ana").text
        assert 'data-rater="ana"' in page and "Voting as <strong id=\"rater\">ana</strong>" in page
        assert client.get("/experiments/quad/review?rater=%09").status_code == 400


def test_a_rater_is_done_when_they_voted_every_pair_and_undo_is_theirs(lib):
    for seed in (1, 2, 3, 4):
        record_vote(lib, "sky", seed, "plain")
    assert next_pair(lib, "sky") is None and next_pair(lib, "sky", rater="ana") is not None
    record_vote(lib, "sky", 1, "fancy", rater="ana")
    from promptkit.experiments import undo_last_vote

    assert undo_last_vote(lib, "sky", "me")["rater"] == "me"  # not ana's, although hers is newer
    assert [v["rater"] for v in experiment_votes(lib, get_experiment(lib, "sky"))].count("me") == 3


def test_settled_pairs_are_still_offered_and_flagged(quad):
    with Library(quad) as library:
        for a, b in (("w", "x"), ("w", "y"), ("w", "z"), ("x", "y"), ("x", "z"), ("y", "z")):
            for rater in range(12):
                record_vote(library, "quad", 1, b, a, b, rater=f"r{rater}")
        assert all(p["state"] != "undecided" for p in experiment_stats(library, "quad")["pairs"])
        pair = next_pair(library, "quad")
        assert pair["settled"] is True and pair["seed"] in (1, 2)


# -- the results page ----------------------------------------------------------------------


def test_results_page_states_and_checks(experiment_library):
    def vote_on(seeds):
        with Library(experiment_library) as library:
            for seed in seeds:
                record_vote(library, "sky", seed, "fancy", "fancy", "plain")
                record_vote(library, "sky", seed, "fancy", "plain", "fancy", rater="ana")
        with TestClient(create_app(experiment_library), base_url=ORIGIN, headers=SAME_ORIGIN) as client:
            return " ".join(html.unescape(client.get("/experiments/sky").text).split())

    page = vote_on((1, 2, 3))  # 6–0: e = 64/7 < 20, not yet
    assert 'id="verdict-state" data-state="undecided">keep voting: about' in page
    assert re.search(r"fancy's win rate: \d+–100% <span class=\"muted\">\(confidence sequence", page)
    assert "Position bias: 50% of decisive votes went to the left image" in page
    assert "Rater agreement: Cohen's kappa = 1.00 over 3 pairs voted by all of ana, me" in page
    assert 'class="cs' in page  # the confidence sequence under each win-rate bar
    page = vote_on((4,))  # 8–0: e = 256/9 >= 20
    assert 'id="verdict-state" data-state="b_better">fancy is better — you can stop' in page


def test_a_sweep_page_leads_with_the_ranking_and_a_few_comparisons(quad):
    with Library(quad) as library:
        for other in ("w", "x", "y"):
            record_vote(library, "quad", 1, "z", "z", other)
    with TestClient(create_app(quad), base_url=ORIGIN, headers=SAME_ORIGIN) as client:
        page = client.get("/experiments/quad").text
    assert page.index('aria-label="Ranking"') < page.index('aria-label="Win rates"')
    assert page.count('class="winbar"') == 3 and "The other 3 comparisons" in page
    cards = re.findall(r'<article class="pair-stat" data-pair="(\w)\|(\w)">', page)
    assert all("z" in pair for pair in cards)
    assert "1 of 6 comparisons decided" not in page and 'data-state="undecided"' in page
