"""Importing images made by other tools (and other promptkit libraries), and re-running them.

`import_images` walks files and folders, reads each image's metadata (`promptkit.importers`),
and stores it as a generation of its prompt (found, or created with template `imported`): the
image bytes content-addressed first, then the prompt and generation rows in one transaction. So
an interrupted import leaves at most a file without a row (which the re-run adopts, or `doctor
--fix` moves aside), never a row without its file. Idempotent by the image's sha256. A file that
cannot be read is one line in the summary; the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import PromptkitError
from ..importers import TOOL_NAMES, ImportedImage, UnreadableImage, read_image
from ..importers.common import mapped_sampler
from ..importers.container import MAX_FILE_BYTES, mb
from ..library import Library

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
IMPORTED_TEMPLATE = "imported"
UNKNOWN_SEED = -1  # the seed column is required; -1 says the image did not carry one

Progress = Callable[[int, int], None]


@dataclass
class FileOutcome:
    file: str
    status: str                       # imported, duplicate, failed, would_import
    tool: str | None = None           # None when the file could not be read
    message: str = ""
    generation_id: int | None = None
    prompt_id: int | None = None
    uncertain: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    files: list[FileOutcome]
    dry_run: bool = False

    def summary(self) -> dict[str, dict[str, int]]:
        """Per tool (and `unreadable` for files no reader took): imported, duplicate, failed."""
        table: dict[str, dict[str, int]] = {}
        for outcome in self.files:
            row = table.setdefault(outcome.tool or "unreadable",
                                   {"imported": 0, "duplicate": 0, "failed": 0, "would_import": 0})
            row[outcome.status] += 1
        return table

    def to_dict(self) -> dict[str, Any]:
        counts = {status: sum(o.status == status for o in self.files)
                  for status in ("imported", "duplicate", "failed", "would_import")}
        return {"dry_run": self.dry_run, "counts": counts, "by_tool": self.summary(),
                "files": [asdict(o) for o in self.files]}


def collect_files(paths: list[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """The image files named by PATHS: files as given, folders' images (sorted; recursive or not)."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            walk = path.rglob("*") if recursive else path.glob("*")
            found += sorted(p for p in walk if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                            and not p.name.startswith("."))
        elif path.exists():
            found.append(path)
        else:
            raise PromptkitError(f"PATH {str(path)!r} does not exist")
    return list(dict.fromkeys(found))


def read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UnreadableImage(f"it is {mb(size)}, over the {mb(MAX_FILE_BYTES)} limit")
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(f"cannot read it: {exc.strerror or exc}") from None


def import_images(library: Library, paths: list[str | os.PathLike], *, recursive: bool = True,
                  dry_run: bool = False, progress: Progress | None = None) -> ImportReport:
    """Import every image under PATHS (files or folders) as a generation; see the module docstring.

    :param recursive: look into sub-folders of the folders given.
    :param dry_run: read and report, write nothing.
    :param progress: called with (files done, files in all) after each file.
    """
    files = collect_files(paths, recursive)
    report = ImportReport([], dry_run=dry_run)
    for done, path in enumerate(files, start=1):
        report.files.append(import_file(library, path, dry_run))
        if progress is not None:
            progress(done, len(files))
    return report


def import_file(library: Library, path: Path, dry_run: bool = False) -> FileOutcome:
    """Read one file and store it (or say why not); a read failure never raises."""
    try:
        data = read_file(path)
        image = read_image(data, str(path))
    except PromptkitError as exc:
        return FileOutcome(str(path), "failed", message=str(exc))
    except Exception as exc:  # noqa: BLE001  a hostile file must cost one line, not the run
        return FileOutcome(str(path), "failed", message=f"unexpected {type(exc).__name__} while reading it")
    sha = hashlib.sha256(data).hexdigest()
    outcome = FileOutcome(str(path), "imported", tool=image.tool, uncertain=image.uncertain)
    existing = library.generation_with_image(sha)
    if existing is not None:
        outcome.status, outcome.generation_id = "duplicate", existing
        outcome.message = f"already in the library as generation {existing}"
        return outcome
    if dry_run:
        outcome.status = "would_import"
        return outcome
    try:
        outcome.generation_id, outcome.prompt_id = store(library, image, data, sha)
    except (OverflowError, TypeError, ValueError, sqlite3.InterfaceError) as exc:  # a value SQLite cannot hold
        outcome.status, outcome.message = "failed", f"its metadata cannot be stored ({type(exc).__name__}: {exc})"
    return outcome


