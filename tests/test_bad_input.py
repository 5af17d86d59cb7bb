"""Bad input everywhere: a one-line error that names the file, a non-zero exit, nothing changed."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from promptkit.cli import main
from promptkit.library import Library
from promptkit.templates import Fields, PromptBuilder

# Every command that opens the library, with arguments that are fine apart from the library.
COMMANDS = [
    ["init"],
    ["prompts"],
    ["search", "fox"],
    ["show", "1"],
    ["rate", "1", "3"],
    ["build", "--subject", "a fox", "--save", "fox"],
    ["doctor"],
    ["export", "{tmp}/export-out"],
    ["import", "{tmp}/good-export"],
    ["import-png", "{tmp}/good.png"],
    ["import-images", "{tmp}/good.png"],
    ["generate", "1", "--model", "{tmp}/no-model-needed"],
]


def _bad_folder(path: Path) -> None:
    path.mkdir()


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"PNG? no. SQLite? no. Just bytes.\n" * 200)


def _foreign_sqlite(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
    conn.commit()
    conn.close()


@pytest.fixture
def good_inputs(tmp_path):
    """A valid export folder and a valid A1111 PNG, so the library is the only thing wrong."""
    source = tmp_path / "source.db"
    with Library(source) as lib:
        lib.save_prompt(PromptBuilder().render(Fields(subject="a fox")), name="fox")
    result = CliRunner().invoke(main, ["--db", str(source), "export", str(tmp_path / "good-export")])
    assert result.exit_code == 0, result.output
    info = PngInfo()
    info.add_text("parameters", "a fox\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512")
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png", pnginfo=info)
    return tmp_path


@pytest.mark.parametrize("make_bad", [_bad_folder, _not_sqlite, _foreign_sqlite],
                         ids=["folder", "not-sqlite", "foreign-sqlite"])
@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_unusable_library_path(good_inputs, command, make_bad):
    tmp = good_inputs
    db = tmp / "bad.db"
    make_bad(db)
    snapshot = _snapshot(tmp)
    args = [a.replace("{tmp}", str(tmp)) for a in command]
    result = CliRunner().invoke(main, ["--db", str(db), *args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "bad.db" in lines[0]
    assert _snapshot(tmp) == snapshot  # nothing created, nothing changed


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_truncated_library_is_reported_by_doctor(isolated_library):
    with Library(isolated_library) as lib:
        builder = PromptBuilder()
        for i in range(200):
            lib.save_prompt(builder.render(Fields(subject=f"prompt {i} " + "padding " * 30)))
    data = isolated_library.read_bytes()
    isolated_library.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert any(f["check"] == "integrity" for f in report["findings"])


def test_text_that_is_not_unicode_is_a_one_line_error(isolated_library):
    # What Python makes of a command-line argument holding bytes that are not UTF-8.
    result = CliRunner().invoke(main, ["build", "--subject", "caf\udce9", "--save", "x"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "field 'subject' is not valid text" in lines[0]
    assert not isolated_library.exists()


def test_export_folder_problems(isolated_library, tmp_path):
    CliRunner().invoke(main, ["build", "--subject", "x", "--save", "x"])
    for target, message in [(tmp_path / "missing" / "out", "does not exist"),
                            (isolated_library, "it is a file")]:
        result = CliRunner().invoke(main, ["export", str(target)])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and str(target) in lines[0]
    assert not (tmp_path / "missing").exists()
    shutil.rmtree(tmp_path / "library-images", ignore_errors=True)


@pytest.mark.parametrize("args, message", [
    (["ab", "new", "exp", "--variant", "A=A", "--variant", "B=nope"], "no prompt"),
    (["ab", "new", "taken", "--variant", "A=A", "--variant", "B=A"], "already exists"),
    (["ab", "xy", "exp", "--prompt", "nope", "--x", "cfg=3,7", "--y", "steps=2,3"], "no prompt"),
    (["ab", "xy", "taken", "--prompt", "A", "--x", "cfg=3,7", "--y", "steps=2,3"], "already exists"),
])
def test_a_refused_experiment_stores_no_input_image(isolated_library, tmp_path, args, message):
    """`ab new` / `ab xy` with --init-image: a bad prompt or name leaves the library's files as they were."""
    runner = CliRunner()
    assert runner.invoke(main, ["build", "--subject", "a heron", "--save", "A"]).exit_code == 0
    assert runner.invoke(main, ["ab", "new", "taken", "--variant", "A=A", "--variant", "B=A"]).exit_code == 0
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "init.png")
    images = isolated_library.with_name("library-images")
    before = sorted(p for p in images.rglob("*")) if images.exists() else []
    result = runner.invoke(main, [*args, "--init-image", str(tmp_path / "init.png")])
    assert result.exit_code != 0 and message in result.output and len(result.output.strip().splitlines()) == 1
    after = sorted(p for p in images.rglob("*")) if images.exists() else []
    assert after == before
