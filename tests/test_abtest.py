"""A/B experiments with the tiny pipeline: paired cells, resumable runs, votes, sheets."""

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from promptkit.experiments import (ExperimentProblem, VariantSpec, add_seeds, cells, create_experiment, get_experiment,
                              missing_cells, next_pair, parse_variant, record_vote, run_experiment, undo_last_vote)
from promptkit.cli import main
from promptkit.generation import GenerationJob, run_job
from promptkit.errors import LibraryProblem
from promptkit.library import Library
from promptkit.params import GenerationParams
from promptkit.sheets import contact_sheet
from promptkit.templates import Fields, PromptBuilder

PARAMS = GenerationParams(steps=3, cfg=6.0, sampler="Euler")


@pytest.fixture
def lib(isolated_library):
    with Library(isolated_library) as library:
        builder = PromptBuilder()
        for name, style in (("A", "watercolor"), ("B", "cinematic"), ("C", "sketch")):
            library.save_prompt(builder.render(Fields(subject="a fox", style=[style])), name=name)
        yield library


def _experiment(lib, name="exp", labels=("A", "B"), seeds=(1, 2, 3, 4), **kw):
    specs = [VariantSpec(label, label) for label in labels]
    create_experiment(lib, name, specs, list(seeds), PARAMS, **kw)
    return get_experiment(lib, name)


def test_parse_variant():
    assert parse_variant("B=fox:cfg=9,sampler=Euler a") == VariantSpec("B", "fox", {"cfg": 9.0, "sampler": "Euler a"})
    assert parse_variant("A=my prompt") == VariantSpec("A", "my prompt", {})
    with pytest.raises(Exception, match="LABEL=PROMPT"):
        parse_variant("nolabel")
    with pytest.raises(Exception, match="cannot override 'seed'"):
        parse_variant("A=x:seed=3")


def test_two_variants_four_seeds_paired_cell_by_cell(lib, tiny_engine):
    experiment = _experiment(lib)
    outcome = run_experiment(lib, tiny_engine, "exp", batch_size=4)
    assert len(outcome.generations) == 8
    done = cells(lib, experiment)
    assert sorted(done) == [(label, s) for label in "AB" for s in (1, 2, 3, 4)]
    rows = list(lib.db.query("SELECT variant, seed, steps, cfg, sampler, width, height FROM generations"))
    by_label = {label: sorted((r["seed"], r["steps"], r["cfg"], r["sampler"], r["width"]) for r in rows
                              if r["variant"] == label) for label in "AB"}
    assert by_label["A"] == by_label["B"]  # same seeds and parameters; only the prompt differs


def test_one_writer_serves_every_variant(lib, tiny_engine, monkeypatch):
    """Variant A's images are written while B denoises: one writer thread for the whole run."""
    from promptkit import generation
    from promptkit.experiments import runs

    started = []
    monkeypatch.setattr(runs, "start_writer", lambda *a: started.append(generation.start_writer(*a)) or started[-1])
    _experiment(lib, labels=("A", "B", "C"), seeds=(1, 2))
    outcome = run_experiment(lib, tiny_engine, "exp", batch_size=2)
    assert len(started) == 1 and not started[0].is_alive()
    ids = [g["id"] for g in outcome.generations]
    assert ids == sorted(ids) and len(ids) == 6
    rows = lib.db.query("SELECT variant, prompt_id, experiment_id FROM generations")
    assert {(r["variant"], r["prompt_id"]) for r in rows} == {(k, lib.get_prompt(k)["id"]) for k in "ABC"}
    assert outcome.timings["png_encode"] > 0 and outcome.timings["database"] > 0


def test_a_failing_writer_stops_the_run_with_one_line(lib, tiny_engine, monkeypatch):
    import sqlite3

    def broken(self, row):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Library, "add_generation", broken)
    _experiment(lib, seeds=(1, 2))
    with pytest.raises(LibraryProblem, match=r"saving images to .* failed: OperationalError: disk I/O error"):
        run_experiment(lib, tiny_engine, "exp", batch_size=1)
    monkeypatch.undo()
    assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == 0


@pytest.mark.parametrize("batch_size", [1, 4])
def test_experiment_cell_equals_prompt_alone_when_batches_match(lib, tiny_engine, batch_size):
    _experiment(lib)
    run_experiment(lib, tiny_engine, "exp", batch_size=batch_size)
    alone = run_job(lib, tiny_engine, GenerationJob(prompt=lib.get_prompt("A"), params=PARAMS, seeds=[1, 2, 3, 4],
                                                    batch_size=batch_size)).generations
    done = cells(lib, get_experiment(lib, "exp"))
    for gen in alone:
        assert done[("A", gen["seed"])]["image_sha256"] == gen["image_sha256"]


