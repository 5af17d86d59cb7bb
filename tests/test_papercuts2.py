"""Issue 18's papercuts: experiments deleted and renamed, doctor advice that works, rating notes,
readable X/Y labels, names in history, flags named in errors."""

import json
from pathlib import Path

from click.testing import CliRunner

from promptkit.cli import main
from promptkit.library import Library
from sample_library import EXPERIMENT_LABELS
from test_cli import library_state


def run(*args, ok=True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def refused(args, message, db):
    before = library_state(db)
    result = run(*args, ok=False)
    assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert library_state(db) == before


def test_ab_new_checks_the_model_before_writing(isolated_library):
    run("build", "--subject", "a stork", "--save", "stork")
    run("build", "--subject", "an egret", "--save", "egret")
    refused(["ab", "new", "birds", "--variant", "A=stork", "--variant", "B=egret", "--model", "./no-such-model"],
            "model './no-such-model' not found", isolated_library)
    refused(["ab", "xy", "grid", "--prompt", "stork", "--x", "cfg=3,7", "--model", "/nowhere/model.safetensors"],
            "not found", isolated_library)


def test_ab_delete_and_rename(experiment_library):
    db = experiment_library
    label = EXPERIMENT_LABELS[0]
    run("ab", "vote", "sky", "--seed", "1", "--winner", label)
    refused(["ab", "delete", "sky"], "experiment 'sky' has 8 images; pass --with-images", db)
    refused(["ab", "delete", "nope"], "no experiment named 'nope'", db)
    refused(["ab", "rename", "sky", "trio"], "an experiment named 'trio' already exists", db)
    refused(["ab", "rename", "sky", "42"], "is not allowed", db)
    refused(["ab", "rename", "nope", "other"], "no experiment named 'nope'", db)
    out = json.loads(run("ab", "rename", "sky", "sky 2", "--json").output)
    assert out["old_name"] == "sky" and out["name"] == "sky 2"
    assert json.loads(run("ab", "show", "sky 2", "--json").output)["name"] == "sky 2"
    text = run("ab", "delete", "sky 2", "--with-images").output
    assert "deleted experiment 'sky 2' with 8 generation rows, 1 votes" in text
    assert "promptkit doctor --fix" in text
    with Library(db) as lib:
        assert [e["name"] for e in lib.experiment_summaries()] == ["trio"]
        assert lib.db["votes"].count == 0
        assert lib.db["generations"].count == 6  # trio's
        names = {p["name"] for p in lib.list_prompts()}
    assert {"sky-plain", "sky-fancy"} <= names  # the variants' prompts stay
    # The advice works as given: the files no row uses any more are moved now, exit 0.
    report = json.loads(run("doctor", "--fix", "--json").output)
    assert report["quarantine"] and any(f["fixed"] for f in report["findings"])


def test_delete_with_images_advice_works_at_once(isolated_library, tiny_model):
    run("build", "--subject", "a heron", "--save", "heron")
    gens = json.loads(run("generate", "heron", "--model", tiny_model, "--seeds", "1-2", "--steps", "2",
                          "--width", "64", "--height", "64", "--no-engine", "--json").output)
    out = run("delete", "heron", "--with-images").output
    assert "`promptkit doctor --fix`" in out
    result = run("doctor", "--fix")
    assert "moved" in result.output
    for gen in gens:
        assert not (isolated_library.parent / gen["image_path"]).exists()
    assert run("doctor").exit_code == 0


def test_xy_labels_read_as_words_and_one_axis_is_enough(isolated_library, tiny_model, tmp_path):
    run("build", "--subject", "a stork", "--save", "stork")
    data = json.loads(run("ab", "xy", "grid", "--prompt", "stork", "--x", "cfg=3,7.5", "--y", "sampler=Euler a,DDIM",
                          "--json").output)
    labels = [v["label"] for v in data["variants"]]
    assert labels == ["cfg 3 · Euler a", "cfg 7.5 · Euler a", "cfg 3 · DDIM", "cfg 7.5 · DDIM"]
    styles = json.loads(run("ab", "xy", "looks", "--prompt", "stork", "--x", "style=watercolor+sketch,sketch",
                            "--json").output)
    assert [v["label"] for v in styles["variants"]] == ["style watercolor+sketch", "style sketch"]
    # One axis, run, a sheet, and a vote naming a label with spaces.
    run("ab", "xy", "one", "--prompt", "stork", "--x", "cfg=3,7", "--seeds", "1", "--steps", "2", "--width", "64",
        "--height", "64", "--model", tiny_model)
    run("ab", "run", "one", "-q", "--no-engine")
    assert json.loads(run("ab", "sheet", "one", "-o", str(tmp_path / "one.png"), "--json").output)["tiles"] == 2
    vote = json.loads(run("ab", "vote", "one", "--seed", "1", "--winner", "cfg 7", "--json").output)
    assert vote["seed"] == 1
    assert "cfg 7" in json.dumps(json.loads(run("ab", "stats", "one", "--json").output))
    # Labels typed with --variant keep their old rules (an old X/Y label is still a valid label).
    run("build", "--subject", "an egret", "--save", "egret")
    old = json.loads(run("ab", "new", "old", "--variant", "cfg3.0_samplerEuler-a=stork", "--variant", "B=egret",
                         "--json").output)
    assert old["variants"][0]["label"] == "cfg3.0_samplerEuler-a"


def test_rating_note_is_shown_and_searchable(isolated_library):
    from fastapi.testclient import TestClient

    from promptkit.web import create_app
    from sample_library import add_picture

    run("build", "--subject", "a lighthouse", "--save", "light")
    run("build", "--subject", "a fox", "--save", "fox")
    with Library(isolated_library) as lib:
        gen = add_picture(lib, lib.get_prompt("light"), 3, size=64)
    run("rate", str(gen), "5", "--note", "best sky")
    assert "note: best sky" in run("show", "light").output
    assert json.loads(run("show", "light", "--json").output)["generations"][0]["note"] == "best sky"
    assert [p["name"] for p in json.loads(run("search", "sky", "--json").output)] == ["light"]
    assert [p["name"] for p in json.loads(run("search", "fox", "--json").output)] == ["fox"]
    with TestClient(create_app(isolated_library), base_url="http://127.0.0.1:8765",
                    headers={"Sec-Fetch-Site": "same-origin"}) as client:
        page = client.get("/prompts/light")
        assert page.status_code == 200 and "best sky" in page.text


def test_errors_name_the_flag_typed_and_the_api_keeps_its_names(isolated_library, tiny_model, tmp_path):
    import pytest

    from promptkit.errors import BadParameter
    from promptkit.params import GenerationParams, parse_batch_size

    run("build", "--subject", "a lighthouse", "--save", "lh")
    for args, message in [(["--batch-size", "0"], "--batch-size must be at least 1"),
                          (["--batch-size", "many"], "--batch-size must be a whole number"),
                          (["--steps", "0"], "--steps must be a whole number above 0"),
                          (["--cfg", "-2"], "--cfg must be 0 or more")]:
        result = run("generate", "lh", "--model", tiny_model, *args, ok=False)
        assert result.exit_code == 1 and message in result.output and "`" not in result.output, result.output
    with pytest.raises(BadParameter, match="`batch_size`"):
        parse_batch_size("0")
    with pytest.raises(BadParameter, match="`steps`"):
        GenerationParams(steps=0)


def test_history_names_export_votes_and_a_double_ctrl_c(experiment_library, monkeypatch, tmp_path):
    import promptkit.cli.generate as generate_module
    from sample_library import add_picture

    run("iterate", "sky-plain", "--subject", "a lighthouse at noon", "--no-generate", "--name", "noon")
    out = run("history", "noon").output
    assert "[sky-plain]" in out and "[noon]" in out
    run("ab", "vote", "sky", "--seed", "1", "--winner", EXPERIMENT_LABELS[0])
    assert ", 1 votes and " in run("export", str(tmp_path / "out")).output

    def interrupted_twice(lib, prompt, *args, **kwargs):
        add_picture(lib, lib.get_prompt(prompt), 11, size=64)  # saved before the second Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_module.service, "generate", interrupted_twice)
    result = run("generate", "noon", "--model", "whatever/model", ok=False)
    assert result.exit_code == 130
    assert "stopped at once (second Ctrl-C): 1 image saved" in result.output and "Aborted" not in result.output
