"""The prompt library: one SQLite file (sqlite-utils) plus content-addressed PNGs beside it."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import BadParameter, LibraryProblem, NotFound

DEFAULT_DB = "library.db"
BUSY_TIMEOUT_MS = 10_000
MAX_ROW_ID = 2**63 - 1  # SQLite's largest integer; a bigger id cannot name a row
# A search matching more prompts than this ranks only the newest this many: scoring every match of
# a word found in most prompts is what makes a search slow in a large library (see search()).
SEARCH_RANK_LIMIT = 10_000
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
migrations = Migrations("promptkit")


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def default_db_path(explicit: str | os.PathLike | None = None) -> Path:
    """`--db PATH`, else `PROMPTKIT_DB`, else ./library.db."""
    return Path(explicit or os.environ.get("PROMPTKIT_DB") or DEFAULT_DB)


def _write_atomically(final: Path, handle_write) -> None:
    """Create FINAL whole or not at all: HANDLE_WRITE fills a temp file beside it, which is
    fsynced and renamed over FINAL, then the folder is fsynced. If HANDLE_WRITE raises, the temp
    file is removed and FINAL is untouched."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=final.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle_write(handle)
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


KNOWN_MIGRATIONS = [m.name for m in migrations._migrations]


def migration_names(migration_set: Migrations) -> list[str]:
    """The names of every migration in MIGRATION_SET, oldest first."""
    return [m.name for m in migration_set._migrations]


def _connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        # mode=ro: SQLite itself refuses every write, even for root, for whom chmod means nothing.
        uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_read_only(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection that cannot write, for inspecting a library in any state (see doctor.py)."""
    return _connect(Path(path), read_only=True)


def user_tables(conn: sqlite3.Connection) -> list[str]:
    """Tables other than SQLite's own and the migrations record."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != ? ORDER BY name",
        [Migrations.migrations_table],
    ).fetchall()
    return [name for (name,) in rows]


def is_read_only_error(exc: BaseException) -> bool:
    # SQLITE_READONLY and its extended codes (SQLITE_READONLY_CANTINIT, _DIRECTORY, ...)
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorname", "").startswith("SQLITE_READONLY")


def backup_path_for(db_path: Path, schema: str, when: datetime.datetime) -> Path:
    """`library.db` at schema m001_initial -> `library.db.backup-m001_initial-20260101T120000Z`."""
    stamp = when.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = db_path.with_name(f"{db_path.name}.backup-{schema}-{stamp}")
    counter = 2
    while candidate.exists():
        candidate = db_path.with_name(f"{db_path.name}.backup-{schema}-{stamp}-{counter}")
        counter += 1
    return candidate


