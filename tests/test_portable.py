"""export / import: a lossless round trip, no duplicates, and nothing written from a bad export."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from promptkit.library import Library, migration_names
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.errors import LibraryProblem
from promptkit.library import Library
from promptkit.portable import TABLES, export_library, import_library

# Foreign keys, by table: column -> the table it points into.
REFERENCES = {
    "prompts": {"parent_id": "prompts"},
    "experiments": {},
    "variants": {"experiment_id": "experiments", "prompt_id": "prompts"},
    "generations": {"prompt_id": "prompts", "experiment_id": "experiments"},
    "ratings": {"generation_id": "generations"},
    "votes": {"experiment_id": "experiments", "left_generation_id": "generations",
              "right_generation_id": "generations", "winner_generation_id": "generations"},
}


def cli(*args, db=None):
    prefix = ["--db", str(db)] if db else []
    result = CliRunner().invoke(main, [*prefix, *args], catch_exceptions=False)
    return result


def library_content(db: Path) -> dict:
    """Every row of every table with ids replaced by the content of the row they name (so two
    libraries compare equal when they hold the same data under different ids), and each
    generation's image_path replaced by the sha256 of the bytes found there."""
    with Library(db, create=False) as lib:
        raw = {t: [dict(r) for r in lib.db.query(f"SELECT * FROM [{t}] ORDER BY rowid")] for t in TABLES}
        folder = lib.path.parent
    by_id: dict[str, dict] = {t: {} for t in TABLES}

    def resolve(table, row):
        out = {}
        for column, value in row.items():
            if column == "id":
                continue
            target = REFERENCES[table].get(column)
            if target and value is not None:
                value = by_id[target][value]
            if table == "generations" and column == "image_path":
                value = hashlib.sha256((folder / value).read_bytes()).hexdigest()
            out[column] = value
        return tuple(sorted(out.items(), key=lambda kv: kv[0]))

    content = {}
    for table in ("prompts", "experiments", "variants", "generations", "ratings", "votes"):
        rows = raw[table]
        if table == "prompts":  # parents first, so a child can name its parent's content
            pending = list(rows)
            while pending:
                for row in list(pending):
                    if row["parent_id"] is None or row["parent_id"] in by_id["prompts"]:
                        by_id["prompts"][row["id"]] = resolve(table, row)
                        pending.remove(row)
        for row in rows:
            resolved = resolve(table, row)
            if "id" in row:
                by_id[table][row["id"]] = resolved
        content[table] = sorted(repr(resolve(table, row)) for row in rows)
    return content


def image_files(db: Path) -> dict[str, bytes]:
    folder = db.with_name(f"{db.stem}-images")
    return {p.name: p.read_bytes() for p in folder.rglob("*.png")}


