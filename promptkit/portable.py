"""Portable library copies: `export_library` writes a self-describing folder, `import_library`
merges one into another library without duplicates.

An export folder holds:

- `manifest.json`: format name and version, promptkit version, schema version, row counts,
  and for each table its file, columns, JSON-text columns and the file's sha256;
- one JSON-lines file per table (`prompts.jsonl`, `generations.jsonl`, ...), one row per line,
  every column exactly as stored (JSON-text columns stay text, so nothing is re-encoded);
- `images/<sha256>.png`, one file per distinct image (`.jpg` or `.webp` for a JPEG or WebP
  imported from another tool, kept byte for byte);
- `loras/<sha256>.safetensors`, one file per distinct LoRA the library keeps a copy of (only
  when there is one: such an export is format version 2, which older promptkits refuse rather
  than import generations without their LoRA files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable


from . import __version__
from .errors import LibraryProblem
from .hashing import file_sha256
from .library import Library, migration_names, utc_now
from .library.files import existing_image_file, image_suffix
from .library.votes import DEFAULT_RATER
from .library import schema_columns as library_schema_columns

FORMAT_NAME = "promptkit-export"
FORMAT_VERSION = 2  # 2: a `loras` folder; an export without LoRA files is still written as 1
# Parents before children: an import inserts in this order.
TABLES = ("prompts", "experiments", "variants", "generations", "ratings", "votes")
JSON_COLUMNS = {
    "prompts": ["fields", "tags"],
    "experiments": ["seeds", "params"],
    "variants": ["params"],
    "generations": ["batch", "params", "versions"],
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- export -------------------------------------------------------------------


def export_library(lib: Library, folder: str | os.PathLike) -> dict[str, Any]:
    """Write a portable copy of LIB to FOLDER (new, or an empty folder); return the manifest.

    Rows are read in one read transaction (a consistent snapshot), every image is checked
    against its sha256 as it is copied, and the export is assembled beside FOLDER and renamed
    into place at the end, so an interrupted export never looks complete.
    """
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise LibraryProblem(f"cannot export to {str(target)!r}: it is a file; name a new folder")
    if target.exists() and any(target.iterdir()):
        raise LibraryProblem(f"export folder {str(target)!r} exists and is not empty; name a new folder")
    if not target.parent.is_dir():
        raise LibraryProblem(f"cannot export to {str(target)!r}: folder {str(target.parent)!r} does not exist")

    tables = _snapshot(lib)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        os.chmod(staging, 0o777 & ~_current_umask())  # mkdtemp makes it private; an export is for sharing
        owners = _input_owners(tables)
        images = _copy_images(lib, tables["generations"], owners, staging / "images")
        loras = _copy_loras(lib, owners, staging / "loras")
        manifest: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION if loras["count"] else 1,
            "promptkit_version": __version__,
            "schema": lib.schema_version(),
            "exported_at": utc_now(),
            "counts": {name: len(rows) for name, rows in tables.items()} | {"images": images["count"]},
            "tables": {},
            "images": {"folder": "images", "naming": "<sha256>.png (.jpg, .webp: imported JPEG/WebP)", **images},
        }
        if loras["count"]:
            manifest["counts"]["loras"] = loras["count"]
            manifest["loras"] = {"folder": "loras", "naming": "<sha256>.safetensors", **loras}
        for name, rows in tables.items():
            file = staging / f"{name}.jsonl"
            data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
            _write_synced(file, data)
            manifest["tables"][name] = {
                "file": file.name,
                "rows": len(rows),
                "columns": lib.table_columns(name),
                "json_columns": JSON_COLUMNS.get(name, []),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        _write_synced(staging / "manifest.json", (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
        if target.exists():
            target.rmdir()  # empty, checked above; rename cannot replace it on every system
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _snapshot(lib: Library) -> dict[str, list[dict[str, Any]]]:
    return lib.snapshot(TABLES)  # one read transaction: every table from the same moment


def _input_owners(tables: dict[str, list[dict[str, Any]]]) -> list[tuple[str, Any]]:
    """(who, params naming stored inputs): each generation, and each experiment, whose init images
    and LoRAs `ab new` stored before any cell was run."""
    from .inputs import params_dict

    owners: list[tuple[str, Any]] = [(f"generation {g['id']}", g.get("params")) for g in tables["generations"]]
    owners += [(f"experiment {e.get('name')!r}", params_dict(e.get("params")).get("extra"))
               for e in tables["experiments"]]
    return owners


def _copy_images(lib: Library, generations: list[dict[str, Any]], owners: list[tuple[str, Any]],
                 folder: Path) -> dict[str, int]:
    folder.mkdir()
    done: set[str] = set()
    total = 0
    from .inputs import input_image_shas

    wanted = [(f"generation {gen['id']}", gen["image_sha256"], lib.image_path(gen)) for gen in generations]
    # init images, masks and control images travel too, so reproduce works in the other library
    wanted += [(owner, sha, lib.image_file(sha)) for owner, params in owners for sha in input_image_shas(params)]
    for owner, sha, source in wanted:
        if sha in done:
            continue
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise LibraryProblem(f"cannot export: image of {owner} ({source}) cannot be read "
                                 f"({exc.strerror}); run `promptkit doctor`") from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise LibraryProblem(f"cannot export: image of {owner} ({source}) does not match its "
                                 "sha256; run `promptkit doctor`")
        _write_synced(folder / f"{sha}{image_suffix(data)}", data)
        done.add(sha)
        total += len(data)
    return {"count": len(done), "bytes": total}


def _copy_loras(lib: Library, owners: list[tuple[str, Any]], folder: Path) -> dict[str, int]:
    """The library's LoRA copies that rows refer to, checked against their sha256 as they are copied."""
    from .inputs import stored_lora_shas

    wanted = {sha: owner for owner, params in owners for sha in stored_lora_shas(params)}
    total = 0
    for sha, owner in sorted(wanted.items()):
        folder.mkdir(exist_ok=True)
        source, target = lib.lora_file(sha), folder / f"{sha}.safetensors"
        digest = hashlib.sha256()
        try:
            with open(source, "rb") as reader, open(target, "wb") as writer:
                for block in iter(lambda: reader.read(1 << 20), b""):
                    digest.update(block)
                    writer.write(block)
                    total += len(block)
                writer.flush()
                os.fsync(writer.fileno())
        except OSError as exc:
            raise LibraryProblem(f"cannot export: LoRA file of {owner} ({source}) cannot be read "
                                 f"({exc.strerror}); run `promptkit doctor`") from None
        if digest.hexdigest() != sha:
            raise LibraryProblem(f"cannot export: LoRA file of {owner} ({source}) does not match "
                                 "its sha256; run `promptkit doctor`")
    return {"count": len(wanted), "bytes": total}


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


