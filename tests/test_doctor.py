"""`promptkit doctor`: finds what is inconsistent, fixes only what is safe to fix."""

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils.migrations import Migrations

from promptkit.cli import main
from promptkit.doctor import diagnose, fix_library, quarantine_dir_for
from promptkit.library import Library, migration_names


def doctor(*args):
    result = CliRunner().invoke(main, ["doctor", *args], catch_exceptions=False)
    return result.exit_code, result.output


def doctor_json(*args):
    code, output = doctor(*args, "--json")
    return code, json.loads(output)


def _generations(db):
    with Library(db) as lib:
        return list(lib.db.query("SELECT * FROM generations ORDER BY id"))


def _age(path: Path, seconds: float = 3600) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_healthy_library_is_ok(populated_library):
    code, report = doctor_json()
    assert code == 0 and report["ok"] is True
    assert report["findings"] == []
    assert report["counts"] == {"generations": 6, "referenced_files": 5, "files_hashed": 5, "files_on_disk": 5}
    assert report["schema"]["version"] == migration_names(Library.migrations)[-1] and report["schema"]["pending"] == []
    code, text = doctor()
    assert code == 0 and "ok: the library is consistent" in text


def test_finds_every_kind_of_damage_and_fixes_only_strays(populated_library):
    images = populated_library.with_name("library-images")
    gens = _generations(populated_library)
    missing = populated_library.parent / gens[0]["image_path"]
    missing.unlink()
    tampered = populated_library.parent / gens[1]["image_path"]
    tampered.write_bytes(tampered.read_bytes() + b"tampered")
    orphan = images / "ab" / ("ab" * 32 + ".png")
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"an image no row refers to")
    temp = images / gens[2]["image_sha256"][:2] / ".tmp-k3j2h1.png"
    temp.write_bytes(b"half a write")
    for path in (orphan, temp, tampered):
        _age(path)

    code, report = doctor_json()
    assert code == 1 and report["ok"] is False
    by_check = {f["check"]: f for f in report["findings"]}
    assert set(by_check) == {"missing_file", "sha256_mismatch", "orphan_file", "temp_file"}
    assert by_check["missing_file"]["path"] == str(missing.resolve())
    assert by_check["sha256_mismatch"]["path"] == str(tampered.resolve())
    assert by_check["orphan_file"]["path"] == str(orphan)
    assert by_check["temp_file"]["path"] == str(temp)
    code, text = doctor()
    assert code == 1 and "run `promptkit doctor --fix` to move 2 stray file(s)" in text

    referenced_before = {p: p.read_bytes() for p in _files(images) if p not in (orphan, temp)}
    code, report = doctor_json("--fix")
    assert code == 1  # the missing and the tampered image cannot be fixed by moving files
    quarantine = Path(report["quarantine"])
    assert quarantine.parent == quarantine_dir_for(populated_library)
    moved = json.loads((quarantine / "moved.json").read_text())
    assert {(m["reason"], Path(m["from"])) for m in moved} == {("orphan_file", orphan), ("temp_file", temp)}
    assert (quarantine / orphan.relative_to(images)).read_bytes() == b"an image no row refers to"
    assert (quarantine / temp.relative_to(images)).read_bytes() == b"half a write"
    # Every file a row refers to is where it was, byte for byte, the tampered one included.
    assert {p: p.read_bytes() for p in _files(images)} == referenced_before

    code, report = doctor_json()
    assert code == 1
    assert {f["check"] for f in report["findings"]} == {"missing_file", "sha256_mismatch"}


def test_fix_leaves_young_strays_for_a_write_in_progress(populated_library):
    orphan = populated_library.with_name("library-images") / "cd" / ("cd" * 32 + ".png")
    orphan.parent.mkdir(exist_ok=True)  # a real image may already live under cd/
    orphan.write_bytes(b"just stored; its row is not committed yet")
    code, report = doctor_json("--fix")
    assert code == 1 and orphan.is_file()
    (finding,) = report["findings"]
    assert "younger than 600 s" in finding["action"] and not finding["fixed"]
    code, report = doctor_json("--fix", "--min-age", "0")
    assert code == 0 and not orphan.exists() and report["findings"][0]["fixed"]


def test_fix_never_moves_a_file_a_row_gained_meanwhile(populated_library, monkeypatch):
    import promptkit.doctor

    with Library(populated_library) as lib:
        sha, file = lib.store_image(b"\x89PNG stand-in bytes")
        _age(file)
        stale = diagnose(populated_library)
        assert [f.check for f in stale.findings] == ["orphan_file"]
        # A writer records a row for the file after doctor looked, before it moves anything.
        lib.add_generation(dict(_generations(populated_library)[0], id=None, image_sha256=sha,
                                image_path=lib.relative_image_path(file)))
    monkeypatch.setattr(promptkit.doctor, "diagnose", lambda path: stale)
    report = fix_library(populated_library, min_age_seconds=0)
    assert file.is_file() and report.findings[0].action == "left in place: a generation now refers to it"
    assert not report.findings[0].fixed