class Library:
    """A promptkit library: prompts, generations, ratings and experiments.

    :param path: the SQLite file; `None` means `PROMPTKIT_DB` or ./library.db.
    :param create: create the file if missing; when False a missing library is an error.
    :param read_only: open with SQLite's read-only mode: every write is refused with a
        `LibraryProblem`, and an older library is not migrated.
    """

    #: The schema this promptkit knows; a subclass may carry another set (tests do).
    migrations: Migrations = migrations

    def __init__(self, path: str | os.PathLike | None = None, create: bool = True, read_only: bool = False) -> None:
        self.path = default_db_path(path)
        self.images_dir = images_dir_for(self.path)
        self.read_only = read_only
        self.backup_path: Path | None = None  # set when opening migrated an older library
        if self.path.is_dir():
            raise LibraryProblem(f"library path {str(self.path)!r} is a folder, not a SQLite file")
        if not self.path.exists():
            if not create or read_only:
                raise LibraryProblem(f"no library at {str(self.path)!r} yet; run `promptkit init` first")
            if not self.path.parent.is_dir():
                raise LibraryProblem(f"cannot create library {str(self.path)!r}: folder {str(self.path.parent)!r} does not exist")
        try:
            self.conn = _connect(self.path, read_only=read_only)
            self.db = sqlite_utils.Database(self.conn)
            self._check_and_migrate()
            if not read_only:
                self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            if is_read_only_error(exc):
                raise LibraryProblem(
                    f"library {str(self.path)!r} is read-only ({exc}); nothing was changed "
                    "(SQLite needs the file's folder writable too, even to read a WAL library)"
                ) from None
            raise LibraryProblem(f"cannot open library {str(self.path)!r}: {exc}") from None

    def _check_and_migrate(self) -> None:
        known = migration_names(self.migrations)
        applied = [m.name for m in self.migrations.applied(self.db)]
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise LibraryProblem(
                f"library {str(self.path)!r} was written by a newer promptkit (schema {unknown[-1]}); "
                "upgrade promptkit to open it"
            )
        if not applied and (others := user_tables(self.conn)):
            raise LibraryProblem(
                f"{str(self.path)!r} is a SQLite database but not a promptkit library (it has tables "
                f"{', '.join(others[:5])}); refusing to change it"
            )
        if not self.migrations.pending(self.db):
            return
        if self.read_only:
            raise LibraryProblem(
                f"library {str(self.path)!r} is at schema {applied[-1] if applied else '(none)'} and needs "
                f"migrating to {known[-1]}, which a read-only open cannot do"
            )
        if self.db.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            with self.db.ensure_autocommit_on():
                self.db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def _migrate(self) -> None:
        """Apply pending migrations in one BEGIN IMMEDIATE transaction, after backing up an
        existing library. Holding the write lock throughout means two processes opening the
        same old library cannot both migrate it, and the backup is the state migrated from.
        Every promptkit migration must therefore be transactional."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            applied = [m.name for m in self.migrations.applied(self.db)]  # re-read under the lock
            pending = [m.name for m in self.migrations.pending(self.db)]
            if pending and applied:
                self.backup_path = self._backup(applied[-1])
            try:
                self.migrations.apply(self.db)
            except Exception as exc:
                if is_read_only_error(exc):
                    raise
                kept = f"; a backup is at {str(self.backup_path)!r}" if self.backup_path else ""
                raise LibraryProblem(
                    f"migrating library {str(self.path)!r} to {pending[-1]} failed ({type(exc).__name__}: {exc}); "
                    f"the library is unchanged{kept}"
                ) from None
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _backup(self, schema: str) -> Path:
        """Copy the library with SQLite's backup API to `<db>.backup-<schema>-<utc time>`.

        The copy is read through a second connection: this one holds the write lock, and a
        backup read through the connection that holds it never finishes (SQLITE_BUSY forever).
        """
        target = backup_path_for(self.path, schema, datetime.datetime.now(datetime.timezone.utc))
        partial = target.with_name(target.name + ".partial")
        source = _connect(self.path)
        try:
            dest = sqlite3.connect(str(partial))
            try:
                source.backup(dest)
            finally:
                dest.close()
        finally:
            source.close()
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)  # a crash mid-copy never leaves a file that looks like a backup
        return target

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
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if is_read_only_error(exc):
                raise LibraryProblem(f"library {str(self.path)!r} is read-only ({exc}); nothing was changed") from None
            raise

    def schema_version(self) -> str:
        applied = self.migrations.applied(self.db)
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
                if _looks_like_id(name.strip()):
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
                    "tags": json.dumps(tags or [], ensure_ascii=False),  # as typed, so full-text search finds it
                    "notes": notes,
                    "starred": 0,
                    "created_at": utc_now(),
                }
            )
            return int(table.last_pk)

    def get_prompt(self, ref: int | str) -> dict[str, Any]:
        """A prompt by id (digits) or by name."""
        text = str(ref).strip()
        if _looks_like_id(text):
            row = None
            if _is_row_id(int(text)):
                row = self.db.execute("SELECT * FROM prompts WHERE id = ?", [int(text)]).fetchone()
        else:
            row = self.db.execute("SELECT * FROM prompts WHERE name = ?", [text]).fetchone()
        if row is None:
            raise NotFound(f"no prompt with id or name {text!r} in {str(self.path)!r}")
        return _decode(self._row_dict("prompts", row), ("fields", "tags"))

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Full-text search over name, positive, negative, tags and notes, best match first.

        A query matching more than SEARCH_RANK_LIMIT prompts ranks only the newest that many.
        """
        if not query.strip():
            raise BadParameter("search query is empty")
        # Quote each word so FTS syntax characters in a prompt cannot break the query; FTS5 reads
        # a query only up to a NUL character, so those separate words like spaces.
        words = query.replace("\x00", " ").split()
        fts_query = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        if not words:
            return []
        try:
            # bm25() scores every match, so a word in most prompts ("blurry", in every packaged
            # negative) would cost 45 ms at 100,000 prompts. Only the newest SEARCH_RANK_LIMIT
            # matches are ranked: the inner lookup finds the rowid where they start by walking the
            # doclist without scoring, and FTS5 skips older rowids (benchmarks/library_scale.py).
            # Ranking happens in a subquery and only the LIMIT rows are joined: ordering by bm25()
            # in SQLite's own sorter is ~1.5x faster than FTS5's `ORDER BY rank`, same order.
            rows = self.db.execute(
                "SELECT prompts.* FROM (SELECT rowid AS id, bm25(prompts_fts) AS score FROM prompts_fts "
                "WHERE prompts_fts MATCH :q AND rowid >= coalesce((SELECT rowid FROM prompts_fts "
                "WHERE prompts_fts MATCH :q ORDER BY rowid DESC LIMIT 1 OFFSET :skip), 0) "
                "ORDER BY score LIMIT :limit) AS hits JOIN prompts USING (id) ORDER BY hits.score",
                {"q": fts_query, "skip": SEARCH_RANK_LIMIT - 1, "limit": limit},
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise BadParameter(f"cannot search for {query!r}: {exc}") from None
        return [_decode(self._row_dict("prompts", r), ("fields", "tags")) for r in rows]

    def list_prompts(self, limit: int = 50, offset: int = 0, starred_only: bool = False) -> list[dict[str, Any]]:
        """Saved prompts, newest first.

        :param offset: skip this many of the newest (for paging).
        :param starred_only: only prompts marked with a star.
        """
        where = "WHERE starred = 1 " if starred_only else ""
        rows = self.db.execute(
            f"SELECT * FROM prompts {where}ORDER BY id DESC LIMIT ? OFFSET ?", [limit, offset]
        ).fetchall()
        return [_decode(self._row_dict("prompts", r), ("fields", "tags")) for r in rows]

    def count_prompts(self, starred_only: bool = False) -> int:
        where = " WHERE starred = 1" if starred_only else ""
        return self.db.execute(f"SELECT count(*) FROM prompts{where}").fetchone()[0]

    def delete_prompt(self, ref: int | str, with_generations: bool = False) -> dict[str, Any]:
        """Delete a prompt (id or name), and with WITH_GENERATIONS its generation rows and their
        ratings, in one transaction. Refused, with nothing changed, for a prompt that is a
        variant of an experiment (its votes and cells belong to the experiment) or that has
        iterations (their lineage would lose its root). Image files stay: content-addressed,
        they may serve other rows, and `doctor --fix` quarantines those no row refers to.
        """
        with self.write() as db:
            prompt = self.get_prompt(ref)
            prompt_id, label = prompt["id"], prompt["name"] or str(prompt["id"])
            experiment = db.execute(
                "SELECT experiments.name FROM variants JOIN experiments ON experiments.id = variants.experiment_id "
                "WHERE variants.prompt_id = ? ORDER BY experiments.id LIMIT 1", [prompt_id]).fetchone()
            if experiment:
                raise BadParameter(f"prompt {label!r} is a variant of experiment {experiment[0]!r}; its images and "
                                   "votes belong to the experiment, so the prompt is kept")
            children = db.execute("SELECT count(*) FROM prompts WHERE parent_id = ?", [prompt_id]).fetchone()[0]
            if children:
                raise BadParameter(f"prompt {label!r} has {children} iteration{'s' if children > 1 else ''} "
                                   f"(`promptkit history {label}`); delete those first")
            voted = db.execute(
                "SELECT count(*) FROM votes WHERE left_generation_id IN (SELECT id FROM generations WHERE prompt_id = "
                ":p) OR right_generation_id IN (SELECT id FROM generations WHERE prompt_id = :p)",
                {"p": prompt_id}).fetchone()[0]
            if voted:
                raise BadParameter(f"prompt {label!r} has images that were voted on in an experiment; it is kept")
            generations = db.execute("SELECT count(*) FROM generations WHERE prompt_id = ?", [prompt_id]).fetchone()[0]
            if generations and not with_generations:
                raise BadParameter(f"prompt {label!r} has {generations} image{'s' if generations > 1 else ''}; pass "
                                   "--with-images to delete their rows too")
            ratings = db.execute("DELETE FROM ratings WHERE generation_id IN (SELECT id FROM generations WHERE "
                                 "prompt_id = ?)", [prompt_id]).rowcount
            db.execute("DELETE FROM generations WHERE prompt_id = ?", [prompt_id])
            db.execute("DELETE FROM prompts WHERE id = ?", [prompt_id])
        return {"id": prompt_id, "name": prompt["name"], "generations_deleted": generations,
                "ratings_deleted": ratings}

    def set_starred(self, ref: int | str, starred: bool) -> dict[str, Any]:
        """Star or unstar a prompt (id or name); return the updated prompt."""
        with self.write() as db:
            prompt_id = self.get_prompt(ref)["id"]
            # Plain SQL: sqlite-utils' update() commits on its own, which would end this transaction early.
            db.execute("UPDATE prompts SET starred = ? WHERE id = ?", [1 if starred else 0, prompt_id])
        return self.get_prompt(prompt_id)

    def prompt_lineage(self, prompt_id: int) -> dict[str, list[dict[str, Any]]]:
        """The prompts this one was iterated from (oldest first) and those iterated from it."""
        ancestors: list[dict[str, Any]] = []
        seen = {prompt_id}
        parent_id = self.get_prompt(prompt_id)["parent_id"]
        while parent_id is not None and parent_id not in seen:  # `seen` guards against a hand-made cycle
            seen.add(parent_id)
            parent = self.get_prompt(parent_id)
            ancestors.insert(0, parent)
            parent_id = parent["parent_id"]
        children = [
            _decode(self._row_dict("prompts", r), ("fields", "tags"))
            for r in self.db.execute("SELECT * FROM prompts WHERE parent_id = ? ORDER BY id", [prompt_id])
        ]
        return {"ancestors": ancestors, "children": children}

    def summarize_prompts(self, prompt_ids: list[int], covers: int = 4) -> dict[int, dict[str, Any]]:
        """Per prompt: how many images, how many rated, the mean of each image's latest rating,
        and up to COVERS generations to show for it (best rated first, then newest)."""
        summaries = {pid: {"generations": 0, "rated": 0, "mean_stars": None, "covers": []} for pid in prompt_ids}
        if not prompt_ids:
            return summaries
        marks = ", ".join("?" for _ in prompt_ids)
        # An image's rating is its latest one: rating again replaces the judgement, keeping the history.
        rows = self.db.execute(
            f"""
            WITH latest AS (
                SELECT ratings.generation_id, ratings.stars FROM ratings
                WHERE ratings.id IN (SELECT max(id) FROM ratings GROUP BY generation_id)
            )
            SELECT generations.prompt_id, generations.id, generations.image_sha256, latest.stars
            FROM generations LEFT JOIN latest ON latest.generation_id = generations.id
            WHERE generations.prompt_id IN ({marks})
            ORDER BY generations.prompt_id, coalesce(latest.stars, 0) DESC, generations.id DESC
            """,
            list(prompt_ids),
        ).fetchall()
        stars_by_prompt: dict[int, list[int]] = {}
        for prompt_id, generation_id, sha256, stars in rows:
            summary = summaries[prompt_id]
            summary["generations"] += 1
            if stars is not None:
                stars_by_prompt.setdefault(prompt_id, []).append(stars)
            if len(summary["covers"]) < covers:
                summary["covers"].append({"id": generation_id, "image_sha256": sha256, "stars": stars})
        for prompt_id, stars in stars_by_prompt.items():
            summaries[prompt_id]["rated"] = len(stars)
            summaries[prompt_id]["mean_stars"] = sum(stars) / len(stars)
        return summaries

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
            # Fresh mtime: `doctor --fix` leaves young files alone, and this one is about to get a row.
            os.utime(final)
            return sha, final
        _write_atomically(final, handle_write=lambda handle: handle.write(png))
        return sha, final

    def lora_file(self, sha256: str) -> Path:
        """Where the library keeps its copy of the LoRA file with this sha256."""
        return self.images_dir / "loras" / sha256[:2] / f"{sha256}.safetensors"

    def store_lora(self, source: str | os.PathLike, sha256: str) -> Path:
        """Copy a LoRA file into the library under its sha256, once per content, atomically
        (temp file, fsync, rename, fsync folder); refuse if its bytes are not SHA256 any more."""
        final = self.lora_file(sha256)
        source = Path(source)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise LibraryProblem(f"cannot store LoRA {str(source)!r} in the library: {exc.strerror}") from None
        if final.is_file() and final.stat().st_size == size:
            os.utime(final)  # fresh mtime, as store_image: `doctor --fix` leaves young files alone
            return final

        def copy_checked(handle) -> None:
            digest = hashlib.sha256()
            with open(source, "rb") as reader:
                for block in iter(lambda: reader.read(1 << 20), b""):
                    digest.update(block)
                    handle.write(block)
            if digest.hexdigest() != sha256:  # before the rename: the temp file is removed
                raise LibraryProblem(f"LoRA {str(source)!r} changed while it was being copied into the library "
                                     f"(sha256 {digest.hexdigest()[:12]}, expected {sha256[:12]})")

        _write_atomically(final, handle_write=copy_checked)
        return final

    def add_generation(self, row: dict[str, Any]) -> int:
        """Insert a generation row; its image, and the input images and LoRA copies its params
        name, must already be on disk."""
        from .inputs import input_image_shas, stored_lora_shas

        record = dict(row)
        for key in ("batch", "params", "versions"):
            if key in record and not isinstance(record[key], str):
                record[key] = json.dumps(record[key], sort_keys=True)
        record.setdefault("created_at", utc_now())
        with self.write() as db:
            # Checked under the write lock, which `doctor --fix` holds while it moves files.
            if not self.image_file(row["image_sha256"]).is_file():
                raise LibraryProblem(f"refusing to record generation: image {row['image_sha256']} is not on disk")
            params = row.get("params")
            for what, sha, file in [*(("input image", sha, self.image_file(sha)) for sha in input_image_shas(params)),
                                    *(("LoRA copy", sha, self.lora_file(sha)) for sha in stored_lora_shas(params))]:
                if not file.is_file():
                    raise LibraryProblem(f"refusing to record generation: its {what} {sha} is not on disk")
            table = db["generations"]
            table.insert(record)
            return int(table.last_pk)

    def get_generation(self, generation_id: int) -> dict[str, Any]:
        row = None
        if _is_row_id(int(generation_id)):
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

    def generation_ratings(self, generation_id: int) -> list[dict[str, Any]]:
        """A generation's ratings, oldest first (the last one is its current rating)."""
        rows = self.db.execute("SELECT * FROM ratings WHERE generation_id = ? ORDER BY id", [int(generation_id)])
        return [self._row_dict("ratings", r) for r in rows]

    def get_rating(self, rating_id: int) -> dict[str, Any]:
        row = None
        if _is_row_id(int(rating_id)):
            row = self.db.execute("SELECT * FROM ratings WHERE id = ?", [int(rating_id)]).fetchone()
        if row is None:
            raise NotFound(f"no rating with id {rating_id} in {str(self.path)!r}")
        return self._row_dict("ratings", row)

    def generation_image(self, generation_id: int) -> Path:
        """A generation's PNG, found by its sha256 inside the images folder. The review page serves
        images by id through this, so no path stored in a row can point it at another file."""
        sha256 = self.get_generation(generation_id)["image_sha256"]
        file = self.image_file(sha256) if isinstance(sha256, str) and SHA256_HEX.fullmatch(sha256) else None
        if file is None or not file.is_file():
            raise NotFound(f"the image of generation {generation_id} is missing from {str(self.images_dir)!r}")
        return file

    def image_parameters(self, generation_id: int) -> str | None:
        """The AUTOMATIC1111 `parameters` text stored in a generation's PNG (None if it has none)."""
        from .pnginfo import PARAMETERS_KEY, read_png_text

        return read_png_text(self.generation_image(generation_id)).get(PARAMETERS_KEY)

    def image_path(self, generation: dict[str, Any]) -> Path:
        """Absolute path of a generation's PNG (stored relative to the library's folder)."""
        return (self.path.parent / generation["image_path"]).resolve()

    def relative_image_path(self, file: Path) -> str:
        return os.path.relpath(file, self.path.parent)

    def table_columns(self, table: str) -> list[str]:
        """Column names of TABLE, in table order."""
        return list(self._columns(table))

    def _row_dict(self, table: str, row: tuple) -> dict[str, Any]:
        columns = self._columns(table)
        return dict(zip(columns, row))

    def _columns(self, table: str) -> list[str]:
        cache = self.__dict__.setdefault("_column_cache", {})
        if table not in cache:
            cache[table] = [c.name for c in self.db[table].columns]
        return cache[table]


def _looks_like_id(text: str) -> bool:
    # ASCII only: str.isdigit() also accepts "¹" or "٣", which int() refuses.
    return text.isascii() and text.isdigit()


def _is_row_id(value: int) -> bool:
    return 0 < value <= MAX_ROW_ID


def _decode(row: dict[str, Any], json_keys: tuple[str, ...]) -> dict[str, Any]:
    for key in json_keys:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row
