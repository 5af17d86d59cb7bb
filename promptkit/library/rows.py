"""Row helpers shared by the row-access modules, and whole-table access (export and import)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, TypeVar

import sqlite_utils

from .connection import MAX_ROW_ID

T = TypeVar("T")


def looks_like_id(text: str) -> bool:
    # ASCII only: str.isdigit() also accepts "¹" or "٣", which int() refuses.
    return text.isascii() and text.isdigit()


def is_row_id(value: int) -> bool:
    return 0 < value <= MAX_ROW_ID


def decode(row: dict[str, Any], json_keys: tuple[str, ...]) -> dict[str, Any]:
    """ROW with each of JSON_KEYS parsed from its JSON text (left as text if it is not JSON)."""
    for key in json_keys:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row


def placeholders(values) -> str:
    return ", ".join("?" for _ in values)


class RowAccess:
    """Column lookups and whole-table reads and writes, mixed into `Library` (needs `db`, `conn`)."""

    db: sqlite_utils.Database
    conn: sqlite3.Connection

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

    def table_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of TABLE as stored (JSON left as text), in rowid order."""
        cursor = self.conn.execute(f"SELECT * FROM [{table}] ORDER BY rowid")
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor]

    def snapshot(self, tables: list[str] | tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
        """Every row of each of TABLES, all read in one transaction: the tables from the same moment."""
        self.conn.execute("BEGIN")
        try:
            return {name: self.table_rows(name) for name in tables}
        finally:
            self.conn.execute("ROLLBACK")

    def name_taken(self, table: str, name: str) -> bool:
        """Whether a row of TABLE (prompts or experiments) already has the name NAME."""
        return self.conn.execute(f"SELECT 1 FROM [{table}] WHERE name = ?", [name]).fetchone() is not None

    def merge_rows(self, merge: Callable[[], T]) -> T:
        """Run MERGE, which writes an export's rows (`insert_row`, `name_taken`, `table_rows`), as one
        all-or-nothing step: a single BEGIN IMMEDIATE transaction, rolled back whole if MERGE raises,
        so an import that fails halfway leaves no row behind. Returns what MERGE returns."""
        with self.write():
            return merge()

    def insert_row(self, table: str, row: dict[str, Any]) -> int:
        """Insert ROW as given (id dropped) into TABLE; return its new rowid (the id, where the
        table has one). Call inside `write()`."""
        handle = self.db[table]
        handle.insert({k: v for k, v in row.items() if k != "id"})
        return int(handle.last_rowid)