def test_foreign_key_violation_is_reported(populated_library):
    conn = sqlite3.connect(populated_library)
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("INSERT INTO ratings (generation_id, stars, note, created_at) VALUES (999, 3, '', 'now')")
    conn.commit()
    conn.close()
    code, report = doctor_json()
    assert code == 1
    assert [f["message"] for f in report["findings"]] == [
        "ratings row 3 refers to a generations row that does not exist"]


def test_damaged_database_is_reported_not_crashed(isolated_library):
    from promptkit.templates import Fields, PromptBuilder

    with Library(isolated_library) as lib:
        builder = PromptBuilder()
        for i in range(300):
            lib.save_prompt(builder.render(Fields(subject=f"prompt number {i} " + "words " * 20)))
    data = bytearray(isolated_library.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[5 * page: 5 * page + 300] = b"\xff" * 300  # a b-tree page header: garbage page type, cell counts
    isolated_library.write_bytes(bytes(data))
    code, report = doctor_json()
    assert code == 1
    assert any(f["check"] == "integrity" for f in report["findings"]), report["findings"]


def test_schema_newer_and_older(populated_library, monkeypatch):
    with Library(populated_library) as lib:
        lib.db["_sqlite_migrations"].insert({"migration_set": "promptkit", "name": "m999_future", "applied_at": "x"})
    code, report = doctor_json("--fix")
    assert code == 1 and report["schema"]["unknown"] == ["m999_future"]
    assert "newer promptkit" in report["findings"][0]["message"]
    conn = sqlite3.connect(populated_library)
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm999_future'")
    conn.commit()
    conn.close()

    future = Migrations("promptkit")
    for migration in Library.migrations._migrations:
        future(name=migration.name)(migration.fn)
    future(name="m900_next")(lambda db: None)
    monkeypatch.setattr(Library, "migrations", future)
    before = populated_library.read_bytes()
    code, report = doctor_json()
    assert code == 0 and report["schema"]["pending"] == ["m900_next"]
    assert "migrates it, after saving a backup copy" in report["findings"][0]["message"]
    assert populated_library.read_bytes() == before  # doctor itself never migrates


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b"not a database at all" * 50), "file is not a database"),
    (lambda p: None, "no library at"),
])
def test_unusable_paths_are_one_line_errors(tmp_path, make, message):
    target = tmp_path / "lib.db"
    make(target)
    result = CliRunner().invoke(main, ["--db", str(target), "doctor"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "lib.db" in lines[0]


def test_inputs_stored_for_an_experiment_not_yet_run_are_not_orphans(isolated_library, tiny_model, tmp_path):
    """`ab new --init-image` stores the image before any cell exists: doctor --fix must leave it."""
    from PIL import Image

    def cli(*args):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    Image.new("RGB", (64, 64), (30, 120, 200)).save(tmp_path / "init.png")
    cli("build", "--subject", "a heron", "--save", "A")
    cli("build", "--subject", "a crane", "--save", "B")
    cli("ab", "new", "birds", "--variant", "A=A", "--variant", "B=B", "--seeds", "1", "--steps", "2",
        "--model", tiny_model, "--init-image", str(tmp_path / "init.png"), "--strength", "0.5")
    images = isolated_library.with_name("library-images")
    stored = _files(images)
    assert len(stored) == 1
    for path in stored:
        _age(path)
    code, report = doctor_json("--fix", "--min-age", "0")
    assert code == 0 and report["findings"] == [] and _files(images) == stored
    assert report["counts"]["referenced_files"] == 1 and report["counts"]["generations"] == 0
    # The stored input travels with an export, so the experiment runs in the other library too.
    cli("export", str(tmp_path / "out"))
    other = tmp_path / "other.db"
    cli("--db", str(other), "import", str(tmp_path / "out"))
    cli("--db", str(other), "ab", "run", "birds")
    assert len(_generations(other)) == 2
    cli("ab", "run", "birds")
    assert len(_generations(isolated_library)) == 2
    assert sorted(g["image_sha256"] for g in _generations(other)) == \
        sorted(g["image_sha256"] for g in _generations(isolated_library))
    (next(iter(stored))).write_bytes(b"damaged")
    code, report = doctor_json()
    mismatch = [f for f in report["findings"] if f["check"] == "sha256_mismatch"]
    assert code != 0 and any("generation" in f["message"] for f in mismatch)
    assert any("experiment 'birds'" in f["message"] for f in mismatch)
