"""Schema versions: newer refused, older migrated only after a backup, foreign databases left alone."""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils.migrations import Migrations

from promptkit.errors import LibraryProblem
from promptkit.library import Library, migration_names

LATEST = migration_names(Library.migrations)[-1]  # the newest schema this promptkit writes
from promptkit.templates import Fields, PromptBuilder


def _prompt(subject):
    return PromptBuilder().render(Fields(subject=subject))


def _library_with_m002(m002):
    """A Library class whose schema is the real m001 plus a test-only m002: opening a library
    made by today's promptkit with it is exactly what opening an old library looks like."""
    future = Migrations("promptkit")
    for migration in Library.migrations._migrations:
        future(name=migration.name)(migration.fn)
    future(name="m002_test_only")(m002)
    return type("NextLibrary", (Library,), {"migrations": future})


def _add_colour_column(db):
    db["prompts"].add_column("colour", str)


def _rows(conn, table):
    return conn.execute(f"SELECT * FROM [{table}] ORDER BY rowid").fetchall()


def _backups(db_path):
    return sorted(p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name + ".backup-"))


def test_older_library_is_backed_up_then_migrated(isolated_library):
    with Library(isolated_library) as lib:
        parent = lib.save_prompt(_prompt("a lighthouse"), name="lh", tags=["sea"])
        lib.save_prompt(_prompt("a lighthouse at night"), parent_id=parent)
        before = _rows(lib.conn, "prompts")
    NextLibrary = _library_with_m002(_add_colour_column)

    with NextLibrary(isolated_library) as lib:
        assert lib.schema_version() == "m002_test_only"
        assert "colour" in {c.name for c in lib.db["prompts"].columns}
        assert [row[:-1] for row in _rows(lib.conn, "prompts")] == before  # migrated rows keep their data
        backup = lib.backup_path

    assert _backups(isolated_library) == [backup]
    assert re.fullmatch(rf"library\.db\.backup-{LATEST}-\d{{8}}T\d{{6}}Z", backup.name)
    copy = sqlite3.connect(backup)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA foreign_key_check").fetchall() == []
        assert [r[0] for r in copy.execute("SELECT name FROM _sqlite_migrations ORDER BY id")] == migration_names(Library.migrations)
        assert "colour" not in {r[1] for r in copy.execute("PRAGMA table_info(prompts)")}
        assert _rows(copy, "prompts") == before
    finally:
        copy.close()
    # The backup opens as an ordinary library of the old schema.
    with Library(backup) as old:
        assert old.schema_version() == LATEST
        assert old.get_prompt("lh")["tags"] == ["sea"]

    NextLibrary(isolated_library).close()  # nothing pending now: no second backup
    assert _backups(isolated_library) == [backup]


def test_new_library_needs_no_backup(isolated_library):
    NextLibrary = _library_with_m002(_add_colour_column)
    with NextLibrary(isolated_library) as lib:
        assert lib.schema_version() == "m002_test_only" and lib.backup_path is None
    assert _backups(isolated_library) == []


def test_failed_migration_leaves_library_unchanged_and_keeps_backup(isolated_library):
    with Library(isolated_library) as lib:
        lib.save_prompt(_prompt("a lighthouse"), name="lh")
        before = _rows(lib.conn, "prompts")

    def broken(db):
        db["prompts"].add_column("colour", str)
        raise RuntimeError("simulated failure half way")

    with pytest.raises(LibraryProblem, match=r"m002_test_only failed .*simulated.*unchanged; a backup is at"):
        _library_with_m002(broken)(isolated_library)
    with Library(isolated_library) as lib:
        assert lib.schema_version() == LATEST
        assert "colour" not in {c.name for c in lib.db["prompts"].columns}
        assert _rows(lib.conn, "prompts") == before
    assert len(_backups(isolated_library)) == 1


def test_foreign_sqlite_database_is_refused_unchanged(tmp_path):
    other = tmp_path / "notes.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    with pytest.raises(LibraryProblem, match=r"notes\.db.*not a promptkit library.*notes"):
        Library(other)
    assert other.read_bytes() == before


def test_read_only_open_refuses_writes_naming_the_file(isolated_library):
    with Library(isolated_library) as lib:
        lib.save_prompt(_prompt("a lighthouse"), name="lh")
        before = _rows(lib.conn, "prompts")
    with Library(isolated_library, read_only=True) as lib:
        assert lib.get_prompt("lh")["positive"].startswith("a lighthouse")
        with pytest.raises(LibraryProblem, match=r"library\.db' is read-only"):
            lib.save_prompt(_prompt("a fox"), name="fox")
    with Library(isolated_library) as lib:
        assert _rows(lib.conn, "prompts") == before


def test_read_only_open_does_not_migrate(isolated_library):
    Library(isolated_library).close()
    with pytest.raises(LibraryProblem, match="needs migrating to m002_test_only"):
        _library_with_m002(_add_colour_column)(isolated_library, read_only=True)
    with Library(isolated_library) as lib:
        assert lib.schema_version() == LATEST


def _as_user_that_chmod_binds():
    """A command prefix under which file permissions apply: nothing for an ordinary user; for
    root, setpriv dropping the capabilities that let root ignore them. None when neither works."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search,-fowner"
    prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
    probe = subprocess.run(prefix + ["true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def _a1111_png(folder: Path) -> Path:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a heron\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512")
    path = folder / "heron.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("what, command", [
    ("file", ["build", "--subject", "a fox", "--save", "fox"]),
    ("folder", ["build", "--subject", "a fox", "--save", "fox"]),
    ("file", ["import-png", "{png}"]),
])
def test_chmod_read_only_library_gives_one_line_error(isolated_library, what, command):
    prefix = _as_user_that_chmod_binds()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod does not stop root writing; "
                    "test_read_only_open_refuses_writes_naming_the_file covers the read-only path")
    with Library(isolated_library) as lib:
        lib.save_prompt(_prompt("a lighthouse"), name="lh")
    folder = isolated_library.parent
    png = _a1111_png(folder)
    os.chmod(isolated_library, 0o444)
    if what == "folder":
        os.chmod(folder, 0o555)  # SQLite cannot even create the -shm file a WAL reader needs
    try:
        before = isolated_library.read_bytes()
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        cmd = prefix + [sys.executable, "-m", "promptkit", "--db", str(isolated_library),
                        *[arg.replace("{png}", str(png)) for arg in command]]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder, timeout=60)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "library.db' is read-only" in lines[0]
        assert isolated_library.read_bytes() == before
    finally:
        os.chmod(folder, 0o755)
        os.chmod(isolated_library, 0o644)
    with Library(isolated_library) as lib:
        assert [p["name"] for p in lib.list_prompts()] == ["lh"]
