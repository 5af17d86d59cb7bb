"""Per-term effects from blind votes (promptkit.effects): a synthetic voter with known term effects."""

import itertools
import math

import numpy as np
import pytest

from promptkit import effects

TERMS = ["golden hour", "jpeg artifacts", "8k"]
TRUE_BETA = np.array([0.8, -0.8, 0.0])  # helps, hurts, does nothing
FULL = {"+".join(t for t, on in zip("ABC", bits) if on) or "base": bits
        for bits in itertools.product((0, 1), repeat=3)}


def simulate_votes(rng, n_votes, beta=TRUE_BETA, design=FULL):
    """N_VOTES blind votes on uniformly random pairs of the design, decided by the additive model."""
    labels = list(design)
    x = np.array([design[label] for label in labels], dtype=float)
    first = rng.integers(0, len(labels), n_votes)
    second = (first + rng.integers(1, len(labels), n_votes)) % len(labels)
    p_first = 1 / (1 + np.exp(-(x[first] - x[second]) @ beta))
    first_wins = rng.random(n_votes) < p_first
    winners = np.where(first_wins, first, second)
    losers = np.where(first_wins, second, first)
    return [(labels[w], labels[loser]) for w, loser in zip(winners, losers)]


def test_signs_and_states_on_one_big_experiment():
    rng = np.random.default_rng(1)
    rows = effects.effects_from_votes(TERMS, FULL, simulate_votes(rng, 600))
    by_term = {r["term"]: r for r in rows}
    assert by_term["golden hour"]["effect"] > 0.6 and by_term["golden hour"]["state"] == "helps"
    assert by_term["jpeg artifacts"]["effect"] < 0.4 and by_term["jpeg artifacts"]["state"] == "hurts"
    assert by_term["8k"]["low"] < 0.5 < by_term["8k"]["high"]
    assert by_term["8k"]["state"] in ("no_effect", "undecided")
    assert all(r["low"] < r["effect"] < r["high"] for r in rows)
    assert all(r["votes"] > 0 for r in rows)
    ranked = effects.rank_terms(rows)
    assert [r["term"] for r in ranked] == ["golden hour", "8k", "jpeg artifacts"]


def test_intervals_cover_near_nominal_and_the_null_term_is_rarely_called_helps():
    rng = np.random.default_rng(20)
    experiments = 300
    covered = np.zeros(3)
    null_helps = 0
    for _ in range(experiments):
        rows = effects.effects_from_votes(TERMS, FULL, simulate_votes(rng, 150))
        truth = 1 / (1 + np.exp(-TRUE_BETA))
        covered += [r["low"] <= t <= r["high"] for r, t in zip(rows, truth)]
        null_helps += rows[2]["state"] == "helps"
    rate = covered / experiments
    # 95% intervals: binomial simulation error at 300 runs is about ±2.5 points (2 se)
    assert np.all(rate > 0.90) and np.all(rate < 0.99), rate
    assert null_helps / experiments <= 0.05, null_helps


def test_null_term_read_after_every_batch_of_votes_stays_under_alpha():
    """Read the state after every 20 votes up to 300 (continuous monitoring, roughly): the null term is called
    helps or hurts in at most alpha of experiments (within simulation error)."""
    rng = np.random.default_rng(7)
    experiments, wrong = 150, 0
    for _ in range(experiments):
        votes = simulate_votes(rng, 300)
        for n in range(20, 301, 20):
            state = effects.effects_from_votes(TERMS, FULL, votes[:n])[2]["state"]
            if state in ("helps", "hurts"):
                wrong += 1
                break
    assert wrong / experiments <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / experiments), wrong


def test_no_votes_gives_no_numbers():
    rows = effects.effects_from_votes(TERMS, FULL, [])
    assert all(r["effect"] is None and r["state"] == "undecided" and r["votes"] == 0 for r in rows)


