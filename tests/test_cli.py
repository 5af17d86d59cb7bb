import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.library import Library

README = Path(__file__).resolve().parent.parent / "README.md"


def run(*args, ok=True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def library_state(db: Path) -> str:
    """A digest of every row of every table, to check that a command changed nothing."""
    if not db.exists():
        return "absent"
    with Library(db, create=False) as lib:
        digest = hashlib.sha256()
        for table in sorted(lib.db.table_names()):
            for row in sorted(repr(r) for r in lib.db.execute(f"SELECT * FROM [{table}]")):
                digest.update(row.encode())
        return digest.hexdigest()


def test_build_save_search_show(isolated_library):
    out = json.loads(run("build", "--subject", "a lighthouse", "--style", "watercolor", "--quality", "8k",
                         "--save", "lh", "--tag", "sea", "--json").output)
    assert out["id"] == 1 and out["positive"].startswith("a lighthouse, watercolor painting")
    assert out["tokens"]["positive"] > 0 and out["tokens"]["limit"] == 75
    assert isinstance(out["findings"], list)
    found = json.loads(run("search", "lighthouse", "--json").output)
    assert [p["name"] for p in found] == ["lh"]
    shown = json.loads(run("show", "lh", "--json").output)
    assert shown["tags"] == ["sea"] and shown["generations"] == []


def test_build_flags_long_prompt():
    subject = ", ".join(f"thing{i}" for i in range(50))
    out = json.loads(run("build", "--subject", subject, "--json").output)
    assert out["tokens"]["positive"] > 75
    assert any("past the 75-token window" in f["message"] and "thing49" in f["message"] and f["level"] == "warning"
               for f in out["findings"])


def test_generate_rate_show_reproduce(isolated_library, tiny_model):
    run("build", "--subject", "a lighthouse", "--save", "lh")
    gens = json.loads(run("generate", "lh", "--model", tiny_model, "--seeds", "1-3", "--steps", "2",
                          "--batch-size", "2", "--json").output)
    assert [g["seed"] for g in gens] == [1, 2, 3]
    assert all(Path(g["image_path"]).is_file() and len(g["image_sha256"]) == 64 for g in gens)
    run("rate", str(gens[0]["id"]), "4", "--note", "nice")
    shown = json.loads(run("show", "lh", "--json").output)
    assert shown["generations"][0]["ratings"][0]["stars"] == 4
    assert shown["generations"][2]["batch"] == {"size": 1, "index": 0, "seeds": [3]}
    result = json.loads(run("reproduce", str(gens[1]["id"]), "--json").output)
    assert result["match"] is True


def test_template_escape_writes_nothing(isolated_library, tmp_path):
    tdir = tmp_path / "evil"
    tdir.mkdir()
    (tdir / "evil.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    run("init")
    before = library_state(isolated_library)
    result = run("build", "--subject", "x", "--template", "evil", "--templates", str(tdir), "--save", "e", ok=False)
    assert result.exit_code == 1
    assert "sandbox" in result.output and len(result.output.strip().splitlines()) == 1
    assert library_state(isolated_library) == before


BAD_INPUTS = [
    (["build", "--subject", "x", "--style", "watercolour", "--save", "a"], "unknown style preset 'watercolour'"),
    (["generate", "lh", "--model", "{model}", "--sampler", "Euler b"], "unknown sampler 'Euler b'"),
    (["generate", "lh", "--model", "{model}", "--steps", "0"], "--steps must be"),
    (["generate", "lh", "--model", "{model}", "--cfg", "-1"], "--cfg must be"),
    (["generate", "lh", "--model", "{model}", "--width", "65"], "multiple of 8 but is 65"),
    (["generate", "lh", "--model", "{model}", "--seeds", "9-1"], "runs backwards"),
    (["generate", "lh", "--model", "./no/such/model"], "not found"),
    (["generate", "999", "--model", "{model}"], "no prompt with id or name '999'"),
    (["generate", "lh", "--model", "{model}", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["rate", "999", "3"], "no generation with id 999"),
    (["rate", "1", "9"], "stars must be 1 to 5"),
    (["show", "nope"], "no prompt with id or name 'nope'"),
    (["reproduce", "999"], "no generation with id 999"),
    (["build", "--subject", "x", "--set", "novalue"], "NAME=VALUE"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_one_line_nonzero_library_unchanged(isolated_library, tiny_model, args, message):
    run("build", "--subject", "a lighthouse", "--save", "lh")
    before = library_state(isolated_library)
    args = [a.replace("{model}", tiny_model) for a in args]
    result = run(*args, ok=False)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0]
    assert library_state(isolated_library) == before


def test_read_commands_do_not_create_a_library(isolated_library):
    result = run("search", "x", ok=False)
    assert result.exit_code == 1 and "promptkit init" in result.output
    assert not isolated_library.exists()


def test_presets_and_templates_json():
    presets = json.loads(run("presets", "--kind", "style", "--json").output)
    assert {p["name"] for p in presets} >= {"watercolor", "cinematic", "concept-art"}
    assert all(p["kind"] == "style" and p["description"] for p in presets)
    templates = json.loads(run("templates", "--json").output)
    assert {"default", "photo", "base"} <= {t["name"] for t in templates}


def _commands(group, prefix=""):
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        yield full, command
        if hasattr(command, "commands"):
            yield from _commands(command, full + " ")


def test_every_command_has_help_and_is_in_the_readme():
    readme = README.read_text()
    for name, command in _commands(main):
        assert command.help or command.short_help, name
        assert f"promptkit {name}" in readme, f"`promptkit {name}` missing from README"
        assert run(*name.split(), "--help").output.startswith("Usage:")


def test_delete_a_prompt_and_what_keeps_one(isolated_library, tiny_model):
    run("build", "--subject", "a heron", "--save", "heron")
    run("build", "--subject", "a crane", "--save", "crane")
    run("build", "--subject", "an egret", "--save", "egret")
    run("generate", "heron", "--model", tiny_model, "--seeds", "1-2", "--steps", "2", "--no-engine")
    gens = json.loads(run("show", "heron", "--json").output)["generations"]
    run("rate", str(gens[0]["id"]), "4")
    run("iterate", "crane", "--subject", "a grey crane", "--no-generate", "--name", "crane-2")
    run("build", "--subject", "a stork", "--save", "stork")
    run("ab", "new", "birds", "--variant", "A=stork", "--variant", "B=egret", "--seeds", "1")
    # Refusals: one line each, and the library exactly as it was.
    before = library_state(isolated_library)
    for args, message in [(["heron"], "has 2 images; pass --with-images"),
                          (["crane"], "has 1 iteration"),
                          (["stork", "--with-images"], "is a variant of experiment 'birds'"),
                          (["nope"], "no prompt with id or name 'nope'")]:
        result = run("delete", *args, ok=False)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
    assert library_state(isolated_library) == before
    # An unused prompt goes, and search no longer finds it (the FTS index follows).
    assert json.loads(run("delete", "crane-2", "--json").output)["generations_deleted"] == 0
    assert "crane-2" not in run("search", "grey").output
    # With --with-images: rows and ratings go; the image files stay until doctor --fix.
    files = [Path(g["image_path"]) for g in gens]
    out = json.loads(run("delete", "heron", "--with-images", "--json").output)
    assert out["generations_deleted"] == 2 and out["ratings_deleted"] == 1
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == 0 and lib.db["ratings"].count == 0
        assert [r["name"] for r in lib.list_prompts()] == ["stork", "egret", "crane"]
    assert all((isolated_library.parent / f).is_file() or f.is_file() for f in files)
    report = json.loads(run("doctor", "--json", ok=False).output)
    assert sum(f["check"] == "orphan_file" for f in report["findings"]) == 2
