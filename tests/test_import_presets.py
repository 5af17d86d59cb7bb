"""`promptkit presets import`: A1111 styles.csv, Fooocus and InvokeAI style files as presets; lenient names."""

import json

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.errors import UnknownPreset
from promptkit.templates import Fields, PromptBuilder

STYLES_CSV = ('name,prompt,negative_prompt\n'
              '"Cinematic Noir","cinematic still of {prompt}, film noir, high contrast","color, {prompt}"\n'
              'Pastel,"pastel colors, soft light",harsh\n')
FOOOCUS = [{"name": "sai-anime", "prompt": "anime artwork {prompt} . anime style, vibrant",
            "negative_prompt": "photo, deformed"}]
INVOKE = [{"name": "Dreamy Fog", "type": "user",
           "preset_data": {"positive_prompt": "{prompt}, dreamy fog, ethereal", "negative_prompt": "sharp"}}]


@pytest.fixture
def templates(tmp_path, monkeypatch):
    folder = tmp_path / "my-templates"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return folder


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_a1111_styles_csv_with_prompt_placement(tmp_path, templates):
    (tmp_path / "styles.csv").write_text(STYLES_CSV, encoding="utf-8")
    result = run("presets", "import", str(tmp_path / "styles.csv"), "--templates", str(templates), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["format"], data["imported"], data["names"]) == ("a1111 styles.csv", 2, ["Cinematic Noir", "Pastel"])
    builder = PromptBuilder(templates)
    noir = builder.preset("style", "cinematic noir")
    assert noir.name == "Cinematic Noir" and noir.source.startswith("a1111 styles.csv: ")
    assert noir.source == "a1111 styles.csv: styles.csv"  # where it came from, without a local path
    assert str(tmp_path) not in (templates / "presets" / "style.json").read_text(encoding="utf-8")
    prompt = builder.render(Fields(subject="a detective", style=["cinematic_noir", "PASTEL"], negative_preset=""))
    assert prompt.positive == "cinematic still of a detective, pastel colors, soft light, film noir, high contrast"
    assert prompt.negative == "color, harsh"
    listed = json.loads(run("presets", "--kind", "style", "--templates", str(templates), "--json").output)
    assert {p["name"]: p.get("source", "") for p in listed}["Pastel"].startswith("a1111 styles.csv")


def test_fooocus_and_invokeai_style_files(tmp_path, templates):
    (tmp_path / "sdxl_styles_sai.json").write_text(json.dumps(FOOOCUS), encoding="utf-8")
    (tmp_path / "invoke.json").write_text(json.dumps(INVOKE), encoding="utf-8")
    assert run("presets", "import", str(tmp_path / "sdxl_styles_sai.json"), "--templates", str(templates)).exit_code == 0
    result = run("presets", "import", str(tmp_path / "invoke.json"), "--templates", str(templates), "--json")
    assert json.loads(result.output)["format"] == "invokeai json"
    builder = PromptBuilder(templates)
    anime = builder.render(Fields(subject="a cat", style=["SAI Anime"], negative_preset=""))
    assert anime.positive == "anime artwork a cat . anime style, vibrant" and anime.negative == "photo, deformed"
    assert builder.preset("style", "dreamy-fog").source.startswith("invokeai json: ")
    again = json.loads(run("presets", "import", str(tmp_path / "invoke.json"), "--templates", str(templates),
                           "--json").output)
    assert again["replaced"] == 1  # importing the same file twice keeps one preset of each name
    stored = json.loads((templates / "presets" / "style.json").read_text(encoding="utf-8"))
    assert sorted(p["name"] for p in stored) == ["Dreamy Fog", "sai-anime"]


def test_default_folder_is_read_by_every_command(tmp_path, templates):
    (tmp_path / "styles.csv").write_text(STYLES_CSV, encoding="utf-8")
    assert run("presets", "import", str(tmp_path / "styles.csv")).exit_code == 0
    built = run("build", "--subject", "a tower", "--style", "pastel")
    assert built.exit_code == 0 and "pastel colors" in built.output


def test_names_match_leniently_and_unknown_suggests():
    builder = PromptBuilder()
    assert builder.preset("style", "oil painting").name == "oil-painting"
    assert builder.preset("style", "Oil_Painting").name == "oil-painting"
    with pytest.raises(UnknownPreset, match=r"unknown style preset 'oil paintng'; did you mean 'oil-painting'\?"):
        builder.preset("style", "oil paintng")
    result = run("build", "--subject", "x", "--style", "oil painting")
    assert result.exit_code == 0 and "oil painting, visible brush strokes" in result.output


def test_bad_style_files_are_one_line(tmp_path, templates):
    (tmp_path / "bad.csv").write_text("title,text\na,b\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    for name in ("bad.csv", "bad.json", "missing.csv"):
        result = run("presets", "import", str(tmp_path / name), "--templates", str(templates))
        assert result.exit_code != 0 and "Traceback" not in result.output and result.output.count("\n") <= 2