def test_chooser_picks_a_pair_that_differs_in_the_least_settled_term_only():
    rng = np.random.default_rng(3)
    votes = simulate_votes(rng, 400)
    # term C (null) is the least settled: the pair must differ only in C
    pair = effects.choose_term_pair(TERMS, FULL, votes, seeds=[1, 2, 3])
    a, b = FULL[pair["a"]], FULL[pair["b"]]
    assert [x != y for x, y in zip(a, b)].count(True) == 1
    changed = [x != y for x, y in zip(a, b)].index(True)
    assert pair["term"] == TERMS[changed]
    assert pair["seed"] in (1, 2, 3)
    # with no votes at all, any term is least settled and a one-term pair comes back
    first = effects.choose_term_pair(TERMS, FULL, [], seeds=[5])
    assert sum(x != y for x, y in zip(FULL[first["a"]], FULL[first["b"]])) == 1


def test_filter_candidates_keeps_the_order_and_falls_back():
    candidates = [(1, a, b) for a, b in itertools.combinations(FULL, 2)]
    kept = effects.filter_candidates(TERMS, FULL, [], candidates)
    assert kept and all(sum(x != y for x, y in zip(FULL[a], FULL[b])) == 1 for _s, a, b in kept)
    assert effects.filter_candidates(TERMS, FULL, [], [(1, "A+B", "C")]) == [(1, "A+B", "C")]


def test_star_effects_recover_the_stars_a_term_adds():
    rng = np.random.default_rng(5)
    stars = {label: {seed: 3 + 1.0 * bits[0] - 1.0 * bits[1] + rng.normal(0, 0.3) + 0.2 * seed
                     for seed in range(6)} for label, bits in FULL.items()}
    rows = effects.star_effects(TERMS, FULL, stars)
    assert rows[0]["low"] < 1.0 < rows[0]["high"] and rows[0]["low"] > 0
    assert rows[1]["high"] < 0 and rows[2]["low"] < 0 < rows[2]["high"]
    assert effects.star_effects(TERMS, FULL, {"base": {1: 3}}) is None


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_sequence_is_wider_than_the_fixed_interval(n):
    assert effects.cs_half_width(1.0, n, 0.05) > effects.Z95


def test_terms_table_and_its_text():
    record = {"terms": TERMS, "letters": dict(zip("ABC", TERMS)), "indicators": FULL}
    empty = effects.terms_table(record, [])
    assert [r["letter"] for r in empty] == ["A", "B", "C"]
    assert all("no votes yet" in line for line in effects.terms_lines(empty)[1:])
    rng = np.random.default_rng(9)
    votes = [{"left": w, "right": loser, "winner": w} for w, loser in simulate_votes(rng, 300)]
    votes.append({"left": "A", "right": "B", "winner": "tie"})  # ties do not count
    stars = {label: {s: 3.0 + bits[0] + 0.1 * s for s in range(3)} for label, bits in FULL.items()}
    stars["base"][0] += 0.5
    rows = effects.terms_table(record, votes, stars)
    assert rows[0]["term"] == "golden hour" and rows[0]["stars"]["stars"] > 0.5
    assert sum(r["votes"] for r in rows) >= 300
    lines = effects.terms_lines(rows)
    assert lines[1].startswith("  #1 A golden hour") and "stars +" in lines[1]


def test_pairs_only_design_chooser_compares_against_the_base():
    pairs_only = {"base": (0, 0, 0), "A": (1, 0, 0), "B": (0, 1, 0), "C": (0, 0, 1)}
    pair = effects.choose_term_pair(TERMS, pairs_only, [])
    assert "base" in (pair["a"], pair["b"])


def test_chooser_for_a_matrix_takes_the_verdicts_chooser_arguments():
    from promptkit import verdicts

    record = {"terms": TERMS, "indicators": FULL}
    assert effects.chooser_for({"params": {}}) is verdicts.choose_next_pair
    choose = effects.chooser_for({"params": {"matrix": record}})
    rng = np.random.default_rng(3)
    counts = {}
    for winner, loser in simulate_votes(rng, 400):
        a, b = sorted((winner, loser), key=list(FULL).index)
        wins = counts.get((a, b), (0, 0))
        counts[(a, b)] = (wins[0] + (winner == a), wins[1] + (winner == b))
    pair = choose(list(FULL), counts, seeds=[1, 2])
    assert sum(x != y for x, y in zip(FULL[pair["a"]], FULL[pair["b"]])) == 1 and pair["seed"] in (1, 2)
    assert pair["term"] == "8k"  # the null term is the least settled after 400 votes
