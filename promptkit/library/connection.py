"""Opening a library's SQLite file: paths, connections, read-only mode, backups and lock checks.

`BUSY_TIMEOUT_MS` and `SEARCH_RANK_LIMIT` are re-exported by `promptkit.library` and read from
there when used, so a test (or a tuning script) can set them on the package.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
from pathlib import Path


DEFAULT_DB = "library.db"
BUSY_TIMEOUT_MS = 10_000
MAX_ROW_ID = 2**63 - 1  # SQLite's largest integer; a bigger id cannot name a row
# A search matching more prompts than this ranks only the newest this many: scoring every match of
# a word found in most prompts is what makes a search slow in a large library (see Library.search()).
SEARCH_RANK_LIMIT = 10_000


def setting(name: str):
    """The current value of a tunable constant, as set on the `promptkit.library` package."""
    from .. import library

    return getattr(library, name)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def default_db_path(explicit: str | os.PathLike | None = None) -> Path:
    """`--db PATH`, else `PROMPTKIT_DB`, else ./library.db."""
    return Path(explicit or os.environ.get("PROMPTKIT_DB") or DEFAULT_DB)


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A connection with the busy timeout and foreign keys on; READ_ONLY opens with mode=ro."""
    busy_ms = setting("BUSY_TIMEOUT_MS")
    if read_only:
        # mode=ro: SQLite itself refuses every write, even for root, for whom chmod means nothing.
        uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=busy_ms / 1000, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=busy_ms / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


_connect = connect  # the old private name


def connect_read_only(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection that cannot write, for inspecting a library in any state (see doctor.py)."""
    return connect(Path(path), read_only=True)


def user_tables(conn: sqlite3.Connection) -> list[str]:
    """Tables other than SQLite's own and the migrations record."""
    from sqlite_utils.migrations import Migrations

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


def backup(path: Path, target: Path) -> Path:
    """Copy the library at PATH to TARGET with SQLite's backup API, through a connection of its
    own: one that holds the write lock never finishes a backup (SQLITE_BUSY forever). A crash
    mid-copy never leaves a file that looks like a backup (it is copied to `.partial` first)."""
    partial = target.with_name(target.name + ".partial")
    source = connect(path)
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
    os.replace(partial, target)
    return target


def open_write_locked(path: Path) -> sqlite3.Connection:
    """A plain connection holding the write lock (BEGIN IMMEDIATE), for work on the library's
    files that no writer may race (`doctor --fix`). Raises sqlite3.OperationalError when the lock
    cannot be had; release it with `release_write_lock`."""
    conn = sqlite3.connect(str(path), timeout=setting("BUSY_TIMEOUT_MS") / 1000, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException:
        conn.close()
        raise
    return conn


def release_write_lock(conn: sqlite3.Connection) -> None:
    """Roll back (nothing was written; this only releases the lock) and close."""
    try:
        conn.execute("ROLLBACK")
    finally:
        conn.close()