# -- import -------------------------------------------------------------------


def schema_columns() -> dict[str, list[str]]:
    """Each table's columns in the schema this promptkit writes (built in memory)."""
    return library_schema_columns(TABLES)


class ExportFolder:
    """A parsed and fully checked export folder (`read_export`); no library is touched."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = self._read_manifest()
        columns = schema_columns()
        self.tables = {name: self._read_table(name, columns[name]) for name in TABLES}
        self._check_references()
        from .inputs import input_image_shas, stored_lora_shas

        owners = _input_owners(self.tables)
        self.image_shas = sorted({g["image_sha256"] for g in self.tables["generations"]}
                                 | {sha for _owner, params in owners for sha in input_image_shas(params)})
        self.lora_shas = sorted({sha for _owner, params in owners for sha in stored_lora_shas(params)})
        self._check_images()

    def _problem(self, where: Path | str, what: str) -> LibraryProblem:
        return LibraryProblem(f"cannot import {str(where)!r}: {what}; nothing was imported")

    def _read_manifest(self) -> dict[str, Any]:
        path = self.folder / "manifest.json"
        if not self.folder.is_dir():
            raise self._problem(self.folder, "not a folder")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise self._problem(path, "no manifest.json, so this is not a promptkit export") from None
        except (OSError, ValueError) as exc:
            raise self._problem(path, f"unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise self._problem(path, f"format is not {FORMAT_NAME!r}")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise self._problem(path, f"format version {version!r} is newer than this promptkit reads "
                                      f"({FORMAT_VERSION}); upgrade promptkit")
        schema = manifest.get("schema")
        if schema not in migration_names(Library.migrations):
            raise self._problem(path, f"written by a promptkit with schema {schema!r}, which this one does not know")
        if not isinstance(manifest.get("tables"), dict):
            raise self._problem(path, "manifest has no table list")
        return manifest

    def _read_table(self, name: str, columns: list[str]) -> list[dict[str, Any]]:
        entry = self.manifest["tables"].get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise self._problem(self.folder / "manifest.json", f"no entry for table {name!r}")
        path = self.folder / Path(entry["file"]).name  # never a path outside the folder
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise self._problem(path, f"cannot read it ({exc.strerror})") from None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise self._problem(path, "its sha256 does not match the manifest (changed or damaged)")
        known = set(columns)
        rows = []
        for number, line in enumerate(data.decode("utf-8", errors="strict").splitlines(), start=1):
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise self._problem(f"{path}:{number}", f"not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise self._problem(f"{path}:{number}", "a row must be a JSON object")
            unknown = sorted(set(row) - known)
            if unknown:
                raise self._problem(f"{path}:{number}", f"unknown column(s) {', '.join(unknown)}")
            odd = [k for k, v in row.items() if not isinstance(v, (str, int, float, type(None)))]
            if odd:
                raise self._problem(f"{path}:{number}", f"column {odd[0]!r} holds a {type(row[odd[0]]).__name__}; "
                                                        "columns hold text, numbers or null")
            if "id" in known and (not isinstance(row.get("id"), int) or isinstance(row.get("id"), bool)):
                raise self._problem(f"{path}:{number}", "every row needs an integer id")
            rows.append(row)
        if "id" in known and len({r["id"] for r in rows}) != len(rows):
            raise self._problem(path, "two rows share an id")
        if len(rows) != entry.get("rows"):
            raise self._problem(path, f"{len(rows)} rows but the manifest says {entry.get('rows')}")
        return rows

    def _check_references(self) -> None:
        ids = {name: {row.get("id") for row in self.tables[name]} for name in ("prompts", "experiments",
                                                                                "generations")}
        checks = [
            ("prompts", "parent_id", "prompts", True),
            ("variants", "experiment_id", "experiments", False),
            ("variants", "prompt_id", "prompts", True),
            ("generations", "prompt_id", "prompts", False),
            ("generations", "experiment_id", "experiments", True),
            ("ratings", "generation_id", "generations", False),
            ("votes", "experiment_id", "experiments", False),
            ("votes", "left_generation_id", "generations", False),
            ("votes", "right_generation_id", "generations", False),
            ("votes", "winner_generation_id", "generations", True),
        ]
        for table, column, parent, nullable in checks:
            for number, row in enumerate(self.tables[table], start=1):
                value = row.get(column)
                if (value is None and not nullable) or (value is not None and value not in ids[parent]):
                    raise self._problem(f"{self.folder / (table + '.jsonl')}:{number}",
                                        f"{column} {value!r} is not a {parent} row in this export")
        for number, gen in enumerate(self.tables["generations"], start=1):
            if not isinstance(gen.get("image_sha256"), str) or not _SHA256.fullmatch(gen["image_sha256"]):
                raise self._problem(f"{self.folder / 'generations.jsonl'}:{number}", "image_sha256 is not a sha256")
        _parents_first(self.tables["prompts"], lambda: self._problem(self.folder / "prompts.jsonl",
                                                                     "parent links form a cycle"))

    def _check_images(self) -> None:
        files = [("image", sha, self.image_file(sha)) for sha in self.image_shas]
        files += [("LoRA file", sha, self.lora_file(sha)) for sha in self.lora_shas]
        for what, sha, path in files:
            try:
                actual = file_sha256(path)
            except OSError as exc:
                raise self._problem(path, f"{what} missing or unreadable ({exc.strerror})") from None
            if actual != sha:
                raise self._problem(path, f"{what} content has sha256 {actual}, not the {sha} its name says")

    def image_file(self, sha: str) -> Path:
        return existing_image_file(lambda suffix: self.folder / "images" / f"{sha}{suffix}")

    def lora_file(self, sha: str) -> Path:
        return self.folder / "loras" / f"{sha}.safetensors"


def _parents_first(prompts: list[dict[str, Any]], cycle_error) -> list[dict[str, Any]]:
    ordered: list[dict[str, Any]] = []
    placed: set[Any] = set()
    waiting = list(prompts)
    while waiting:
        ready = [p for p in waiting if p.get("parent_id") is None or p["parent_id"] in placed]
        if not ready:
            raise cycle_error()
        ordered += ready
        placed.update(p.get("id") for p in ready)
        taken = {id(p) for p in ready}
        waiting = [p for p in waiting if id(p) not in taken]
    return ordered


# The columns that say two rows are the same row, after ids are remapped.
PROMPT_KEY = ("positive", "negative", "template", "template_digest", "fields", "created_at")
EXPERIMENT_KEY = ("name", "seeds", "params", "model", "created_at")
RATING_KEY = ("generation_id", "stars", "note", "created_at")
VOTE_KEY = ("experiment_id", "seed", "left_generation_id", "right_generation_id", "winner_generation_id",
            "created_at", "rater")


def _key(row: dict[str, Any], columns: Iterable[str]) -> tuple:
    return tuple(row.get(c) for c in columns)


def _vote_key(row: dict[str, Any]) -> tuple:
    """A vote's identity, its rater's included: an export from before m008 has none, so its votes are the
    one local person's (DEFAULT_RATER), as m008 made them."""
    return _key(dict(row, rater=row.get("rater") or DEFAULT_RATER), VOTE_KEY)