def prompt_row(image: ImportedImage) -> dict[str, Any]:
    """The prompts row an imported image belongs to: template `imported` and the text verbatim, or, for
    an image from another promptkit library, its own template, digest and fields (so in the library it
    came from it is the prompt it was made from)."""
    from ..templates import Fields

    other = image.other
    if image.tool == "promptkit" and isinstance(other.get("fields"), dict) \
            and re.fullmatch(r"[\w.-]{1,64}", str(other.get("template"))):
        return {"name": None, "template": other["template"], "template_digest": str(other.get("template_digest") or ""),
                "fields": other["fields"], "positive": image.positive, "negative": image.negative,
                "tags": ["imported", image.tool], "notes": "imported from another promptkit library"}

    fields = Fields(subject=image.positive, negative=[image.negative] if image.negative else [],
                    negative_preset="").to_dict()
    fields["imported"] = {"from": image.tool}
    return {"name": None, "template": IMPORTED_TEMPLATE, "template_digest": "", "fields": fields,
            "positive": image.positive, "negative": image.negative, "tags": ["imported", image.tool],
            "notes": f"imported from {TOOL_NAMES.get(image.tool, image.tool)}"}


def generation_row(image: ImportedImage, prompt_id: int, sha: str, image_path: str) -> dict[str, Any]:
    """The generations row: the settings promptkit has columns for, everything read under params.imported."""
    from ..records import Batch, GenerationInputs, GenerationRecord, ModelRef, PromptText, Sampling

    s = image.settings
    sampler = mapped_sampler(s.get("sampler"), s.get("scheduler"))
    raw_sampler = " ".join(str(s[k]) for k in ("sampler", "scheduler") if s.get(k)) or None
    width, height = column_int(s.get("width")), column_int(s.get("height"))
    if width is None and image.image_size:
        width, height = image.image_size
    # ComfyUI seeds go up to 2**64 - 1, past SQLite's integers: the exact seed stays in params.imported
    seed = column_int(s.get("seed"))
    seed = UNKNOWN_SEED if seed is None else seed
    imported = {"tool": image.tool, "container": image.container, "settings": s, "other": image.other,
                "uncertain": image.uncertain, "image_size": list(image.image_size or ()),
                "sampler_mapped": sampler is not None}
    record = GenerationRecord(
        prompt=PromptText(image.positive, image.negative), model=ModelRef(name=str(s.get("model") or "")),
        sampling=Sampling(sampler or raw_sampler, column_int(s.get("steps")), s.get("cfg"), width, height,
                          s.get("noise_device") or "cpu"),
        seed=seed, batch=Batch.single(seed), inputs=GenerationInputs(other={"imported": imported}),
        mode="img2img" if s.get("strength") is not None else "txt2img", source=image.tool, reproducible=False)
    record.model.hash = s.get("model_hash")
    from ..library import utc_now

    return record.to_row(prompt_id=prompt_id, image_sha256=sha, image_path=image_path, created_at=utc_now(),
                         source_metadata=json.dumps(image.raw, ensure_ascii=False))


