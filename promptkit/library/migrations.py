"""The library's schema: the `Migrations` set and one function per migration.

The schema lives only here: every table, index and full-text index is made by a migration, and
a library is brought up to date by applying the pending ones (see `Library._migrate`).
"""

from __future__ import annotations

import json
import re
import sqlite3

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("promptkit")


@migrations(name="m001_initial")
def m001_initial(db: sqlite_utils.Database) -> None:
    _create_prompts(db)
    _create_experiments(db)
    _create_generations(db)
    _create_ratings_and_votes(db)


def _create_prompts(db: sqlite_utils.Database) -> None:
    db["prompts"].create(
        {
            "id": int,
            "name": str,
            "template": str,
            "template_digest": str,
            "fields": str,
            "positive": str,
            "negative": str,
            "parent_id": int,
            "tags": str,
            "notes": str,
            "starred": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("parent_id", "prompts", "id")],
        not_null={"positive", "negative", "created_at"},
        defaults={"tags": "[]", "notes": "", "starred": 0},
    )
    db["prompts"].create_index(["name"], unique=True)
    db["prompts"].enable_fts(["name", "positive", "negative", "tags", "notes"], create_triggers=True)


def _create_experiments(db: sqlite_utils.Database) -> None:
    db["experiments"].create(
        {"id": int, "name": str, "seeds": str, "params": str, "model": str, "created_at": str},
        pk="id",
        not_null={"name", "created_at"},
    )
    db["experiments"].create_index(["name"], unique=True)
    db["variants"].create(
        {"experiment_id": int, "label": str, "prompt_id": int, "params": str},
        pk=("experiment_id", "label"),
        foreign_keys=[("experiment_id", "experiments", "id"), ("prompt_id", "prompts", "id")],
    )


def _create_generations(db: sqlite_utils.Database) -> None:
    db["generations"].create(
        {
            "id": int,
            "prompt_id": int,
            "experiment_id": int,
            "variant": str,
            "model": str,
            "model_hash": str,
            "sampler": str,
            "steps": int,
            "cfg": float,
            "width": int,
            "height": int,
            "seed": int,
            "noise_device": str,
            "batch": str,
            "params": str,
            "image_sha256": str,
            "image_path": str,
            "device": str,
            "dtype": str,
            "versions": str,
            "seconds": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("prompt_id", "prompts", "id"), ("experiment_id", "experiments", "id")],
        not_null={"prompt_id", "seed", "image_sha256", "image_path", "created_at"},
    )
    db["generations"].create_index(["prompt_id"])
    db["generations"].create_index(["experiment_id", "variant", "seed"])
    db["generations"].create_index(["image_sha256"])


