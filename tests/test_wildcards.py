"""Wildcards (promptkit.wildcards): each syntax form, random mode, the refusals, and wildcard experiments."""

import json

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.library import Library
from promptkit.wildcards import MAX_VARIANTS, WildcardProblem, expand


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "wildcards"
    (root / "animals").mkdir(parents=True)
    (root / "colors.txt").write_text("red\ngreen\n# a comment\n\n{dark|light} blue\n")
    (root / "animals" / "birds.txt").write_text("owl\n__colors__ parrot\n")
    (root / "loop_a.txt").write_text("__loop_b__\n")
    (root / "loop_b.txt").write_text("x __loop_a__\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    return root


def texts(text, **kw):
    return [e.text for e in expand(text, **kw)]


def test_each_form_expands_as_documented(folder):
    assert texts("a {red|green|blue} fox") == ["a red fox", "a green fox", "a blue fox"]
    assert texts("{2$$a|b|c}") == ["a, b", "a, c", "b, c"]
    assert texts("{1-2$$ and $$a|b}") == ["a", "b", "a and b"]
    assert texts("{a|{b|c}} x") == ["a x", "b x", "c x"]
    assert texts("__colors__ car", wildcards=folder) == ["red car", "green car", "dark blue car", "light blue car"]
    assert texts("a __animals/birds__", wildcards=folder)[:2] == ["a owl", "a red parrot"]
    assert texts("no wildcards here") == ["no wildcards here"]


def test_each_expansion_records_its_choices(folder):
    exp = expand("a __animals/birds__", wildcards=folder)[3]
    assert exp.text == "a dark blue parrot"
    assert exp.choices == [{"from": "__animals/birds__", "chose": "dark blue parrot"},
                           {"from": "__colors__", "chose": "dark blue"}, {"from": "{dark|light}", "chose": "dark"}]


def test_random_mode_is_seeded_and_distinct():
    first = texts("{a|b|c|d} {e|f|g}", mode="random", count=5, seed=3)
    assert first == texts("{a|b|c|d} {e|f|g}", mode="random", count=5, seed=3)
    assert len(set(first)) == 5 and set(first) <= set(texts("{a|b|c|d} {e|f|g}"))
    assert first != texts("{a|b|c|d} {e|f|g}", mode="random", count=5, seed=4)


@pytest.mark.parametrize("text,message", [
    ("__../../etc/passwd__", "outside the wildcard folder"),
    ("__../secret__", "outside the wildcard folder"),
    ("__/etc/passwd__", "outside the wildcard folder"),
    ("__loop_a__", "wildcard loop __loop_a__ → __loop_b__ → __loop_a__"),
    ("{a|b}{c|d}{e|f}{g|h}{i|j}{k|l}{m|n}", f"more than {MAX_VARIANTS} variants"),
    ("{a|b", "never closed"),
    ("{3$$a|b}", "asks for 3-3 of 2 options"),
    ("__missing__", "no wildcard file missing.txt"),
])
def test_refusals_are_one_line(folder, text, message):
    with pytest.raises(WildcardProblem, match=message.replace("$", r"\$").replace("(", r"\(")) as info:
        expand(text, wildcards=folder)
    assert "\n" not in str(info.value)


def test_output_length_is_capped():
    with pytest.raises(WildcardProblem, match="longer than 50 characters"):
        expand("{" + "x" * 60 + "|y}", max_chars=50)


def test_wildcard_experiment_records_choices_and_refusals_write_nothing(saved_prompt, isolated_library, folder):
    def counts():
        with Library(isolated_library) as lib:
            return [lib.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("prompts", "experiments")]

    before = counts()
    for text in ("__../../etc/passwd__", "__loop_a__", "{a|b}{c|d}{e|f}{g|h}{i|j}{k|l}{m|n}"):
        out = CliRunner().invoke(main, ["ab", "wildcards", "w", "--prompt", "lighthouse", "--text", text,
                                        "--wildcards", str(folder)])
        assert out.exit_code == 1 and len(out.output.strip().splitlines()) == 1, out.output
        assert "--text" in out.output
    assert counts() == before
    out = CliRunner().invoke(main, ["ab", "wildcards", "w", "--prompt", "lighthouse", "--text",
                                    "environment=__colors__", "--wildcards", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [v["label"] for v in data["variants"]] == ["red", "green", "dark blue", "light blue"]
    assert data["variants"][0]["positive"].startswith("a lighthouse, red, watercolor")
    assert data["wildcards"]["variants"]["dark blue"]["choices"][0] == {"from": "__colors__",
                                                                              "chose": "dark blue"}
    dry = CliRunner().invoke(main, ["ab", "wildcards", "w2", "--prompt", "lighthouse", "--text", "{a|b} sky",
                                    "--dry-run"])
    assert dry.exit_code == 0 and dry.output.splitlines()[0].startswith("a sky")
    field = CliRunner().invoke(main, ["ab", "wildcards", "w3", "--prompt", "lighthouse", "--text",
                                      "environment={dusk|dawn}", "--dry-run", "--json"])
    assert [row["text"] for row in json.loads(field.output)] == ["dusk", "dawn"]
    import promptkit

    assert [row["text"] for row in promptkit.expand_wildcards("style = {oil|ink} wash")] == ["oil wash", "ink wash"]
    assert counts() == [before[0] + 4, before[1] + 1]


def test_a_wildcard_term_becomes_one_matrix_term_per_option(saved_prompt, folder):
    out = CliRunner().invoke(main, ["ab", "matrix", "wm", "--prompt", "lighthouse", "--term", "{golden hour|8k}",
                                    "--term", "style=bokeh", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [t["term"] for t in data["terms"]] == ["golden hour", "8k", "style=bokeh"]
    assert len(data["variants"]) == 8
