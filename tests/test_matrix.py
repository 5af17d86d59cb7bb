"""Prompt matrices (`ab matrix`): designs, term placement, token lint, and a 3-term matrix on the tiny model
that runs, resumes after SIGKILL, takes scripted votes and prints the effect table."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.errors import PromptkitError
from promptkit.experiments.matrix import matrix_design, parse_term
from promptkit.library import Library

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, code=0):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_up_to_four_terms_every_combination(k):
    design = matrix_design(k)
    assert design["kind"] == "full" and len(design["runs"]) == 2**k
    assert sorted(map(tuple, design["runs"])) == sorted(itertools.product((0, 1), repeat=k))
    assert design["runs"][0] == [0] * k  # the base first


@pytest.mark.parametrize("k,resolution", [(5, "V"), (6, "IV"), (7, "IV"), (8, "IV"), (9, "III"), (15, "III")])
def test_more_terms_a_16_run_fractional_design_that_estimates_every_main_effect(k, resolution):
    design = matrix_design(k)
    assert design["kind"] == "fractional" and len(design["runs"]) == 16
    assert design["resolution"] == resolution and resolution in design["text"]
    assert all(g.split(" = ")[0] in design["text"] for g in design["generators"])
    x = np.array(design["runs"]) * 2 - 1
    assert np.allclose(x.T @ x, 16 * np.eye(k))  # main-effect columns orthogonal: each one estimable
    assert [0] * k in design["runs"]  # the base prompt alone is one of the runs
    if resolution == "III":
        assert "confounded with two-term interactions" in design["text"] and "=" in design["text"]


def test_pairs_only_and_limits():
    assert matrix_design(3, pairs_only=True)["runs"] == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    with pytest.raises(PromptkitError, match="at most 15"):
        matrix_design(16)
    assert parse_term("environment=golden hour") == {"field": "environment", "text": "golden hour"}
    assert parse_term("8k") == {"field": None, "text": "8k"}
    with pytest.raises(PromptkitError, match="--term 'colour=red': no field 'colour'"):
        parse_term("colour=red")


def test_terms_go_through_the_template_and_tokens_are_counted(saved_prompt):
    from promptkit.service.matrix import plan_matrix

    with Library(os.environ["PROMPTKIT_DB"]) as lib:
        plan = plan_matrix(lib, "lighthouse", ["environment=misty harbour",
                                                                        "style=bokeh", "8k"])
        positives = {v["label"]: (v["prompt"].positive if v["prompt"] else plan["base"]["positive"])
                     for v in plan["variants"]}
    assert positives["A"].startswith("a lighthouse, misty harbour, watercolor")
    assert "bokeh, shallow depth of field" in positives["B"] and positives["C"].endswith(", 8k")
    assert positives["base"] == saved_prompt["positive"]
    tokens = {t["term"]: t for t in plan["tokens"]}
    assert tokens["8k"]["tokens"] >= 2 and tokens["8k"]["cut_off_in"] == []


def test_a_term_past_the_window_is_flagged(isolated_library):
    import promptkit
    from promptkit.service.matrix import plan_matrix

    with Library(isolated_library) as lib:
        promptkit.build_prompt(lib, subject=", ".join(f"detail {i}" for i in range(40)), save="long")
        plan = plan_matrix(lib, "long", ["golden hour", "subject=a red door"])
    tokens = {t["term"]: t for t in plan["tokens"]}
    assert tokens["golden hour"]["cut_off_in"] == ["A", "A+B"]
    # appended to the subject, itself past the window: cut off too
    assert tokens["subject=a red door"]["cut_off_in"] == ["B", "A+B"]


def test_bad_input_refused_with_nothing_written(saved_prompt, isolated_library):
    def counts():
        with Library(isolated_library) as lib:
            return (lib.db.execute("SELECT count(*) FROM prompts").fetchone()[0],
                    lib.db.execute("SELECT count(*) FROM experiments").fetchone()[0])

    before = counts()
    out = CliRunner().invoke(main, ["ab", "matrix", "m", "--prompt", "lighthouse", "--term", "style=nope"])
    assert out.exit_code == 1 and "nope" in out.output and len(out.output.strip().splitlines()) == 1
    out = CliRunner().invoke(main, ["ab", "matrix", "m", "--prompt", "lighthouse", "--term", "8k", "--term", "8k"])
    assert out.exit_code == 1 and "given twice" in out.output
    assert counts() == before


def _start_run(db, name):
    env = dict(os.environ, PROMPTKIT_DB=str(db), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "promptkit", "ab", "run", name, "--quiet", "--no-engine",
                             "--batch-size", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=db.parent)


def _cells(db):
    with Library(db) as lib:
        return lib.db.execute("SELECT count(*), count(DISTINCT variant || ':' || seed) FROM generations").fetchone()


def test_three_term_matrix_runs_resumes_after_sigkill_takes_votes_and_prints_effects(saved_prompt, tiny_model,
                                                                                    isolated_library):
    db = isolated_library
    out = cli("ab", "matrix", "m3", "--prompt", "lighthouse", "--term", "golden hour", "--term", "style=bokeh",
              "--term", "environment=misty harbour", "--seeds", "1-2", "--steps", "2", "--sampler", "Euler", "--width", "32", "--height", "32",
              "--model", tiny_model)
    assert "8 variants × 2 seeds" in out and "full factorial 2^3" in out and "A: golden hour" in out
    # SIGKILL once the run has written an image, then resume to exactly one image per cell
    proc = _start_run(db, "m3")
    deadline = time.time() + 120
    while proc.poll() is None and _cells(db)[0] == 0 and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()
    assert 0 < _cells(db)[0] <= 16
    cli("ab", "run", "m3", "--quiet", "--no-engine", "--batch-size", "4")  # resume, in this process
    assert _cells(db) == (16, 16)

    # Scripted votes (one per pair and seed) from a voter who likes golden hour (A), dislikes bokeh (B),
    # ignores C
    import promptkit

    rng = np.random.default_rng(4)
    beta = np.array([2.5, -2.5, 0.0])
    with Library(db) as lib:
        ind = lib.experiment_row("m3")["params"]["matrix"]["indicators"]
        first = promptkit.next_pair(lib, "m3")
        # the matrix strategy: with no votes, a pair that differs in one term only
        assert sum(x != y for x, y in zip(ind[first["left"]["label"]], ind[first["right"]["label"]])) == 1
        for seed in (1, 2):
            for a, b in itertools.combinations(list(ind), 2):
                p = 1 / (1 + np.exp(-(np.array(ind[a]) - np.array(ind[b])) @ beta))
                promptkit.vote(lib, "m3", seed, a if rng.random() < p else b, a, b)
    text = cli("ab", "stats", "m3")
    assert "term effects" in text
    table = text[text.index("term effects"):].splitlines()[1:]
    assert "golden hour" in table[0] and "style=bokeh" in table[-1]
    data = json.loads(cli("ab", "stats", "m3", "--json"))
    terms = {t["term"]: t for t in data["terms"]}
    assert set(terms) == {"golden hour", "style=bokeh", "environment=misty harbour"}
    for t in data["terms"]:
        assert {"term", "effect", "low", "high", "votes", "state"} <= set(t)
        assert t["state"] in ("helps", "hurts", "no_effect", "undecided") and t["low"] <= t["effect"] <= t["high"]
    assert terms["golden hour"]["effect"] > 0.5 > terms["style=bokeh"]["effect"]
    assert terms["golden hour"]["votes"] == 2 * 16  # the decisive votes on pairs that differ in it


def test_dry_run_prints_the_design_and_tokens_and_stores_nothing(saved_prompt, isolated_library):
    out = cli("ab", "matrix", "five", "--prompt", "lighthouse", "--term", "golden hour", "--term", "bokeh",
              "--term", "8k", "--term", "by greg rutkowski", "--term", "trending on artstation", "--dry-run")
    assert "16 variants (dry run: nothing stored)" in out and "resolution V" in out and "E = −ABCD" in out
    assert "D: by greg rutkowski (5 tokens)" in out
    data = json.loads(cli("ab", "matrix", "five", "--prompt", "lighthouse", "--term", "8k", "--pairs-only",
                          "--dry-run", "--json"))
    assert data["design"]["kind"] == "pairs" and [v["label"] for v in data["variants"]] == ["base", "A"]
    with Library(isolated_library) as lib:
        assert lib.db.execute("SELECT count(*) FROM experiments").fetchone()[0] == 0


def test_token_windows_follow_the_models_family(isolated_library):
    """FLUX.1 reads the prompt with T5 (512 tokens): a term past CLIP's 77 is not cut off there, and
    one past T5's window is; SD (no model) keeps CLIP's window."""
    import promptkit
    from promptkit.service.matrix import plan_matrix

    with Library(isolated_library) as lib:
        promptkit.build_prompt(lib, subject=", ".join(f"detail {i}" for i in range(40)), save="long")
        promptkit.build_prompt(lib, subject=", ".join(f"detail {i}" for i in range(300)), save="longer")
        clip = plan_matrix(lib, "long", ["golden hour"])
        flux = plan_matrix(lib, "long", ["golden hour"], model="black-forest-labs/FLUX.1-dev")
        flux_longer = plan_matrix(lib, "longer", ["golden hour"], model="black-forest-labs/FLUX.1-dev")
    (clip_term,), (flux_term,), (longer_term,) = clip["tokens"], flux["tokens"], flux_longer["tokens"]
    assert clip_term["limit"] == 75 and clip_term["cut_off_in"] == ["A"]
    assert flux_term["limit"] > 500 and flux_term["cut_off_in"] == []
    assert flux_term["tokenizer"].startswith("approximate")  # a hub id: no local tokenizer to count with
    assert longer_term["cut_off_in"] == ["A"]
