"""The prompt library: one SQLite file (sqlite-utils) plus content-addressed PNGs beside it."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import BadParameter, LibraryProblem, NotFound

DEFAULT_DB = "library.db"
BUSY_TIMEOUT_MS = 10_000
migrations = Migrations("promptkit")


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def default_db_path(explicit: str | os.PathLike | None = None) -> Path:
    """`--db PATH`, else `PROMPTKIT_DB`, else ./library.db."""
    return Path(explicit or os.environ.get("PROMPTKIT_DB") or DEFAULT_DB)


def images_dir_for(db_path: Path) -> Path:
    """`library.db` keeps its images in `library-images/` beside it."""
    return db_path.with_name(f"{db_path.stem}-images")


# -- schema: one function per migration ------------------------------------


@migrations(name="m001_initial")
def m001_initial(db: sqlite_utils.Database) -> None:
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


KNOWN_MIGRATIONS = [m.name for m in migrations._migrations]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Library:
    """A promptkit library: prompts, generations, ratings and experiments.

    :param path: the SQLite file; `None` means `PROMPTKIT_DB` or ./library.db.
    :param create: create the file if missing; when False a missing library is an error.
    """

    def __init__(self, path: str | os.PathLike | None = None, create: bool = True) -> None:
        self.path = default_db_path(path)
        self.images_dir = images_dir_for(self.path)
        if self.path.is_dir():
            raise LibraryProblem(f"library path {str(self.path)!r} is a folder, not a SQLite file")
        if not self.path.exists():
            if not create:
                raise LibraryProblem(f"no library at {str(self.path)!r} yet; run `promptkit init` first")
            if not self.path.parent.is_dir():
                raise LibraryProblem(f"cannot create library {str(self.path)!r}: folder {str(self.path.parent)!r} does not exist")
        try:
            self.conn = _connect(self.path)
            self.db = sqlite_utils.Database(self.conn)
            self._check_and_migrate()
            self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise LibraryProblem(f"cannot open library {str(self.path)!r}: {exc}") from None

    def _check_and_migrate(self) -> None:
        applied = [m.name for m in migrations.applied(self.db)]
        unknown = [name for name in applied if name not in KNOWN_MIGRATIONS]
        if unknown:
            raise LibraryProblem(
                f"library {str(self.path)!r} was written by a newer promptkit (schema {unknown[-1]}); "
                "upgrade promptkit to open it"
            )
        if migrations.pending(self.db):
            if self.db.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                with self.db.ensure_autocommit_on():
                    self.db.execute("PRAGMA journal_mode=WAL")
            migrations.apply(self.db)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so it
        waits for other writers instead of failing with "database is locked"."""
        if self.conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def schema_version(self) -> str:
        applied = migrations.applied(self.db)
        return applied[-1].name if applied else ""

    # -- prompts ------------------------------------------------------------
    def save_prompt(
        self,
        prompt,
        name: str | None = None,
        parent_id: int | None = None,
        tags: list[str] | None = None,
        notes: str = "",
    ) -> int:
        """Store a rendered `templates.Prompt`; return its id."""
        with self.write() as db:
            if name is not None:
                if not name.strip():
                    raise BadParameter("a prompt name cannot be empty")
                if name.strip().isdigit():
                    raise BadParameter(f"prompt name {name!r} is all digits; it would be mistaken for an id")
                if db.execute("SELECT 1 FROM prompts WHERE name = ?", [name]).fetchone():
                    raise BadParameter(f"a prompt named {name!r} already exists; choose another --save name")
            if parent_id is not None:
                self.get_prompt(parent_id)
            table = db["prompts"]
            table.insert(
                {
                    "name": name,
                    "template": prompt.template,
                    "template_digest": prompt.template_digest,
                    "fields": json.dumps(prompt.fields.to_dict(), sort_keys=True),
                    "positive": prompt.positive,
                    "negative": prompt.negative,
                    "parent_id": parent_id,
                    "tags": json.dumps(tags or []),
                    "notes": notes,
                    "starred": 0,
                    "created_at": utc_now(),
                }
            )
            return int(table.last_pk)

    def get_prompt(self, ref: int | str) -> dict[str, Any]:
        """A prompt by id (digits) or by name."""
        text = str(ref).strip()
        if text.isdigit():
            row = self.db.execute("SELECT * FROM prompts WHERE id = ?", [int(text)]).fetchone()
        else:
            row = self.db.execute("SELECT * FROM prompts WHERE name = ?", [text]).fetchone()
        if row is None:
            raise NotFound(f"no prompt with id or name {text!r} in {str(self.path)!r}")
        return _decode(self._row_dict("prompts", row), ("fields", "tags"))

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search over name, positive, negative, tags and notes."""
        if not query.strip():
            raise BadParameter("search query is empty")
        # Quote each word so FTS syntax characters in a prompt cannot break the query.
        fts_query = " ".join('"' + word.replace('"', '""') + '"' for word in query.split())
        # Rank inside a subquery and join only the LIMIT rows: ordering by bm25() in SQLite's
        # own sorter is ~1.5x faster than FTS5's `ORDER BY rank` on a term that matches tens of
        # thousands of prompts (benchmarks/library_scale.py), with the same order.
        rows = self.db.execute(
            "SELECT prompts.* FROM (SELECT rowid AS id, bm25(prompts_fts) AS score FROM prompts_fts "
            "WHERE prompts_fts MATCH ? ORDER BY score LIMIT ?) AS hits JOIN prompts USING (id) ORDER BY hits.score",
            [fts_query, limit],
        ).fetchall()
        return [_decode(self._row_dict("prompts", r), ("fields", "tags")) for r in rows]

    def list_prompts(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM prompts ORDER BY id DESC LIMIT ?", [limit]).fetchall()
        return [_decode(self._row_dict("prompts", r), ("fields", "tags")) for r in rows]

    def show_prompt(self, ref: int | str) -> dict[str, Any]:
        """A prompt with its generations, each with its ratings."""
        prompt = self.get_prompt(ref)
        generations = [
            _decode(self._row_dict("generations", r), ("batch", "params", "versions"))
            for r in self.db.execute("SELECT * FROM generations WHERE prompt_id = ? ORDER BY id", [prompt["id"]])
        ]
        ratings: dict[int, list[dict[str, Any]]] = {}
        for r in self.db.execute(
            "SELECT ratings.* FROM ratings JOIN generations ON generations.id = ratings.generation_id "
            "WHERE generations.prompt_id = ? ORDER BY ratings.id",
            [prompt["id"]],
        ):
            rating = self._row_dict("ratings", r)
            ratings.setdefault(rating["generation_id"], []).append(rating)
        for gen in generations:
            gen["ratings"] = ratings.get(gen["id"], [])
        prompt["generations"] = generations
        return prompt

    # -- images and generations --------------------------------------------
    def image_file(self, sha256: str) -> Path:
        return self.images_dir / sha256[:2] / f"{sha256}.png"

    def store_image(self, png: bytes) -> tuple[str, Path]:
        """Write PNG bytes under their sha256, atomically (temp file, fsync, rename, fsync folder)."""
        sha = hashlib.sha256(png).hexdigest()
        final = self.image_file(sha)
        if final.is_file() and final.stat().st_size == len(png):
            return sha, final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(png)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return sha, final

    def add_generation(self, row: dict[str, Any]) -> int:
        """Insert a generation row; its image must already be on disk."""
        if not self.image_file(row["image_sha256"]).is_file():
            raise LibraryProblem(f"refusing to record generation: image {row['image_sha256']} is not on disk")
        record = dict(row)
        for key in ("batch", "params", "versions"):
            if key in record and not isinstance(record[key], str):
                record[key] = json.dumps(record[key], sort_keys=True)
        record.setdefault("created_at", utc_now())
        with self.write() as db:
            table = db["generations"]
            table.insert(record)
            return int(table.last_pk)

    def get_generation(self, generation_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM generations WHERE id = ?", [int(generation_id)]).fetchone()
        if row is None:
            raise NotFound(f"no generation with id {generation_id} in {str(self.path)!r}")
        return _decode(self._row_dict("generations", row), ("batch", "params", "versions"))

    def rate(self, generation_id: int, stars: int, note: str = "") -> int:
        if not 1 <= int(stars) <= 5:
            raise BadParameter(f"stars must be 1 to 5 but is {stars}")
        with self.write() as db:
            self.get_generation(generation_id)
            table = db["ratings"]
            table.insert({"generation_id": int(generation_id), "stars": int(stars), "note": note, "created_at": utc_now()})
            return int(table.last_pk)

    def image_path(self, generation: dict[str, Any]) -> Path:
        """Absolute path of a generation's PNG (stored relative to the library's folder)."""
        return (self.path.parent / generation["image_path"]).resolve()

    def relative_image_path(self, file: Path) -> str:
        return os.path.relpath(file, self.path.parent)

    def _row_dict(self, table: str, row: tuple) -> dict[str, Any]:
        columns = self._columns(table)
        return dict(zip(columns, row))

    def _columns(self, table: str) -> list[str]:
        cache = self.__dict__.setdefault("_column_cache", {})
        if table not in cache:
            cache[table] = [c.name for c in self.db[table].columns]
        return cache[table]


def _decode(row: dict[str, Any], json_keys: tuple[str, ...]) -> dict[str, Any]:
    for key in json_keys:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row