def test_variant_against_itself_gives_identical_images(lib, tiny_engine):
    create_experiment(lib, "self", [VariantSpec("A", "A"), VariantSpec("A2", "A")], [5, 6], PARAMS)
    run_experiment(lib, tiny_engine, "self", batch_size=2)
    done = cells(lib, get_experiment(lib, "self"))
    for seed in (5, 6):
        assert done[("A", seed)]["image_sha256"] == done[("A2", seed)]["image_sha256"]


def test_interrupted_run_resumes_only_missing_cells(lib, tiny_engine, monkeypatch):
    _experiment(lib)
    calls = {"n": 0}
    original = type(tiny_engine).run_batch

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny_engine), "run_batch", flaky)
    with pytest.raises(RuntimeError, match="power cut"):
        run_experiment(lib, tiny_engine, "exp", batch_size=2)
    experiment = get_experiment(lib, "exp")
    assert sum(len(v) for v in missing_cells(lib, experiment).values()) == 4
    monkeypatch.setattr(type(tiny_engine), "run_batch", original)
    resumed = run_experiment(lib, tiny_engine, "exp", batch_size=2)
    assert len(resumed.generations) == 4
    assert all(not seeds for seeds in missing_cells(lib, experiment).values())
    assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == 8
    assert run_experiment(lib, tiny_engine, "exp").generations == []


def test_adding_seeds_extends_every_variant(lib, tiny_engine):
    _experiment(lib, seeds=(1, 2))
    run_experiment(lib, tiny_engine, "exp")
    assert add_seeds(lib, "exp", [2, 3, 4]) == [3, 4]
    outcome = run_experiment(lib, tiny_engine, "exp")
    assert sorted((g["seed"]) for g in outcome.generations) == [3, 3, 4, 4]


def test_votes_next_pair_and_undo(lib, tiny_engine):
    _experiment(lib, seeds=(1, 2))
    run_experiment(lib, tiny_engine, "exp")
    pair = next_pair(lib, "exp")
    assert pair["voted"] == 0 and pair["total"] == 2
    assert {pair["left"]["label"], pair["right"]["label"]} == {"A", "B"}
    vote = record_vote(lib, "exp", pair["seed"], pair["right"]["label"], pair["left"]["label"],
                       pair["right"]["label"])
    row = lib.db.execute("SELECT left_generation_id, right_generation_id, winner_generation_id FROM votes").fetchone()
    assert row[0] == pair["left"]["id"] and row[1] == pair["right"]["id"] and row[2] == pair["right"]["id"]
    assert next_pair(lib, "exp")["voted"] == 1
    record_vote(lib, "exp", 2 if pair["seed"] == 1 else 1, "tie")
    assert next_pair(lib, "exp") is None
    assert undo_last_vote(lib, "exp")["winner"] == "tie"
    assert undo_last_vote(lib, "exp")["id"] == vote["id"]
    with pytest.raises(ExperimentProblem, match="no votes"):
        undo_last_vote(lib, "exp")


def test_sheet_three_variants_four_seeds(lib, tiny_engine, tmp_path):
    _experiment(lib, labels=("A", "B", "C"))
    run_experiment(lib, tiny_engine, "exp")
    record_vote(lib, "exp", 1, "B", "A", "B")
    info = contact_sheet(lib, "exp", tmp_path / "sheet.png")
    assert info["tiles"] == 12 and info["generated"] == 12
    with Image.open(tmp_path / "sheet.png") as image:
        assert image.format == "PNG"
        # 3 columns and 4 rows of tiles of at least 160 px, plus labels
        assert image.width >= 3 * 160 and image.height >= 4 * 160


def cli(*args, input=None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, input=input)


def test_cli_experiment_end_to_end(lib, tiny_model):
    assert cli("ab", "new", "e1", "--variant", "A=A", "--variant", "B=B:cfg=9", "--seeds", "1-2", "--steps", "2",
               "--model", tiny_model).exit_code == 0
    out = json.loads(cli("ab", "run", "e1", "--json").output)
    assert len(out) == 4
    assert cli("ab", "vote", "e1", "--seed", "1", "--winner", "B").exit_code == 0
    stats = json.loads(cli("ab", "stats", "e1", "--json").output)
    pair = stats["pairs"][0]
    assert (pair["a"], pair["b"], pair["wins_a"], pair["wins_b"], pair["ties"]) == ("A", "B", 0, 1, 0)
    for key in ("win_rate_b", "ci_low", "ci_high", "p_value", "verdict"):
        assert key in pair
    assert "not enough evidence" in pair["verdict"]
    shown = json.loads(cli("ab", "show", "e1", "--json").output)
    assert shown["variants"][1]["overrides"] == {"cfg": 9.0} and len(shown["cells"]) == 4
    assert json.loads(cli("ab", "list", "--json").output)[0]["votes"] == 1
    result = cli("ab", "vote", "e1", input="1\nq\n")
    assert result.exit_code == 0 and "1 votes recorded" in result.output
    assert cli("ab", "undo", "e1").exit_code == 0
    assert cli("ab", "sheet", "e1", "-o", "sheet.png").exit_code == 0