def _create_ratings_and_votes(db: sqlite_utils.Database) -> None:
    db["ratings"].create(
        {"id": int, "generation_id": int, "stars": int, "note": str, "created_at": str},
        pk="id",
        foreign_keys=[("generation_id", "generations", "id")],
        not_null={"generation_id", "stars", "created_at"},
    )
    db["ratings"].create_index(["generation_id"])
    db["votes"].create(
        {
            "id": int,
            "experiment_id": int,
            "seed": int,
            "left_generation_id": int,
            "right_generation_id": int,
            "winner_generation_id": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[
            ("experiment_id", "experiments", "id"),
            ("left_generation_id", "generations", "id"),
            ("right_generation_id", "generations", "id"),
            ("winner_generation_id", "generations", "id"),
        ],
        not_null={"experiment_id", "seed", "left_generation_id", "right_generation_id", "created_at"},
    )
    db["votes"].create_index(["experiment_id"])


@migrations(name="m002_foreign_key_indexes")
def m002_foreign_key_indexes(db: sqlite_utils.Database) -> None:
    # With foreign_keys=ON, deleting a parent row looks up its children by the child column:
    # without an index that is a full scan of the child table per deleted row (measured in
    # benchmarks/library_scale.py). The same indexes serve "iterations of this prompt".
    db["prompts"].create_index(["parent_id"])
    db["variants"].create_index(["prompt_id"])
    db["votes"].create_index(["left_generation_id"])
    db["votes"].create_index(["right_generation_id"])
    db["votes"].create_index(["winner_generation_id"])


@migrations(name="m003_tags_as_typed")
def m003_tags_as_typed(db: sqlite_utils.Database) -> None:
    # Early versions stored tags as ASCII-escaped JSON ("\\u00e9l\\u00e9gant"), which the full-text
    # index then held escaped, so searching for "élégant" missed them. Store them as typed; the
    # FTS triggers re-index each row updated.
    rows = db.execute("SELECT id, tags FROM prompts WHERE tags LIKE '%\\u%'").fetchall()
    for prompt_id, tags in rows:
        try:
            as_typed = json.dumps(json.loads(tags), ensure_ascii=False)
        except ValueError:
            continue
        if as_typed != tags:
            db.execute("UPDATE prompts SET tags = ? WHERE id = ?", [as_typed, prompt_id])



@migrations(name="m004_prompt_ids_never_reused")
def m004_prompt_ids_never_reused(db: sqlite_utils.Database) -> None:
    # Without AUTOINCREMENT SQLite hands out max(id) + 1, so deleting the newest prompt and saving
    # another gave the new one the old id: a link, an export or a note naming "prompt 42" then
    # meant another prompt. Rebuild `prompts` with AUTOINCREMENT, keeping every row, index,
    # trigger and the full-text index. This runs inside Library._migrate's transaction, where
    # foreign keys cannot be turned off: they are deferred instead, and re-inserting every row
    # into the new table satisfies the references the drop left dangling before the commit.
    conn = db.conn
    old_sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'prompts'").fetchone()[0]
    if "AUTOINCREMENT" in old_sql.upper():
        return
    new_sql, found = re.subn(r'("id"|\bid\b)\s+INTEGER\s+PRIMARY\s+KEY', r"\1 INTEGER PRIMARY KEY AUTOINCREMENT",
                             old_sql, count=1, flags=re.IGNORECASE)
    if not found:
        raise sqlite3.OperationalError("the prompts table has no INTEGER PRIMARY KEY id to make AUTOINCREMENT")
    attached = conn.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'prompts' AND type IN ('index', 'trigger') "
                            "AND sql IS NOT NULL ORDER BY type, name").fetchall()
    conn.execute("PRAGMA defer_foreign_keys = ON")  # reset by SQLite itself at the commit
    conn.execute("CREATE TEMP TABLE m004_prompts AS SELECT * FROM prompts")
    conn.execute("DROP TABLE prompts")  # its indexes and triggers go with it
    conn.execute(new_sql)
    conn.execute("INSERT INTO prompts SELECT * FROM temp.m004_prompts ORDER BY id")
    conn.execute("DROP TABLE temp.m004_prompts")
    for (sql,) in attached:
        conn.execute(sql)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'prompts_fts'").fetchone():
        conn.execute("INSERT INTO prompts_fts (prompts_fts) VALUES ('rebuild')")


@migrations(name="m005_released_files")
def m005_released_files(db: sqlite_utils.Database) -> None:
    # `delete --with-images` and `ab delete --with-images` record the sha256 of every file their
    # deleted rows named, with the time: `doctor --fix` moves such a file at once when nothing
    # refers to it any more and it was not written again since, instead of waiting out the
    # minimum age that protects a write in progress.
    db.conn.execute("CREATE TABLE released_files (sha256 TEXT PRIMARY KEY, released_at REAL NOT NULL)")


