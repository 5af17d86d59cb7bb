"""Library maintenance: export, import (an export folder) and the doctor."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..doctor import DoctorReport
    from ..library import Library
    from ..portable import ExportFolder


def open_library(path: str | os.PathLike | None = None, create: bool = True) -> Library:
    """Open (and with `create`, make and migrate) the library at PATH.

    :param path: the library file; default PROMPTKIT_DB, else ./library.db.
    :param create: False refuses a library that does not exist yet.
    Use it as a context manager: `with open_library("library.db") as lib: ...`.
    """
    from ..library import Library

    return Library(path, create=create)


def export_library(library: Library, folder: str | os.PathLike) -> dict[str, Any]:
    """Write a portable copy of LIBRARY to FOLDER; returns the manifest (with "counts").

    :param library: the open library to copy.
    :param folder: where to write manifest.json, one JSON-lines file per table, images/ and loras/.
    """
    from ..portable import export_library as export

    return export(library, folder)


def read_export(folder: str | os.PathLike) -> ExportFolder:
    """Read and check an export FOLDER without touching any library."""
    from ..portable import read_export as read

    return read(folder)


def import_library(library: Library, export: str | os.PathLike | ExportFolder) -> dict[str, Any]:
    """Merge an export into LIBRARY; rows already there are skipped, ids remapped.

    :param library: the library to merge into.
    :param export: an export folder, or `read_export`'s result (checked before anything is written).
    :returns: added and present counts per table, images_added, renamed, notes.
    """
    from ..portable import import_library as merge

    return merge(library, export)


def check_library(db: str | os.PathLike | None = None, fix: bool = False, min_age: float = 600) -> DoctorReport:
    """Check a library file: integrity, schema, every image's sha256, orphan and temp files.

    :param fix: move stray files older than MIN_AGE seconds to <dbstem>-quarantine/.
    :returns: a `DoctorReport` (ok, findings, counts, ...).
    """
    from ..doctor import run_doctor
    from ..library import default_db_path

    return run_doctor(default_db_path(db), fix=fix, min_age_seconds=min_age)
