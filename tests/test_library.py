import sqlite3

import pytest

from promptkit.errors import BadParameter, LibraryProblem, NotFound
from promptkit.library import KNOWN_MIGRATIONS, Library, images_dir_for, migrations
from promptkit.templates import Fields, PromptBuilder


def _prompt(subject="a lighthouse", **kw):
    return PromptBuilder().render(Fields(subject=subject, **kw))


def test_migrations_create_the_schema(isolated_library):
    with Library(isolated_library) as lib:
        assert not migrations.pending(lib.db)
        assert lib.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert lib.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = set(lib.db.table_names())
        assert {"prompts", "generations", "ratings", "experiments", "variants", "votes", "prompts_fts"} <= tables
        gen_cols = {c.name for c in lib.db["generations"].columns}
        assert {"prompt_id", "seed", "batch", "image_sha256", "image_path", "model_hash", "versions"} <= gen_cols
    assert images_dir_for(isolated_library).name == "library-images"


def test_reopening_is_idempotent(isolated_library):
    Library(isolated_library).close()
    with Library(isolated_library) as lib:
        assert lib.schema_version() == KNOWN_MIGRATIONS[-1]


def test_foreign_key_columns_are_indexed(isolated_library):
    """m002: every foreign-key child column leads some index, so deletes and lookups by it search."""
    with Library(isolated_library) as lib:
        assert "m002_foreign_key_indexes" in [m.name for m in migrations.applied(lib.db)]
        for table in ("prompts", "generations", "ratings", "variants", "votes"):
            leading = {index.columns[0] for index in lib.db[table].indexes}
            leading |= {lib.db[table].pks[0]}
            for fk in lib.db[table].foreign_keys:
                assert fk.column in leading, f"{table}.{fk.column} has no index"
        plan = lib.db.execute("EXPLAIN QUERY PLAN SELECT id FROM prompts WHERE parent_id = 1").fetchall()
        assert "idx_prompts_parent_id" in plan[0][-1]


def test_search_ranks_best_match_first(isolated_library):
    with Library(isolated_library) as lib:
        weak = lib.save_prompt(_prompt("a fox in a forest of tall pine trees under a grey sky"))
        strong = lib.save_prompt(_prompt("fox, fox"), name="fox-study", tags=["fox"])
        lib.save_prompt(_prompt("a lighthouse"))
        assert [r["id"] for r in lib.search("fox")] == [strong, weak]
        assert [r["id"] for r in lib.search("fox", limit=1)] == [strong]


def test_save_get_search(isolated_library):
    with Library(isolated_library) as lib:
        pid = lib.save_prompt(_prompt("a red fox in snow"), name="fox", tags=["animals"])
        lib.save_prompt(_prompt("a lighthouse"))
        assert lib.get_prompt("fox")["id"] == pid
        assert lib.get_prompt(pid)["fields"]["subject"] == "a red fox in snow"
        assert [r["id"] for r in lib.search("fox")] == [pid]
        assert [r["id"] for r in lib.search("animals")] == [pid]
        assert lib.search('"unbalanced') == []  # FTS syntax in a query is quoted, not an error
        with pytest.raises(NotFound, match="'nope'"):
            lib.get_prompt("nope")
        with pytest.raises(BadParameter, match="already exists"):
            lib.save_prompt(_prompt(), name="fox")


def test_newer_library_is_refused_unchanged(isolated_library):
    with Library(isolated_library) as lib:
        lib.db["_sqlite_migrations"].insert({"migration_set": "promptkit", "name": "m999_future",
                                             "applied_at": "2030"})
    before = isolated_library.read_bytes()
    with pytest.raises(LibraryProblem, match="newer promptkit"):
        Library(isolated_library)
    assert isolated_library.read_bytes() == before


def test_bad_library_paths(tmp_path):
    with pytest.raises(LibraryProblem, match="is a folder"):
        Library(tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryProblem, match="junk.db"):
        Library(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 100
    with pytest.raises(LibraryProblem, match="does not exist"):
        Library(tmp_path / "nofolder" / "x.db")
    with pytest.raises(LibraryProblem, match="promptkit init"):
        Library(tmp_path / "missing.db", create=False)


def test_row_refused_without_file(isolated_library):
    with Library(isolated_library) as lib:
        pid = lib.save_prompt(_prompt())
        with pytest.raises(LibraryProblem, match="not on disk"):
            lib.add_generation({"prompt_id": pid, "seed": 1, "image_sha256": "0" * 64, "image_path": "x.png"})


def test_rating_bounds(isolated_library):
    with Library(isolated_library) as lib:
        with pytest.raises(BadParameter, match="1 to 5"):
            lib.rate(1, 6)
        with pytest.raises(NotFound):
            lib.rate(123, 3)


def test_second_writer_waits_instead_of_failing(isolated_library):
    with Library(isolated_library) as one, Library(isolated_library) as two:
        two.conn.execute("PRAGMA busy_timeout=3000")
        one.conn.execute("BEGIN IMMEDIATE")
        import threading

        timer = threading.Timer(0.3, lambda: one.conn.execute("COMMIT"))
        timer.start()
        pid = two.save_prompt(_prompt("waited"))
        timer.join()
        assert two.get_prompt(pid)["positive"].startswith("waited")
