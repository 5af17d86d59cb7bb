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


def test_a_very_broad_search_ranks_only_the_newest_matches(isolated_library, monkeypatch):
    """Past SEARCH_RANK_LIMIT matches only the newest that many are ranked (bm25 per match is the cost)."""
    with Library(isolated_library) as lib:
        best_but_old = lib.save_prompt(_prompt("fox, fox, fox"), name="old-fox", tags=["fox"])
        newer = [lib.save_prompt(_prompt(f"a fox number {n} walking through a very long and winding valley"))
                 for n in range(4)]
        lib.save_prompt(_prompt("a lighthouse"))
        assert lib.search("fox")[0]["id"] == best_but_old  # under the limit: all matches ranked
        monkeypatch.setattr("promptkit.library.SEARCH_RANK_LIMIT", 3)
        assert sorted(r["id"] for r in lib.search("fox")) == newer[-3:]
        assert [r["id"] for r in lib.search("lighthouse")] == [newer[-1] + 1]  # fewer matches: unaffected
        monkeypatch.setattr("promptkit.library.SEARCH_RANK_LIMIT", 5)
        assert lib.search("fox")[0]["id"] == best_but_old and len(lib.search("fox")) == 5


def test_save_get_search(isolated_library):
    with Library(isolated_library) as lib:
        pid = lib.save_prompt(_prompt("a red fox in snow"), name="fox", tags=["animals"])
        lib.save_prompt(_prompt("a lighthouse"))
        assert lib.get_prompt("fox")["id"] == pid
        assert lib.get_prompt(pid)["fields"]["subject"] == "a red fox in snow"
        assert [r["id"] for r in lib.search("fox")] == [pid]
        assert [r["id"] for r in lib.search("animals")] == [pid]
        assert lib.search('"unbalanced') == []  # FTS syntax in a query is quoted, not an error
        assert [r["id"] for r in lib.search("fox\x00")] == [pid] and lib.search("\x00") == []  # NUL ends FTS text
        accented = lib.save_prompt(_prompt("a heron"), tags=["oiseau élégant"])
        assert [r["id"] for r in lib.search("élégant")] == [accented]
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


def test_a_rating_changed_twice_counts_once_with_its_latest_value(isolated_library):
    """A generation's rating is its latest: show_prompt, the summaries and `show` agree."""
    from click.testing import CliRunner

    from promptkit.cli import main
    from sample_library import add_picture

    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(lib.save_prompt(_prompt(), name="lighthouse"))
        changed, steady = add_picture(lib, prompt, 1, size=32), add_picture(lib, prompt, 2, size=32)
        for stars in (2, 5, 3):  # rated, then changed twice
            lib.rate(changed, stars)
        lib.rate(steady, 4)
        shown = {g["id"]: g for g in lib.show_prompt("lighthouse")["generations"]}
        assert shown[changed]["stars"] == 3 and [r["stars"] for r in shown[changed]["ratings"]] == [2, 5, 3]
        assert shown[steady]["stars"] == 4
        assert lib.current_ratings([changed, steady, 999]) == {changed: 3, steady: 4}
        summary = lib.summarize_prompts([prompt["id"]])[prompt["id"]]
        assert summary["rated"] == 2 and summary["mean_stars"] == pytest.approx(3.5)
        assert [c["stars"] for c in summary["covers"]] == [4, 3]
    out = CliRunner().invoke(main, ["show", "lighthouse"]).output
    line = next(line for line in out.splitlines() if line.strip().startswith(f"gen {changed:>5}"))
    assert line.endswith("  ***") and "*****" not in line


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


def test_star_lineage_and_paging(isolated_library):
    with Library(isolated_library) as lib:
        root = lib.save_prompt(_prompt("a lighthouse"), name="root")
        child = lib.save_prompt(_prompt("a lighthouse at night"), parent_id=root)
        grandchild = lib.save_prompt(_prompt("a lighthouse at night, fog"), parent_id=child)
        assert lib.set_starred("root", True)["starred"] == 1
        assert [p["id"] for p in lib.list_prompts(starred_only=True)] == [root]
        assert lib.count_prompts() == 3 and lib.count_prompts(starred_only=True) == 1
        assert lib.set_starred(root, False)["starred"] == 0
        assert [p["id"] for p in lib.list_prompts(limit=2, offset=1)] == [child, root]
        lineage = lib.prompt_lineage(grandchild)
        assert [p["id"] for p in lineage["ancestors"]] == [root, child] and lineage["children"] == []
        assert [p["id"] for p in lib.prompt_lineage(root)["children"]] == [child]
        with pytest.raises(NotFound):
            lib.set_starred(999, True)


def test_ids_past_sqlite_integers_are_not_found(isolated_library):
    with Library(isolated_library) as lib:
        for call in (lambda: lib.get_prompt("9" * 30), lambda: lib.get_prompt("¹"), lambda: lib.get_generation(10**30),
                     lambda: lib.get_rating(10**30), lambda: lib.rate(10**30, 3)):
            with pytest.raises(NotFound):
                call()


