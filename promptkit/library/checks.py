"""Reads for `promptkit doctor`, through a plain connection, so a library in any state (damaged,
half migrated, not promptkit's) can be checked without `Library` opening or migrating it."""

from __future__ import annotations

import sqlite3
from typing import Any, Iterator


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """SQLite's integrity_check: ["ok"] when the file is sound."""
    return [r[0] for r in conn.execute("PRAGMA integrity_check")]


def foreign_key_problems(conn: sqlite3.Connection) -> list[tuple]:
    """SQLite's foreign_key_check: (table, rowid, parent table, fk index) per row whose reference is missing."""
    return conn.execute("PRAGMA foreign_key_check").fetchall()


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() is not None


def file_owners(conn: sqlite3.Connection) -> Iterator[tuple[str, Any, str | None, str | None, Any]]:
    """Every row that names files: ("generation", id, image sha256, image path, params) for each
    generation, then ("experiment", name, None, None, params) for each experiment (when the
    table exists)."""
    for gen_id, sha, image_path, params in conn.execute(
            "SELECT id, image_sha256, image_path, params FROM generations ORDER BY id"):
        yield "generation", gen_id, sha, image_path, params
    if has_table(conn, "experiments"):
        for name, params in conn.execute("SELECT name, params FROM experiments ORDER BY id"):
            yield "experiment", name, None, None, params


def released_files(conn: sqlite3.Connection) -> dict[str, float]:
    """sha256 -> when the last rows naming that file were deleted (see m005_released_files); {} on an
    older library."""
    if not has_table(conn, "released_files"):
        return {}
    return dict(conn.execute("SELECT sha256, released_at FROM released_files").fetchall())