@pytest.mark.parametrize("args,message", [
    (["ab", "new", "e2", "--variant", "A=A"], "at least two variants"),
    (["ab", "new", "e1", "--variant", "A=A", "--variant", "B=B"], "already exists"),
    (["ab", "new", "e3", "--variant", "A=A", "--variant", "A=B"], "used twice"),
    (["ab", "new", "e3", "--variant", "A=A", "--variant", "B=nosuch"], "no prompt with id or name 'nosuch'"),
    (["ab", "vote", "e1", "--seed", "1", "--winner", "Z"], "no variant 'Z'"),
    (["ab", "vote", "e1", "--seed", "99", "--winner", "A"], "seed 99 is not in experiment"),
    (["ab", "vote", "e1", "--seed", "2", "--winner", "A"], "seed 2 was not generated"),
    (["ab", "stats", "nope"], "no experiment named 'nope'"),
    (["ab", "xy", "g", "--prompt", "A", "--x", "cfg=3,7", "--y", "style=watercolour"], "unknown style preset"),
    (["ab", "xy", "g", "--prompt", "A", "--x", "cfg=3,7", "--y", "cfg=1"], "must differ"),
])
def test_bad_input_writes_nothing(lib, tiny_engine, args, message):
    create_experiment(lib, "e1", [VariantSpec("A", "A"), VariantSpec("B", "B")], [1, 2], PARAMS)
    job = GenerationJob(prompt=lib.get_prompt("A"), params=PARAMS, seeds=[1], experiment_id=get_experiment(lib, "e1")["id"],
                        variant="A")
    run_job(lib, tiny_engine, job)
    job.variant, job.prompt = "B", lib.get_prompt("B")
    run_job(lib, tiny_engine, job)
    counts = {t: lib.db[t].count for t in ("prompts", "experiments", "variants", "generations", "votes")}
    result = cli(*args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert {t: lib.db[t].count for t in counts} == counts


def test_iterate_and_history(lib, tiny_model):
    cli("generate", "A", "--model", tiny_model, "--seeds", "3,4", "--steps", "2", "--batch-size", "2")
    out = json.loads(cli("iterate", "A", "--set", "style=oil-painting", "--name", "A2", "--json").output)
    assert out["fields"]["style"] == {"from": ["watercolor"], "to": ["oil-painting"]}
    assert "oil painting" in out["positive"]["added"] and "watercolor painting" in out["positive"]["removed"]
    assert [g["seed"] for g in out["generations"]] == [3, 4]
    child = lib.get_prompt("A2")
    assert child["parent_id"] == lib.get_prompt("A")["id"]
    gen = lib.get_generation(out["generations"][0]["id"])
    assert (gen["steps"], gen["sampler"]) == (2, "DPM++ 2M Karras")
    tree = json.loads(cli("history", "A2", "--json").output)
    assert [a["id"] for a in tree["ancestors"]] == [lib.get_prompt("A")["id"]]
    tree = json.loads(cli("history", "A", "--json").output)
    assert tree["descendants"][0]["id"] == child["id"]


def test_xy_grid_experiment(lib, tiny_model, tmp_path):
    result = cli("ab", "xy", "grid", "--prompt", "A", "--x", "cfg=3,7", "--y", "style=watercolor,sketch",
                 "--seeds", "1", "--steps", "2", "--model", tiny_model, "--json")
    data = json.loads(result.output)
    assert len(data["variants"]) == 4
    assert {v["overrides"].get("cfg") for v in data["variants"]} == {3.0, 7.0}
    assert cli("ab", "run", "grid", "-q").exit_code == 0
    info = json.loads(cli("ab", "sheet", "grid", "-o", str(tmp_path / "g.png"), "--json").output)
    assert info["tiles"] == 4
    seed_axis = json.loads(cli("ab", "xy", "g2", "--prompt", "A", "--x", "seed=1-3", "--y", "steps=2,3",
                               "--json").output)
    assert seed_axis["seeds"] == [1, 2, 3] and len(seed_axis["variants"]) == 2
