"""Library health checks (`promptkit doctor`): database, schema, image files; quarantine for strays.

The checks only read. `fix_library` moves stray files (orphans and leftovers of interrupted
writes) into `<dbstem>-quarantine/`; it never deletes anything and never moves a file that a
row refers to.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import LibraryProblem
from .hashing import file_sha256
from .library import (
    Library,
    applied_migration_names,
    connect_read_only,
    default_db_path,
    images_dir_for,
    is_read_only_error,
    migration_names,
    open_write_locked,
    release_write_lock,
    user_tables,
)
from .library.checks import file_owners, foreign_key_problems, integrity_problems, released_files

TEMP_PREFIX = ".tmp-"  # what Library.store_image names a file before its atomic rename
# A stray file younger than this may belong to a write in progress (stored, row not yet
# committed), so --fix leaves it alone.
DEFAULT_MIN_AGE_SECONDS = 600
MAX_LISTED = 50  # integrity or foreign-key rows listed one by one before summarising


def quarantine_dir_for(db_path: Path) -> Path:
    """`library.db` moves its stray files to `library-quarantine/`."""
    return db_path.with_name(f"{db_path.stem}-quarantine")


@dataclass
class Finding:
    """One thing doctor noticed. `problem` findings make the library inconsistent (exit 1)."""

    check: str  # integrity, foreign_keys, schema, missing_file, sha256_mismatch, orphan_file, temp_file
    problem: bool
    message: str
    path: str | None = None
    fixed: bool = False
    action: str | None = None  # what --fix did, or why it left the file alone


@dataclass
class DoctorReport:
    db: str
    images_dir: str
    schema: dict[str, Any]
    counts: dict[str, int]
    findings: list[Finding] = field(default_factory=list)
    quarantine: str | None = None

    @property
    def ok(self) -> bool:
        return not any(f.problem and not f.fixed for f in self.findings)

    @property
    def fixable(self) -> list[Finding]:
        return [f for f in self.findings if f.check in ("orphan_file", "temp_file") and not f.fixed]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _referenced_files(conn: sqlite3.Connection, db_path: Path) -> dict[Path, list[tuple[str, Any, str]]]:
    """Each file the library refers to -> [(kind, id, expected sha256)]: kind "generation" with
    its row id, or "experiment" with its name.

    Generations refer to their image, their stored input images and LoRA files; an experiment
    refers to the input images and LoRA files `ab new` stored for it, before any cell is run.
    """
    from .inputs import input_image_shas, params_dict, stored_lora_shas
    files: dict[Path, list[tuple[str, Any, str]]] = {}
    images = images_dir_for(db_path)

    def inputs(kind: str, ident: Any, params: Any) -> None:
        # init images, masks and control images are stored beside the outputs and referenced from params
        for input_sha in input_image_shas(params):
            files.setdefault((images / input_sha[:2] / f"{input_sha}.png").resolve(), []).append(
                (kind, ident, input_sha))
        # LoRA files are kept once per content under images/loras/
        for lora_sha in stored_lora_shas(params):
            files.setdefault((images / "loras" / lora_sha[:2] / f"{lora_sha}.safetensors").resolve(), []).append(
                (kind, ident, lora_sha))

    for kind, ident, sha, image_path, params in file_owners(conn):
        if kind == "generation":
            files.setdefault((db_path.parent / str(image_path)).resolve(), []).append(("generation", ident, sha))
            inputs("generation", ident, params)
        else:
            inputs("experiment", ident, params_dict(params).get("extra"))
    return files


def _owner(kind: str, ident: Any) -> str:
    return f"generation {ident}" if kind == "generation" else f"experiment {ident!r}"


def _schema(conn: sqlite3.Connection) -> dict[str, Any]:
    known = migration_names(Library.migrations)
    applied = applied_migration_names(conn, Library.migrations)
    return {
        "applied": applied,
        "known": known,
        "pending": [name for name in known if name not in applied],
        "unknown": [name for name in applied if name not in known],
        "version": applied[-1] if applied else "",
    }


def _open_for_checks(db_path: Path) -> sqlite3.Connection:
    if db_path.is_dir():
        raise LibraryProblem(f"library path {str(db_path)!r} is a folder, not a SQLite file")
    if not db_path.is_file():
        raise LibraryProblem(f"no library at {str(db_path)!r}")
    try:
        conn = connect_read_only(db_path)
    except sqlite3.DatabaseError as exc:
        raise LibraryProblem(f"cannot check {str(db_path)!r}: {exc}") from None
    try:
        others = user_tables(conn)
        foreign = others and not _schema(conn)["applied"]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_CORRUPT":
            return conn  # damaged, yet a SQLite file: the checks report what they can
        conn.close()
        raise LibraryProblem(f"cannot check {str(db_path)!r}: {exc}") from None
    if foreign:
        conn.close()
        raise LibraryProblem(f"{str(db_path)!r} is a SQLite database but not a promptkit library "
                             f"(it has tables {', '.join(others[:5])})")
    return conn


def diagnose(db_path: str | os.PathLike | None = None) -> DoctorReport:
    """Check a library without changing it: integrity, foreign keys, schema version, every
    generation's file (present, sha256 matching), orphan files and leftover temp files."""
    path = default_db_path(db_path)
    conn = _open_for_checks(path)
    try:
        return _diagnose(conn, path)
    finally:
        conn.close()