@migrations(name="m006_rating_notes_search")
def m006_rating_notes_search(db: sqlite_utils.Database) -> None:
    # A rating's note ("best sky") is searchable: a full-text index over ratings.note, kept by
    # triggers; `Library.search` looks there after the prompts' own index.
    conn = db.conn
    conn.execute("CREATE VIRTUAL TABLE ratings_fts USING fts5 (note, content=[ratings], content_rowid=[id])")
    conn.execute("CREATE TRIGGER ratings_ai AFTER INSERT ON ratings BEGIN "
                 "INSERT INTO ratings_fts (rowid, note) VALUES (new.id, new.note); END")
    conn.execute("CREATE TRIGGER ratings_ad AFTER DELETE ON ratings BEGIN "
                 "INSERT INTO ratings_fts (ratings_fts, rowid, note) VALUES ('delete', old.id, old.note); END")
    conn.execute("CREATE TRIGGER ratings_au AFTER UPDATE ON ratings BEGIN "
                 "INSERT INTO ratings_fts (ratings_fts, rowid, note) VALUES ('delete', old.id, old.note); "
                 "INSERT INTO ratings_fts (rowid, note) VALUES (new.id, new.note); END")
    conn.execute("INSERT INTO ratings_fts (ratings_fts) VALUES ('rebuild')")


@migrations(name="m007_generation_provenance")
def m007_generation_provenance(db: sqlite_utils.Database) -> None:
    # Not every image is promptkit's own: imported images (A1111, ComfyUI, ...), ComfyUI's
    # Save to Library node and `track(pipe)` calls whose generator state is unknown. `source`
    # names the tool that made the image, `source_metadata` keeps its metadata verbatim, and
    # `reproducible` is 0 where `reproduce` cannot promise the same pixels.
    conn = db.conn
    conn.execute("ALTER TABLE generations ADD COLUMN source TEXT NOT NULL DEFAULT 'promptkit'")
    conn.execute("ALTER TABLE generations ADD COLUMN source_metadata TEXT")
    conn.execute("ALTER TABLE generations ADD COLUMN reproducible INTEGER NOT NULL DEFAULT 1")


@migrations(name="m008_vote_raters")
def m008_vote_raters(db: sqlite_utils.Database) -> None:
    # Votes name who cast them, so the agreement between raters (Cohen's or Fleiss' kappa) can be
    # measured and a second vote by the same rater on the same pair can replace the first. Every
    # vote cast before this migration is the one local person's: DEFAULT_RATER ('me').
    conn = db.conn
    conn.execute("ALTER TABLE votes ADD COLUMN rater TEXT NOT NULL DEFAULT 'me'")
    conn.execute("CREATE INDEX idx_votes_experiment_id_seed_rater ON votes (experiment_id, seed, rater)")


@migrations(name="m009_scores")
def m009_scores(db: sqlite_utils.Database) -> None:
    # Automatic judges' scores, one per (image, judge, judge model): `promptkit score` computes a
    # score once and reuses it while the judge model's hash is unchanged. A score goes with its
    # image: deleting the generation row deletes it (ON DELETE CASCADE), so the existing delete
    # paths need no change.
    db.conn.execute(
        "CREATE TABLE scores (id INTEGER PRIMARY KEY, "
        "generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE, "
        "judge TEXT NOT NULL, judge_model TEXT NOT NULL, model_hash TEXT NOT NULL DEFAULT '', "
        "value REAL NOT NULL, created_at TEXT NOT NULL, UNIQUE (generation_id, judge, judge_model))")
    db.conn.execute("CREATE INDEX idx_scores_judge ON scores (judge, judge_model)")


KNOWN_MIGRATIONS = [m.name for m in migrations._migrations]


def migration_names(migration_set: Migrations) -> list[str]:
    """The names of every migration in MIGRATION_SET, oldest first."""
    return [m.name for m in migration_set._migrations]


def schema_columns(tables: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """Each of TABLES' columns in the schema this promptkit writes (built in memory)."""
    db = sqlite_utils.Database(memory=True)
    migrations.apply(db)
    return {name: [c.name for c in db[name].columns] for name in tables}


def applied_migration_names(conn: sqlite3.Connection, migration_set: Migrations = migrations) -> list[str]:
    """The migrations of MIGRATION_SET recorded in the file behind CONN, oldest first; [] when it
    has no migrations table. Reads with a plain connection, so a library in any state can be checked."""
    if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [Migrations.migrations_table]).fetchone():
        return []
    return [name for (name,) in conn.execute(
        f"SELECT name FROM [{Migrations.migrations_table}] WHERE migration_set = ? ORDER BY rowid",
        [migration_set.name])]
