"""The `Library` class: opening, migrating and backing up the file, and write transactions.

Row access lives in the mixins (prompts, generations, experiments, votes, scores, whole tables) and the
file store in `files.py`; all of promptkit's SQL is in this package.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
from pathlib import Path
from typing import Iterator

import sqlite_utils
from sqlite_utils.migrations import Migrations

from ..errors import LibraryProblem
from .connection import backup, backup_path_for, connect, default_db_path, is_read_only_error, user_tables
from .experiments import ExperimentRows
from .files import FileStore, images_dir_for
from .generations import GenerationRows
from .migrations import migration_names, migrations
from .prompts import PromptRows
from .rows import RowAccess
from .scores import ScoreRows
from .votes import VoteRows


class Library(PromptRows, GenerationRows, ExperimentRows, VoteRows, ScoreRows, RowAccess, FileStore):
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
            self.conn = connect(self.path, read_only=read_only)
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
        """Copy the library with SQLite's backup API to `<db>.backup-<schema>-<utc time>`."""
        return backup(self.path, backup_path_for(self.path, schema, datetime.datetime.now(datetime.timezone.utc)))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so it
        waits for other writers instead of failing with "database is locked". Nested, it is a
        savepoint in the outer one: several library calls made inside one `write()` commit together."""
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