def _diagnose(conn: sqlite3.Connection, path: Path) -> DoctorReport:
    images_dir = images_dir_for(path)
    schema_unread = {"applied": [], "known": migration_names(Library.migrations), "pending": [], "unknown": [],
                     "version": ""}
    report = DoctorReport(db=str(path), images_dir=str(images_dir), schema=schema_unread, counts={
        "generations": 0, "referenced_files": 0, "files_hashed": 0, "files_on_disk": 0})
    add = report.findings.append

    # 1. SQLite's own checks
    try:
        rows = integrity_problems(conn)
    except sqlite3.DatabaseError as exc:
        rows = [f"integrity_check could not run: {exc}"]
    if rows != ["ok"]:
        for row in rows[:MAX_LISTED]:
            add(Finding("integrity", True, f"database damaged: {row}", str(path)))
    try:
        fk_rows = foreign_key_problems(conn)
    except sqlite3.DatabaseError as exc:
        fk_rows = []
        add(Finding("foreign_keys", True, f"foreign_key_check could not run: {exc}", str(path)))
    for table, rowid, parent, _ in fk_rows[:MAX_LISTED]:
        add(Finding("foreign_keys", True, f"{table} row {rowid} refers to a {parent} row that does not exist"))
    if len(fk_rows) > MAX_LISTED:
        add(Finding("foreign_keys", True, f"... and {len(fk_rows) - MAX_LISTED} more rows with missing references"))

    # 2.-4. read tables, which a damaged file may not allow
    try:
        _check_schema_and_files(conn, path, report)
    except sqlite3.DatabaseError as exc:
        add(Finding("integrity", True, f"database damaged: reading it failed: {exc}", str(path)))
    return report


def _check_schema_and_files(conn: sqlite3.Connection, path: Path, report: DoctorReport) -> None:
    add = report.findings.append
    images_dir = images_dir_for(path)

    # 2. Schema version
    report.schema = schema = _schema(conn)
    if schema["unknown"]:
        add(Finding("schema", True, f"written by a newer promptkit (schema {schema['unknown'][-1]}); "
                                    "upgrade promptkit before using or fixing it"))
    elif not schema["applied"]:  # a foreign database was refused on opening
        add(Finding("schema", False, "empty database; `promptkit init` creates the schema"))
    elif schema["pending"]:
        add(Finding("schema", False, f"schema {schema['version']} is older than {schema['known'][-1]}; the next "
                                     "promptkit command migrates it, after saving a backup copy"))
    has_generations = "generations" in user_tables(conn)

    # 3. Every generation's image: present, and the bytes its row says
    referenced = _referenced_files(conn, path) if has_generations else {}
    report.counts = {"generations": sum(kind == "generation" for v in referenced.values() for kind, _, _ in v),
                     "referenced_files": len(referenced),
                     "files_hashed": 0, "files_on_disk": 0}
    for file, rows in referenced.items():
        generations = [str(ident) for kind, ident, _ in rows if kind == "generation"]
        named = ([f"generation {', '.join(generations)}"] if generations else []) + \
            [_owner(kind, ident) for kind, ident, _ in rows if kind != "generation"]
        what = "LoRA file" if file.suffix == ".safetensors" else "image"
        if not file.is_file():
            add(Finding("missing_file", True, f"{what} for {'; '.join(named)} is missing", str(file)))
            continue
        actual = file_sha256(file)
        report.counts["files_hashed"] += 1
        for kind, ident, expected in rows:
            if actual != expected:
                add(Finding("sha256_mismatch", True, f"{what} for {_owner(kind, ident)} has sha256 {actual[:16]}…, "
                                                     f"its row says {str(expected)[:16]}…", str(file)))

    # 4. Files nothing refers to
    now = time.time()
    for file in _files_under(images_dir):
        report.counts["files_on_disk"] += 1
        age = now - file.lstat().st_mtime
        if file.name.startswith(TEMP_PREFIX):
            add(Finding("temp_file", True, f"leftover of an interrupted write ({_age(age)} old)", str(file)))
        elif file.resolve() not in referenced and has_generations:
            add(Finding("orphan_file", True, f"no generation refers to this file ({_age(age)} old)", str(file)))


