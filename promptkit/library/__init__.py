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
from .core import Library
from .files import SHA256_HEX, images_dir_for
from .generations import current_rating_sql
from .migrations import KNOWN_MIGRATIONS, applied_migration_names, migration_names, migrations, schema_columns

__all__ = [
    "BUSY_TIMEOUT_MS", "DEFAULT_DB", "KNOWN_MIGRATIONS", "Library", "MAX_ROW_ID", "SEARCH_RANK_LIMIT", "SHA256_HEX",
    "applied_migration_names", "backup_path_for", "connect_read_only", "current_rating_sql", "default_db_path",
    "file_sha256", "images_dir_for", "is_read_only_error", "migration_names", "migrations", "open_write_locked",
    "release_write_lock", "schema_columns", "user_tables", "utc_now",
]