def read_export(folder: str | os.PathLike) -> ExportFolder:
    """Read and check an export folder completely: manifest, each table file's sha256 and rows,
    references between rows, every image's and LoRA file's sha256. Raises LibraryProblem naming the bad file."""
    return ExportFolder(Path(folder))


def import_library(lib: Library, folder: str | os.PathLike | ExportFolder) -> dict[str, Any]:
    """Merge the export in FOLDER into LIB; return what was added and what was already there.

    Everything is checked first (manifest, every table file's sha256, references, every
    image's and LoRA file's sha256); then images and LoRA files are stored (atomically, content-addressed); then every row
    is written in one BEGIN IMMEDIATE transaction. Rows already in LIB are recognised by
    content, not id: prompts by text, template digest, fields and creation time; generations
    by every column but id and image path; ratings and votes likewise. Ids are remapped.
    """
    export = folder if isinstance(folder, ExportFolder) else read_export(folder)

    # 1. Images, before any row that refers to them
    images_added = 0
    for sha in export.image_shas:
        existed = lib.image_file(sha).is_file()
        stored_sha, _ = lib.store_image(export.image_file(sha).read_bytes())
        if stored_sha != sha:  # the file changed since it was checked
            raise LibraryProblem(f"cannot import {str(export.image_file(sha))!r}: it changed while importing; "
                                 "no rows were imported")
        images_added += not existed
    loras_added = 0
    for sha in export.lora_shas:
        existed = lib.lora_file(sha).is_file()
        lib.store_lora(export.lora_file(sha), sha)  # checks the sha256 again as it copies
        loras_added += not existed

    # 2. Rows, in one transaction
    summary: dict[str, Any] = {"added": {t: 0 for t in TABLES}, "present": {t: 0 for t in TABLES},
                               "images_added": images_added, "images_present": len(export.image_shas) - images_added,
                               "loras_added": loras_added, "loras_present": len(export.lora_shas) - loras_added,
                               "renamed": [], "notes": []}
    lib.merge_rows(_MergeRows(lib, export, summary).run)
    return summary