def _files_under(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for root, _dirs, files in os.walk(folder):  # does not follow symlinked folders
        found.extend(Path(root) / name for name in files)
    return sorted(found)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _fix_refusal(report: DoctorReport) -> str | None:
    """Why no file may be moved out of a library in this state, or None when fixing is safe."""
    if any(f.check == "integrity" for f in report.findings):
        return "the database is damaged, so which files its rows refer to cannot be trusted"
    if report.schema.get("unknown") or not report.schema.get("applied"):
        return "the schema is not one this promptkit knows"
    return None


def _quarantine(finding: Finding, referenced: dict[Path, Any], now: float, min_age_seconds: float, images_dir: Path,
                target_root: Path, released: dict[str, float]) -> dict[str, str] | None:
    """Move FINDING's file (at least MIN_AGE_SECONDS old at NOW, referenced by no row) under TARGET_ROOT,
    keeping its path below IMAGES_DIR; set the finding's action and return its `moved.json` entry, or None."""
    file = Path(finding.path or "")
    if file.resolve() in referenced:
        finding.action = "left in place: a generation now refers to it"
        return None
    try:
        age = now - file.lstat().st_mtime
    except FileNotFoundError:
        finding.fixed, finding.action = True, "gone before it could be moved"
        return None
    if age < min_age_seconds and not _released(released, file):
        finding.action = (f"left in place: younger than {min_age_seconds:g} s, it may belong to a "
                          "write in progress (see --min-age)")
        return None
    destination = target_root / file.relative_to(images_dir)
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.replace(file, destination)  # same file system: the library's own folder
    finding.fixed, finding.action = True, f"moved to {destination}"
    return {"from": str(file), "to": str(destination), "reason": finding.check}


def _released(released: dict[str, float], file: Path) -> bool:
    """Whether FILE's rows were deleted (`delete --with-images`) after it was last written: no write
    in progress can own it, so the minimum age does not apply."""
    when = released.get(file.name.split(".")[0])
    try:
        return when is not None and file.lstat().st_mtime <= when
    except FileNotFoundError:
        return False


def fix_library(db_path: str | os.PathLike | None = None,
                min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS) -> DoctorReport:
    """Diagnose, then move orphan and temp files older than MIN_AGE_SECONDS into
    `<dbstem>-quarantine/<utc time>/` (keeping their paths), with a `moved.json` listing them.

    The database write lock is held while moving, and references are read again under it,
    so no row can be recorded for a file as it moves (Library.add_generation checks the
    file inside its own write transaction).
    """
    path = default_db_path(db_path)
    report = diagnose(path)
    candidates = report.fixable
    if not candidates:
        return report
    refusal = _fix_refusal(report)
    if refusal:
        for finding in candidates:
            finding.action = f"left in place: {refusal}"
        return report
    images_dir = images_dir_for(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target_root = quarantine_dir_for(path) / stamp
    moved: list[dict[str, str]] = []
    try:
        conn = open_write_locked(path)
    except sqlite3.OperationalError as exc:
        reason = "read-only" if is_read_only_error(exc) else str(exc)
        raise LibraryProblem(f"cannot fix {str(path)!r}: {reason}; nothing was moved") from None
    try:
        referenced = _referenced_files(conn, path)
        released = released_files(conn)
        now = time.time()
        for finding in candidates:
            entry = _quarantine(finding, referenced, now, min_age_seconds, images_dir, target_root, released)
            if entry is not None:
                moved.append(entry)
    finally:
        release_write_lock(conn)  # nothing was written; this only releases the lock
    if moved:
        (target_root / "moved.json").write_text(json.dumps(moved, indent=2) + "\n", encoding="utf-8")
        report.quarantine = str(target_root)
    return report


def run_doctor(db_path: str | os.PathLike | None = None, fix: bool = False,
               min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS) -> DoctorReport:
    return fix_library(db_path, min_age_seconds) if fix else diagnose(db_path)
