"""The verdict numbers must be scipy's and choix's, computed directly on the same votes."""

import choix
import numpy as np
import pytest
from scipy.stats import binom, binomtest, wilcoxon

from promptkit.experiments import VariantSpec, create_experiment, record_vote
from promptkit.generation import GenerationJob, run_job
from promptkit.library import Library
from promptkit.params import GenerationParams
from promptkit.stats import (BOOTSTRAP_SAMPLES, BT_REGULARISATION, RANKING_NO_VOTES, bradley_terry, experiment_stats,
                             holm_pairs, pair_summary, paired_ratings, votes_needed)
from promptkit.verdicts import confidence_sequence, decide, e_value
from promptkit.templates import Fields, PromptBuilder


@pytest.mark.parametrize("wins_a,wins_b,ties", [(3, 17, 4), (10, 10, 0), (12, 3, 9), (0, 6, 1), (1, 0, 0)])
def test_pair_summary_matches_scipy(wins_a, wins_b, ties):
    summary = pair_summary("A", "B", wins_a, wins_b, ties)
    n = wins_a + wins_b  # ties are excluded from the sign test
    expected = binomtest(wins_b, n, 0.5)
    ci = expected.proportion_ci(confidence_level=0.95, method="wilson")
    assert summary["p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
    assert summary["ci_low"] == pytest.approx(ci.low, abs=1e-9)
    assert summary["ci_high"] == pytest.approx(ci.high, abs=1e-9)
    assert summary["win_rate_b"] == pytest.approx(wins_b / n, abs=1e-12)
    spans_half = ci.low <= 0.5 <= ci.high
    assert ("not enough evidence" in summary["verdict"]) == spans_half
    if not spans_half:
        winner = "B" if ci.low > 0.5 else "A"
        assert summary["verdict"].startswith(f"{winner} beats")


@pytest.mark.parametrize("wins_a,wins_b,ties", [(3, 17, 4), (10, 10, 0), (24, 3, 0), (0, 0, 2), (300, 310, 5)])
def test_pair_summary_reports_the_anytime_valid_verdict(wins_a, wins_b, ties):
    summary = pair_summary("A", "B", wins_a, wins_b, ties)
    expected = decide(wins_a, wins_b)
    assert summary["state"] == expected["state"]
    assert summary["e_value"] == pytest.approx(e_value(wins_b, wins_a + wins_b), rel=1e-12)
    assert summary["confidence_sequence"] == pytest.approx(list(confidence_sequence(wins_b, wins_a + wins_b)))
    assert ("votes_to_go" in summary) == (summary["state"] == "undecided")
    text = {"a_better": "A is better — you can stop", "b_better": "B is better — you can stop",
            "equivalent": "no difference that matters is likely (within ±10 points of 50%) — you can stop",
            "undecided": f"keep voting: about {summary.get('votes_to_go')} more decisive votes"}
    assert summary["verdict_text"] == text[summary["state"]]
    assert "anytime-valid" in summary["method"]


def test_holm_over_the_pairs():
    pairs = [pair_summary("A", "B", 2, 20, 0), pair_summary("A", "C", 3, 16, 0), pair_summary("B", "C", 9, 10, 0)]
    # e = 789, 27, 0.28: alone, A–C would be decided (e >= 20); Holm asks e >= 3/0.05 first, then 2/0.05 = 40
    assert [p["state"] for p in pairs] == ["b_better", "b_better", "undecided"]
    held = holm_pairs(pairs)
    assert [p["state"] for p in held] == ["b_better", "undecided", "undecided"]
    assert [p["alpha"] for p in held] == pytest.approx([0.05 / 3, 0.05 / 3, 0.05 / 3])
    assert all("Holm–Bonferroni over 3 comparisons" in p["method"] for p in held)
    assert held[1]["votes_to_go"] > 0 and held[1]["p_value"] == pairs[1]["p_value"]


def test_bradley_terry_without_votes_has_no_numbers():
    assert bradley_terry(["A", "B", "C"], []) == [] and RANKING_NO_VOTES == "no votes yet"


def test_ties_do_not_change_the_sign_test():
    assert pair_summary("A", "B", 4, 9, 0)["p_value"] == pair_summary("A", "B", 4, 9, 50)["p_value"]


def test_votes_needed_reaches_the_stated_power():
    n = votes_needed(0.65)
    def power(m):
        c = -1
        while binom.cdf(c + 1, m, 0.5) <= 0.025:
            c += 1
        return binom.cdf(c, m, 0.65) + binom.sf(m - c - 1, m, 0.65) if c >= 0 else 0.0
    assert power(n) >= 0.8
    assert power(n - 1) < 0.8 or power(n - 2) < 0.8  # power is saw-toothed in n; n is the first to reach it
    assert 60 < n < 120


def test_paired_ratings_match_wilcoxon():
    a = {1: 3, 2: 2, 3: 4, 4: 1, 5: 3, 6: 2}
    b = {1: 4, 2: 4, 3: 5, 4: 3, 5: 3, 6: 5, 7: 1}  # seed 7 has no pair and is ignored
    result = paired_ratings(a, b)
    diffs = np.array([b[s] - a[s] for s in range(1, 7)], dtype=float)
    assert result["pairs"] == 6
    assert result["mean_difference"] == pytest.approx(diffs.mean(), abs=1e-12)
    assert result["p_value"] == pytest.approx(wilcoxon(diffs, zero_method="wilcox").pvalue, abs=1e-9)


def test_bradley_terry_matches_choix_and_stays_finite():
    labels = ["A", "B", "C"]
    comparisons = [("B", "A")] * 8 + [("A", "B")] * 2 + [("C", "A")] * 6 + [("C", "B")] * 5  # C never loses
    ranking = bradley_terry(labels, comparisons)
    matrix = np.zeros((3, 3))
    for w, l in comparisons:
        matrix[labels.index(w), labels.index(l)] += 1
    expected = choix.ilsr_pairwise_dense(matrix, alpha=BT_REGULARISATION)
    expected = expected - expected.mean()
    # the dense fit on the win counts is the same model as choix's fit on the vote list
    listed = choix.ilsr_pairwise(3, [(labels.index(w), labels.index(l)) for w, l in comparisons],
                                 alpha=BT_REGULARISATION)
    assert np.allclose(expected, listed - listed.mean(), atol=1e-6)
    by_label = {r["label"]: r for r in ranking}
    for i, label in enumerate(labels):
        assert by_label[label]["score"] == pytest.approx(expected[i], abs=1e-9)
        assert np.isfinite(by_label[label]["ci_low"]) and np.isfinite(by_label[label]["ci_high"])
        assert by_label[label]["ci_low"] <= by_label[label]["score"] <= by_label[label]["ci_high"] + 1e-9
    assert [r["label"] for r in ranking] == ["C", "B", "A"]
    # The bootstrap resamples the votes (a multinomial draw of the win counts), reproducible from its seed.
    rng = np.random.default_rng(0)
    total = int(matrix.sum())
    draws = []
    for draw in rng.multinomial(total, matrix.ravel() / total, size=BOOTSTRAP_SAMPLES):
        s = choix.ilsr_pairwise_dense(draw.reshape(3, 3).astype(float), alpha=BT_REGULARISATION)
        draws.append(s - s.mean())
    low = np.percentile(np.array(draws), 2.5, axis=0)
    assert by_label["A"]["ci_low"] == pytest.approx(low[0], abs=1e-9)


def test_experiment_stats_from_library_votes(isolated_library, tiny_engine):
    params = GenerationParams(steps=2, sampler="Euler")
    with Library(isolated_library) as lib:
        builder = PromptBuilder()
        for label in "ABC":
            lib.save_prompt(builder.render(Fields(subject=f"thing {label}")), name=label)
        create_experiment(lib, "x", [VariantSpec(l, l) for l in "ABC"], list(range(1, 7)), params)
        exp_id = lib.db.execute("SELECT id FROM experiments").fetchone()[0]
        for label in "ABC":
            run_job(lib, tiny_engine, GenerationJob(prompt=lib.get_prompt(label), params=params,
                                                    seeds=list(range(1, 7)), batch_size=6, experiment_id=exp_id,
                                                    variant=label))
        before = experiment_stats(lib, "x")
        for seed in range(1, 7):
            record_vote(lib, "x", seed, "B" if seed <= 5 else "A", "A", "B")
            record_vote(lib, "x", seed, "tie" if seed == 1 else "C", "C", "A")
        gen_ids = {(r[0], r[1]): r[2] for r in lib.db.execute("SELECT variant, seed, id FROM generations")}
        for seed in range(1, 5):
            lib.rate(gen_ids[("A", seed)], 2)
            lib.rate(gen_ids[("B", seed)], 2 + seed % 3)
        result = experiment_stats(lib, "x")
    ab = next(p for p in result["pairs"] if (p["a"], p["b"]) == ("A", "B"))
    assert (ab["wins_a"], ab["wins_b"], ab["ties"]) == (1, 5, 0)
    assert ab["p_value"] == pytest.approx(binomtest(5, 6).pvalue, abs=1e-9)
    ac = next(p for p in result["pairs"] if (p["a"], p["b"]) == ("A", "C"))
    assert (ac["wins_a"], ac["wins_b"], ac["ties"]) == (0, 5, 1)
    diffs = [(2 + s % 3) - 2 for s in range(1, 5)]
    assert ab["ratings"]["mean_difference"] == pytest.approx(np.mean(diffs))
    assert ab["ratings"]["p_value"] == pytest.approx(wilcoxon(diffs).pvalue, abs=1e-9)
    assert [r["label"] for r in result["ranking"]][0] == "C"
    assert result["ranking_text"].startswith("Bradley–Terry")
    assert before["ranking"] == [] and before["ranking_text"] == "no votes yet"
    assert all(p["state"] == "undecided" and p["votes_to_go"] > 0 for p in before["pairs"])
    assert all("Holm–Bonferroni over 3 comparisons" in p["method"] for p in result["pairs"])
    # position bias: A–B votes had A on the left, C–A votes C on the left; 10 decisive, 5 + 5 left wins
    assert result["position_bias"]["left"] == 1 + 5 and result["position_bias"]["right"] == 5
    assert result["agreement"] is None  # one rater


def test_a_rating_changed_twice_counts_once_in_the_star_comparison(isolated_library):
    """The star comparison takes each cell's current rating (its latest), not the mean of all."""
    from sample_library import add_picture

    with Library(isolated_library) as lib:
        builder = PromptBuilder()
        for label in "AB":
            lib.save_prompt(builder.render(Fields(subject=f"thing {label}")), name=label)
        exp_id = create_experiment(lib, "x", [VariantSpec(l, l) for l in "AB"], [1, 2, 3], GenerationParams(steps=2))
        cells = {}
        for label in "AB":
            for seed in (1, 2, 3):
                gen_id = add_picture(lib, lib.get_prompt(label), seed, size=32)
                row = {k: v for k, v in lib.get_generation(gen_id).items() if k != "id"}
                cells[(label, seed)] = lib.add_generation({**row, "experiment_id": exp_id, "variant": label})
        for seed, a_stars, b_history in [(1, 2, (1, 5, 4)), (2, 3, (2,)), (3, 1, (5, 1, 3))]:
            lib.rate(cells[("A", seed)], a_stars)
            for stars in b_history:  # seeds 1 and 3: rated, then changed twice
                lib.rate(cells[("B", seed)], stars)
        result = experiment_stats(lib, "x")
    ratings = result["pairs"][0]["ratings"]
    diffs = [4 - 2, 2 - 3, 3 - 1]  # the latest of each
    assert ratings["pairs"] == 3
    assert ratings["mean_difference"] == pytest.approx(np.mean(diffs))
    assert ratings["p_value"] == pytest.approx(wilcoxon(diffs).pvalue, abs=1e-9)