def column_int(value: Any) -> int | None:
    """VALUE when it is an integer SQLite can hold (64-bit signed), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63 else None


def store(library: Library, image: ImportedImage, data: bytes, sha: str) -> tuple[int, int]:
    """The file first (content-addressed), then prompt and generation in one transaction."""
    _, file = library.store_image(data)
    relative = library.relative_image_path(file)
    gen_id, prompt_id, _ = library.add_generation_with_prompt(
        sha, prompt_row(image), lambda prompt_id: generation_row(image, prompt_id, sha, relative))
    return gen_id, prompt_id


# -- reproduce ----------------------------------------------------------------------------

def imported_settings(gen: dict[str, Any]) -> dict[str, Any] | None:
    """params.imported of an imported generation row (None for promptkit's own)."""
    params = gen.get("params")
    if isinstance(params, str):
        params = json.loads(params or "{}")
    imported = (params or {}).get("imported")
    return imported if isinstance(imported, dict) else None


def local_model(name: str) -> str | None:
    """NAME when it is a model on this machine (a diffusers folder or a .safetensors file), else None."""
    path = Path(name).expanduser() if name else None
    if path is not None and (path.is_dir() and (path / "model_index.json").is_file()
                             or path.is_file() and path.suffix == ".safetensors"):
        return str(path.resolve())
    return None


def why_not_reproducible(gen: dict[str, Any]) -> str | None:
    """One line saying why promptkit cannot re-run an imported generation, or None when it can."""
    imported = imported_settings(gen) or {}
    settings, tool = imported.get("settings") or {}, TOOL_NAMES.get(str(gen.get("source")), gen.get("source"))
    head = f"cannot reproduce generation {gen['id']} (made by {tool})"
    missing = [key for key in ("seed", "steps", "cfg", "sampler") if settings.get(key) is None]
    if missing:
        return f"{head}: its metadata does not say its {', '.join(missing)}"
    if not imported.get("sampler_mapped"):
        return f"{head}: its sampler {gen.get('sampler')!r} has no promptkit equivalent"
    for key, what in (("loras", "LoRAs"), ("controlnets", "ControlNets"), ("hires", "hires fix"),
                      ("refiner", "refiner"), ("strength", "init image (img2img)")):
        if settings.get(key):
            return f"{head}: its {what} cannot be re-run (the library does not hold their files)"
    if settings.get("clip_skip") not in (None, 1):
        return f"{head}: promptkit has no clip skip {settings['clip_skip']}"
    if local_model(str(settings.get("model") or "")) is None:
        return f"{head}: its model {settings.get('model') or '(not named)'!r} is not available locally"
    return None


def rerun_note(gen: dict[str, Any]) -> str:
    tool = TOOL_NAMES.get(str(gen.get("source")), gen.get("source"))
    return (f"generation {gen['id']} was made by {tool}: promptkit re-ran its settings, but another tool's pixels "
            "will not match byte for byte (its noise, samplers and kernels differ)")


def reproduce_imported(library: Library, gen: dict[str, Any], engine_options: dict[str, Any] | None) -> dict[str, Any]:
    """Re-run an imported generation with its settings on the local model; a PromptkitError (one line) says
    why not when it cannot. The result's `imported` is True and its first note says the pixels will differ."""
    from ..generation import reproduce as rerun
    from .generation import make_engine

    reason = why_not_reproducible(gen)
    if reason is not None:
        raise PromptkitError(reason)
    model = local_model(str((imported_settings(gen) or {}).get("settings", {}).get("model")))
    result = rerun(library, make_engine(str(model), engine_options), int(gen["id"]))
    result["imported"] = True
    result["notes"].insert(0, rerun_note(gen))
    return result


# -- presets ------------------------------------------------------------------------------

def import_presets(file: str | os.PathLike, templates_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Add the styles in FILE (A1111 styles.csv, Fooocus or InvokeAI styles) as style presets of the user's
    template folder, each with its `source`; a preset of the same name (case, spaces, `_`, `-` aside) is replaced.

    :param file: the styles file (CSV or JSON).
    :param templates_dir: the template folder to add them to (else PROMPTKIT_TEMPLATES, else
        ~/.config/promptkit/templates).
    :returns: file, format, target, imported, replaced and the preset names.
    """
    from ..importers.presets import read_preset_file
    from ..library.files import write_atomically
    from ..templates import default_user_templates_dir, preset_key

    fmt, rows = read_preset_file(file)
    folder = Path(templates_dir or os.environ.get("PROMPTKIT_TEMPLATES") or default_user_templates_dir())
    target = folder / "presets" / "style.json"
    try:
        existing = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else []
    except ValueError:
        raise PromptkitError(f"preset file {str(target)!r} is not valid JSON; fix or move it first") from None
    source = f"{fmt}: {Path(file).name}"  # the file's name only: files we write carry no local paths
    incoming = {preset_key(row["name"]): {**row, "description": f"imported from {Path(file).name}",
                                          "source": source} for row in rows}
    kept = [entry for entry in existing if preset_key(entry.get("name", "")) not in incoming]
    updated = len(existing) - len(kept)
    text = json.dumps(kept + list(incoming.values()), indent=1, ensure_ascii=False)
    write_atomically(target, lambda handle: handle.write(text.encode("utf-8")))
    return {"file": str(file), "format": fmt, "target": str(target), "imported": len(incoming),
            "replaced": updated, "names": [row["name"] for row in incoming.values()]}