class _MergeRows:
    def __init__(self, lib: Library, export: ExportFolder, summary: dict[str, Any]) -> None:
        self.lib, self.export, self.summary = lib, export, summary
        self.prompt_ids: dict[Any, int] = {}
        self.experiment_ids: dict[Any, int] = {}
        self.generation_ids: dict[Any, int] = {}

    def _existing(self, table: str, key_of) -> dict[tuple, int]:
        return {key_of(row): row["id"] for row in self.lib.table_rows(table)}

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        new_id = self.lib.insert_row(table, row)
        self.summary["added"][table] += 1
        return new_id

    def _free_name(self, table: str, name: str) -> str:
        candidate, n = f"{name} (imported)", 2
        while self.lib.name_taken(table, candidate):
            candidate, n = f"{name} (imported {n})", n + 1
        return candidate

    def _named_row(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        name = row.get("name")
        if name is not None and self.lib.name_taken(table, name):
            renamed = self._free_name(table, name)
            self.summary["renamed"].append({"table": table, "from": name, "to": renamed})
            return dict(row, name=renamed)
        return row

    def run(self) -> None:
        # Matches are against the library as it was before this import, so an export holding
        # two identical rows imports both.
        tables = self.export.tables
        self._merge_prompts(tables)
        self._merge_experiments(tables)
        self._merge_generations(tables)
        self._merge_ratings_and_votes(tables)

    def _merge_prompts(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        existing_prompts = self._existing("prompts", lambda r: _key(r, PROMPT_KEY))
        for row in _parents_first(tables["prompts"], lambda: None):
            key = _key(row, PROMPT_KEY)
            if key in existing_prompts:
                self.prompt_ids[row["id"]] = existing_prompts[key]
                self.summary["present"]["prompts"] += 1
                continue
            parent = row.get("parent_id")
            new = dict(self._named_row("prompts", row), parent_id=None if parent is None else self.prompt_ids[parent])
            self.prompt_ids[row["id"]] = self._insert("prompts", new)

    def _merge_experiments(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        existing_experiments = self._existing("experiments", lambda r: _key(r, EXPERIMENT_KEY))
        for row in tables["experiments"]:
            key = _key(row, EXPERIMENT_KEY)
            if key in existing_experiments:
                self.experiment_ids[row["id"]] = existing_experiments[key]
                self.summary["present"]["experiments"] += 1
            else:
                self.experiment_ids[row["id"]] = self._insert("experiments", self._named_row("experiments", row))

        for row in tables["variants"]:
            new = dict(row, experiment_id=self.experiment_ids[row["experiment_id"]],
                       prompt_id=None if row.get("prompt_id") is None else self.prompt_ids[row["prompt_id"]])
            found = self.lib.experiment_variant(new["experiment_id"], new["label"])
            if found is None:
                self.lib.insert_row("variants", new)
                self.summary["added"]["variants"] += 1
            else:
                self.summary["present"]["variants"] += 1
                if tuple(found) != (new.get("prompt_id"), new.get("params")):
                    self.summary["notes"].append(f"variant {new['label']!r} of experiment {new['experiment_id']} "
                                                 "differs from the export's; kept the library's")

    def _merge_generations(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        generation_columns = [c for c in self.lib.table_columns("generations") if c not in ("id", "image_path")]
        existing_generations = self._existing("generations", lambda r: _key(r, generation_columns))
        for row in tables["generations"]:
            new = dict(row, prompt_id=self.prompt_ids[row["prompt_id"]],
                       experiment_id=None if row.get("experiment_id") is None
                       else self.experiment_ids[row["experiment_id"]])
            key = _key(new, generation_columns)
            if key in existing_generations:
                self.generation_ids[row["id"]] = existing_generations[key]
                self.summary["present"]["generations"] += 1
                continue
            file = self.lib.image_file(new["image_sha256"])
            if not file.is_file():  # checked under the write lock, as Library.add_generation does
                raise LibraryProblem(f"image {file} vanished during the import; no rows were imported")
            new["image_path"] = self.lib.relative_image_path(file)
            self.generation_ids[row["id"]] = self._insert("generations", new)

    def _merge_ratings_and_votes(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        def gen(value):
            return None if value is None else self.generation_ids[value]

        existing_ratings = self._existing("ratings", lambda r: _key(r, RATING_KEY))
        for row in tables["ratings"]:
            new = dict(row, generation_id=gen(row["generation_id"]))
            if _key(new, RATING_KEY) in existing_ratings:
                self.summary["present"]["ratings"] += 1
            else:
                self._insert("ratings", new)

        existing_votes = self._existing("votes", _vote_key)
        for row in tables["votes"]:
            new = dict(row, experiment_id=self.experiment_ids[row["experiment_id"]],
                       left_generation_id=gen(row["left_generation_id"]),
                       right_generation_id=gen(row["right_generation_id"]),
                       winner_generation_id=gen(row.get("winner_generation_id")))
            if _vote_key(new) in existing_votes:
                self.summary["present"]["votes"] += 1
            else:
                self._insert("votes", new)
