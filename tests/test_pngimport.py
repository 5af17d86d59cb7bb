"""import-png: AUTOMATIC1111 / Civitai PNGs and promptkit's own, duplicates skipped, bad files refused."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from promptkit.cli import main
from promptkit.library import Library

A1111_TEXT = (
    "a castle on a hill, (masterpiece:1.2), <lora:detail:0.6>\n"
    "BREAK golden hour\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 12345, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, RNG: NV, Version: v1.10.1"
)


def write_png(path: Path, parameters: str | None = None, itxt: bool = False) -> Path:
    info = PngInfo()
    if parameters is not None:
        if itxt:
            info.add_itxt("parameters", parameters)
        else:
            info.add_text("parameters", parameters)
    Image.new("RGB", (16, 16), "navy").save(path, pnginfo=info)
    return path


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_a1111_png_becomes_a_prompt_with_its_settings(isolated_library, tmp_path):
    png = write_png(tmp_path / "castle.png", A1111_TEXT)
    result = run("import-png", str(png), "--json")
    assert result.exit_code == 0, result.output
    (added,) = json.loads(result.output)
    assert added["status"] == "added" and added["source"] == "a1111"
    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(added["prompt_id"])
    assert prompt["template"] == "imported" and prompt["template_digest"] == ""
    assert prompt["positive"] == "a castle on a hill, (masterpiece:1.2), <lora:detail:0.6>\nBREAK golden hour"
    assert prompt["negative"] == "blurry, lowres"
    assert prompt["fields"]["subject"] == prompt["positive"]
    assert prompt["fields"]["negative"] == ["blurry, lowres"]
    settings = prompt["fields"]["imported"]["settings"]
    assert settings["RNG"] == "NV" and settings["Seed"] == "12345" and settings["Schedule type"] == "Karras"
    assert prompt["fields"]["imported"]["parameters"] == A1111_TEXT
    assert prompt["notes"].startswith("imported from castle.png: Steps: 28, Sampler: DPM++ 2M")
    assert "RNG: NV" in prompt["notes"]
    assert prompt["tags"] == ["imported"]

    again = run("import-png", str(png))
    assert again.exit_code == 0 and "skipped, same prompt as prompt 1" in again.output
    copy = write_png(tmp_path / "copy.png", A1111_TEXT.replace("Seed: 12345", "Seed: 999"), itxt=True)
    assert "skipped" in run("import-png", str(copy)).output  # same prompt text, another seed
    with Library(isolated_library) as lib:
        assert lib.db["prompts"].count == 1


def test_civitai_unicode_itxt_and_several_files_at_once(isolated_library, tmp_path):
    one = write_png(tmp_path / "one.png", "château sous la neige ❄\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
                                          "Seed: 1, Size: 512x512", itxt=True)
    two = write_png(tmp_path / "two.png", "a fox\nNegative prompt: text\nSteps: 20, Sampler: Euler, CFG scale: 7, "
                                          "Seed: 2, Size: 512x512")
    result = run("import-png", str(one), str(two), str(one), "--json")
    assert [r["status"] for r in json.loads(result.output)] == ["added", "added", "skipped"]
    with Library(isolated_library) as lib:
        assert [p["positive"] for p in lib.list_prompts()] == ["a fox", "château sous la neige ❄"]
        assert [p["id"] for p in lib.search("château")]


def test_promptkit_png_uses_its_own_chunk(populated_library, tmp_path):
    with Library(populated_library) as lib:
        gen = lib.get_generation(3)
        source = lib.get_prompt(gen["prompt_id"])
        png = lib.image_path(gen)
    # In the library it came from, it is the prompt it was made from.
    result = json.loads(run("import-png", str(png), "--json").output)
    assert result == [{"file": str(png), "status": "skipped", "prompt_id": source["id"], "source": "promptkit",
                       "reason": f"same prompt as prompt {source['id']}"}]
    # In another library it arrives with its template, digest and fields.
    other = tmp_path / "other.db"
    (added,) = json.loads(run("--db", str(other), "import-png", str(png), "--json").output)
    assert added["status"] == "added" and added["settings"]["Seed"] == 7 and added["settings"]["RNG"] == "CPU"
    with Library(other) as lib:
        prompt = lib.get_prompt(added["prompt_id"])
    for key in ("positive", "negative", "template", "template_digest", "fields"):
        assert prompt[key] == source[key]
    assert "Seed: 7" in prompt["notes"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"GIF89a not a png"), "is not a PNG"),
    (lambda p: p.write_bytes(_a1111_bytes(p)[:-30]), "truncated"),
    (lambda p: p.write_bytes(_a1111_bytes(p)[:100]), "truncated"),
    (lambda p: write_png(p), "has no `parameters` text chunk"),
    (lambda p: write_png(p, "a castle\nSteps: many, Seed: 1, Size: 512x512"), "'Steps' is not a number"),
    (lambda p: write_png(p, "Negative prompt: only\nSteps: 2, Seed: 1, Size: 8x8"), "has no prompt"),
    (lambda p: None, "No such file"),
    (lambda p: p.mkdir(), "bad.png"),
])
def test_bad_files_are_one_line_errors_and_import_nothing(isolated_library, tmp_path, make, message):
    good = write_png(tmp_path / "good.png", A1111_TEXT)
    bad = tmp_path / "bad.png"
    make(bad)
    result = run("import-png", str(good), str(bad))
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0] and "bad.png" in lines[0]
    assert not isolated_library.exists()  # nothing imported; the library was not even created


def _a1111_bytes(path: Path) -> bytes:
    write_png(path, A1111_TEXT)
    return path.read_bytes()