def test_round_trip_is_lossless_and_importing_twice_adds_nothing(populated_library, tmp_path):
    export = tmp_path / "export"
    out = json.loads(cli("export", str(export), "--json").output)
    counts = {"prompts": 3, "experiments": 1, "variants": 2, "generations": 6, "ratings": 2, "votes": 2,
              "images": 5}
    assert out["counts"] == counts
    assert out["format"] == "promptkit-export" and out["schema"] == migration_names(Library.migrations)[-1]
    assert sorted(p.name for p in export.iterdir()) == sorted(
        ["manifest.json", "images"] + [f"{t}.jsonl" for t in TABLES])
    assert len(list((export / "images").iterdir())) == 5
    for line in (export / "generations.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert (export / "images" / f"{row['image_sha256']}.png").is_file()

    # Another library, with another name, so image paths must be remapped too.
    other = tmp_path / "elsewhere" / "mine.db"
    other.parent.mkdir()
    summary = json.loads(cli("import", str(export), "--json", db=other).output)
    assert summary["added"] == {t: counts[t] for t in TABLES}
    assert summary["images_added"] == 5 and summary["renamed"] == []

    original = library_content(populated_library)
    copy = library_content(other)
    assert copy == original
    rows = sum(len(v) for v in original.values())
    assert rows == 16
    assert image_files(other) == image_files(populated_library)
    with Library(other) as lib:  # the library reads the copy as it reads the original
        lh = lib.show_prompt("lh")
        assert lh["tags"] == ["sea", "night"] and lh["notes"] == "first try"
        assert lib.get_prompt("lh2")["starred"] == 1
        assert lib.get_prompt("lh2")["parent_id"] == lh["id"]
        assert [p["name"] for p in lib.search("ünïcode")] == [None]
        for gen in lib.db.query("SELECT * FROM generations"):
            assert gen["image_path"].startswith("mine-images/")

    again = json.loads(cli("import", str(export), "--json", db=other).output)
    assert sum(again["added"].values()) == 0 and again["images_added"] == 0
    assert sum(again["present"].values()) == rows
    assert library_content(other) == original
    # Importing a library's own export into itself adds nothing either.
    assert sum(json.loads(cli("import", str(export), "--json").output)["added"].values()) == 0
    assert library_content(populated_library) == original


def test_merge_into_a_library_with_its_own_rows(populated_library, tmp_path):
    export = tmp_path / "export"
    cli("export", str(export))
    other = tmp_path / "other.db"
    from promptkit.templates import Fields, PromptBuilder

    with Library(other) as lib:
        mine = lib.save_prompt(PromptBuilder().render(Fields(subject="something else")), name="lh")
    result = cli("import", str(export), db=other)
    assert result.exit_code == 0, result.output
    assert "renamed prompt 'lh' to 'lh (imported)'" in result.output
    with Library(other) as lib:
        assert lib.get_prompt("lh")["id"] == mine
        assert lib.get_prompt("lh (imported)")["positive"].startswith("a lighthouse")
        assert lib.db["prompts"].count == 4 and lib.db["generations"].count == 6


def _library_state(db: Path):
    return library_content(db), image_files(db)


@pytest.mark.parametrize("damage, message", [
    (lambda e: (e / "manifest.json").unlink(), "no manifest.json"),
    (lambda e: (e / "manifest.json").write_text("{not json"), "unreadable manifest"),
    (lambda e: _edit_manifest(e, format_version=99), "format version 99 is newer"),
    (lambda e: _edit_manifest(e, schema="m999_future"), "schema 'm999_future'"),
    (lambda e: _corrupt_first_image(e), "image content has sha256"),
    (lambda e: next((e / "images").iterdir()).unlink(), "image missing or unreadable"),
    (lambda e: (e / "ratings.jsonl").write_text("{}\n"), "ratings.jsonl': its sha256 does not match"),
    (lambda e: _rewrite_table(e, "ratings", lambda rows: rows[:1]), "1 rows but the manifest says 2"),
    (lambda e: _rewrite_table(e, "ratings", lambda rows: rows + ["not json"]), "ratings.jsonl:3': not JSON"),
    (lambda e: _rewrite_table(e, "generations", lambda rows: [_set(rows[0], prompt_id=99)] + rows[1:]),
     "prompt_id 99 is not a prompts row"),
    (lambda e: _rewrite_table(e, "prompts", lambda rows: [_set(rows[0], parent_id=3)] + rows[1:]),
     "parent links form a cycle"),
    (lambda e: _rewrite_table(e, "prompts", lambda rows: [_set(rows[0], evil="x")] + rows[1:]), "unknown column"),
])
def test_bad_export_is_one_line_error_and_imports_nothing(populated_library, tmp_path, damage, message):
    export = tmp_path / "export"
    cli("export", str(export))
    damage(export)
    other = tmp_path / "other.db"
    Library(other).close()
    before = _library_state(other)
    result = CliRunner().invoke(main, ["--db", str(other), "import", str(export)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0] and "nothing was imported" in lines[0]
    assert _library_state(other) == before
    absent = tmp_path / "absent.db"
    assert CliRunner().invoke(main, ["--db", str(absent), "import", str(export)]).exit_code == 1
    assert not absent.exists()  # checked before the library is even created


def _edit_manifest(export: Path, **changes):
    manifest = json.loads((export / "manifest.json").read_text())
    manifest.update(changes)
    (export / "manifest.json").write_text(json.dumps(manifest))


def _corrupt_first_image(export: Path):
    image = sorted((export / "images").iterdir())[0]
    image.write_bytes(image.read_bytes()[:-10] + b"0123456789")


def _set(line: str, **changes) -> str:
    return json.dumps(dict(json.loads(line), **changes))


def _rewrite_table(export: Path, table: str, change):
    """Change a table file and keep the manifest's sha256 in step, as a careless hand edit would not."""
    path = export / f"{table}.jsonl"
    lines = change(path.read_text().splitlines())
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(data)
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["tables"][table]["sha256"] = hashlib.sha256(data).hexdigest()
    (export / "manifest.json").write_text(json.dumps(manifest))


def test_export_refuses_a_non_empty_folder_and_a_damaged_library(populated_library, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export", str(busy)])
    assert result.exit_code == 1 and "exists and is not empty" in result.output
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]

    with Library(populated_library) as lib:
        gen = lib.get_generation(2)
        lib.image_path(gen).write_bytes(b"tampered")
        with pytest.raises(LibraryProblem, match="does not match its sha256; run `promptkit doctor`"):
            export_library(lib, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no staging left behind


def test_empty_folder_is_a_fine_export_target(populated_library, tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    with Library(populated_library) as lib:
        export_library(lib, target)
    assert (target / "manifest.json").is_file()
    other = tmp_path / "fresh.db"
    with Library(other) as lib:
        summary = import_library(lib, target)
    assert summary["added"]["generations"] == 6
    shutil.rmtree(target)


def test_two_raters_identical_votes_both_travel(populated_library, tmp_path):
    """A second rater's vote identical to one already imported (same pair, winner and moment) is a new vote:
    importing it adds it, and importing again adds nothing."""
    other = tmp_path / "other.db"
    assert json.loads(cli("import", str(_export(tmp_path / "first")), "--json", db=other).output)["added"]["votes"] == 2
    with Library(populated_library) as lib, lib.write():
        vote = next(lib.db.query("SELECT * FROM votes ORDER BY id LIMIT 1"))
        vote.pop("id")
        lib.db["votes"].insert(dict(vote, rater="bo"))
    export = _export(tmp_path / "second")
    summary = json.loads(cli("import", str(export), "--json", db=other).output)
    assert summary["added"]["votes"] == 1 and summary["present"]["votes"] == 2
    with Library(other) as lib:
        assert sorted(r["rater"] for r in lib.db.query("SELECT rater FROM votes")) == ["bo", "me", "me"]
    again = json.loads(cli("import", str(export), "--json", db=other).output)
    assert again["added"]["votes"] == 0 and again["present"]["votes"] == 3


def _export(folder: Path) -> Path:
    assert json.loads(cli("export", str(folder), "--json").output)["counts"]["votes"] >= 2
    return folder