def test_summaries_images_and_parameters(isolated_library):
    from sample_library import fill_sample_library

    with Library(isolated_library) as lib:
        sample = fill_sample_library(lib)
        lighthouse, fox = sample["lighthouse"]["id"], sample["fox"]["id"]
        rated = sample["generations"]["lighthouse"][0]
        lib.rate(rated, 2)  # rating again replaces the judgement: the latest counts
        summary = lib.summarize_prompts([lighthouse, fox])
        assert summary[lighthouse]["generations"] == 4 and summary[lighthouse]["rated"] == 1
        assert summary[lighthouse]["mean_stars"] == 2.0 and summary[lighthouse]["covers"][0]["id"] == rated
        assert summary[fox]["mean_stars"] is None and len(summary[fox]["covers"]) == 4
        assert lib.generation_image(rated).is_relative_to(lib.images_dir)
        assert lib.image_parameters(rated).splitlines()[-1].startswith("Steps: 20, Sampler: Euler a")
        # A row whose sha256 was replaced by a path cannot lead the image lookup out of the folder.
        lib.db.execute("UPDATE generations SET image_sha256 = '../../etc/passwd' WHERE id = ?", [rated])
        lib.conn.commit()
        with pytest.raises(NotFound, match="missing"):
            lib.generation_image(rated)


def test_m003_stores_escaped_tags_as_typed_so_search_finds_them(isolated_library):
    """A library from before tags were stored as typed: after m003, "élégant" is found."""
    with Library(isolated_library) as lib:
        heron = lib.save_prompt(_prompt("a heron"), tags=["oiseau élégant", "plain"])
        lib.save_prompt(_prompt("a crane"), tags=["plain"])
    conn = sqlite3.connect(isolated_library)
    with conn:  # what an early version wrote, and m003 not yet applied
        conn.execute("UPDATE prompts SET tags = ? WHERE id = ?", ['["oiseau \\u00e9l\\u00e9gant", "plain"]', heron])
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm003_tags_as_typed'")
    conn.close()
    with Library(isolated_library, create=False) as lib:
        assert lib.schema_version() == "m003_tags_as_typed"
        assert lib.get_prompt(heron)["tags"] == ["oiseau élégant", "plain"]
        assert [r["id"] for r in lib.search("élégant")] == [heron]
        assert lib.db.execute("SELECT tags FROM prompts WHERE id = ?", [heron]).fetchone()[0] == \
            '["oiseau élégant", "plain"]'


def test_a_generation_is_recorded_only_with_its_files_on_disk(isolated_library):
    """Checked under the write lock that `doctor --fix` holds while it moves files."""
    with Library(isolated_library) as lib:
        prompt_id = lib.save_prompt(_prompt("a heron"))
        sha, file = lib.store_image(b"an image")
        row = {"prompt_id": prompt_id, "model": "m", "sampler": "Euler", "steps": 2, "cfg": 5.0, "width": 64,
               "height": 64, "seed": 1, "image_sha256": sha, "image_path": lib.relative_image_path(file)}
        absent = "ab" * 32
        for params, what in [({"init_image": absent}, "input image"),
                             ({"loras": [{"name": "x", "sha256": absent, "stored": True}]}, "LoRA copy")]:
            with pytest.raises(LibraryProblem, match=f"its {what} {absent} is not on disk"):
                lib.add_generation({**row, "params": params})
        file.unlink()
        with pytest.raises(LibraryProblem, match="image .* is not on disk"):
            lib.add_generation(row)
        assert lib.db["generations"].count == 0
        lib.store_image(b"an image")
        assert lib.add_generation({**row, "params": {"loras": [{"name": "x", "sha256": absent}]}}) > 0  # not stored


def test_a_deleted_prompts_id_is_never_given_again(isolated_library):
    with Library(isolated_library) as lib:
        lib.save_prompt(_prompt("a heron"), name="heron")
        newest = lib.save_prompt(_prompt("a crane"), name="crane")
        lib.delete_prompt(newest)
        again = lib.save_prompt(_prompt("a crane"), name="crane")
        assert again > newest and [r["id"] for r in lib.search("crane")] == [again]


def test_m004_rebuilds_prompts_keeping_rows_links_and_search(isolated_library):
    """A library from before m004: its prompts keep their ids, children, images and full-text index."""
    from sqlite_utils.migrations import Migrations

    from promptkit.library.migrations import m001_initial, m002_foreign_key_indexes, m003_tags_as_typed
    from sample_library import add_picture

    before_m004 = Migrations("promptkit")
    for step in (m001_initial, m002_foreign_key_indexes, m003_tags_as_typed):
        before_m004(name=step.__name__)(step)

    class OldLibrary(Library):
        migrations = before_m004

    with OldLibrary(isolated_library) as lib:
        heron = lib.save_prompt(_prompt("a heron"), name="heron", tags=["oiseau élégant"])
        child = lib.save_prompt(_prompt("a heron in the rain"), name="heron-2", parent_id=heron)
        image = add_picture(lib, lib.get_prompt(child), 1, size=16)
        newest = lib.save_prompt(_prompt("a crane"), name="crane")
    with Library(isolated_library, create=False) as lib:
        assert "m004_prompt_ids_never_reused" in [m.name for m in lib.migrations.applied(lib.db)]
        assert lib.schema_version() == KNOWN_MIGRATIONS[-1] and lib.backup_path is not None
        assert [p["id"] for p in lib.list_prompts()] == [newest, child, heron]
        assert lib.get_generation(image)["prompt_id"] == child
        assert [p["id"] for p in lib.prompt_lineage(child)["ancestors"]] == [heron]
        assert [r["id"] for r in lib.search("élégant")] == [heron]
        lib.delete_prompt(newest)
        assert lib.save_prompt(_prompt("a crane"), name="crane") > newest
        lib.set_starred(heron, True)
        assert {r["id"] for r in lib.search("heron")} == {heron, child}
        assert lib.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sql = lib.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'prompts'").fetchone()[0]
        assert "AUTOINCREMENT" in sql
