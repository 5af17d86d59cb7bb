"""The prompt library: one SQLite file (sqlite-utils) plus content-addressed PNGs beside it.

All of promptkit's SQL lives in this package:

- `migrations.py`: the schema, one function per migration;
- `connection.py`: paths, connections (read-only too), backups, the write lock;
- `files.py`: the content-addressed file store (images, LoRA copies, atomic writes);
- `prompts.py`, `generations.py`, `experiments.py`, `votes.py`, `rows.py`: row access, mixed
  into `Library` (`core.py`);
- `checks.py`: the reads `promptkit doctor` makes on a library in any state.

A generation's rating is its latest rating (see `generations.py`).
"""

from __future__ import annotations

import sys

from ..hashing import file_sha256
from .connection import (
    BUSY_TIMEOUT_MS,
    DEFAULT_DB,
    MAX_ROW_ID,
    SEARCH_RANK_LIMIT,
    backup_path_for,
    connect_read_only,
    default_db_path,
    is_read_only_error,
    open_write_locked,
    release_write_lock,
    user_tables,
    utc_now,
)
# Loaded on first use (PEP 562), so that `from promptkit.library import SEARCH_RANK_LIMIT` or
# `default_db_path` does not import sqlite-utils (and numpy): `promptkit build` starts without them.
_LAZY = {
    "Library": ".core", "SHA256_HEX": ".files", "images_dir_for": ".files",
    "current_rating_sql": ".generations", "KNOWN_MIGRATIONS": ".migrations",
    "applied_migration_names": ".migrations", "migration_names": ".migrations", "migrations": ".migrations",
    "schema_columns": ".migrations",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    # Importing the submodule `migrations.py` bound the package's `migrations` to that module; the
    # package's `migrations` is the migration set it defines, as before.
    module = sys.modules.get(f"{__name__}.migrations")
    if module is not None:
        globals()["migrations"] = module.migrations
    return value


__all__ = [
    "BUSY_TIMEOUT_MS", "DEFAULT_DB", "KNOWN_MIGRATIONS", "Library", "MAX_ROW_ID", "SEARCH_RANK_LIMIT", "SHA256_HEX",
    "applied_migration_names", "backup_path_for", "connect_read_only", "current_rating_sql", "default_db_path",
    "file_sha256", "images_dir_for", "is_read_only_error", "migration_names", "migrations", "open_write_locked",
    "release_write_lock", "schema_columns", "user_tables", "utc_now",
]
