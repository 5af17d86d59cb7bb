"""Style files other tools keep, read as promptkit style presets (each noting where it came from).

- AUTOMATIC1111 `styles.csv` (modules/styles.py): columns `name,prompt,negative_prompt`; `{prompt}`
  in a style marks where the person's prompt goes, else the style is appended.
- Fooocus style JSON (sdxl_styles/*.json): `[{"name", "prompt", "negative_prompt"}]`, `{prompt}` likewise.
- InvokeAI style presets (import/export): CSV `name,prompt,negative_prompt` (or `positive_prompt`), or
  JSON `[{"name", "preset_data": {"positive_prompt", "negative_prompt"}}]` / flat `positive_prompt`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import PromptkitError

MAX_PRESET_FILE = 16 << 20


def _row(name: Any, positive: Any, negative: Any) -> dict[str, str] | None:
    name = str(name or "").strip()
    if not name:
        return None
    return {"name": name, "positive": str(positive or "").strip(), "negative": str(negative or "").strip()}


def _csv(text: str, file: str) -> tuple[str, list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "name" not in columns or not ({"prompt", "positive_prompt"} & set(columns)):
        raise PromptkitError(f"FILE {file!r} is a CSV without `name` and `prompt` columns "
                             "(an A1111 styles.csv has name,prompt,negative_prompt)")
    fmt = "invokeai csv" if "positive_prompt" in columns else "a1111 styles.csv"
    rows = []
    for raw in reader:
        row = {str(k).strip(): v for k, v in raw.items() if k is not None}
        entry = _row(row.get("name"), row.get("prompt", row.get("positive_prompt")), row.get("negative_prompt"))
        if entry is not None:
            rows.append(entry)
    return fmt, rows


def _json(text: str, file: str) -> tuple[str, list[dict[str, str]]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise PromptkitError(f"FILE {file!r} is neither a styles CSV nor valid JSON") from None
    if isinstance(data, dict):  # {"name": {...}} or {"styles": [...]}
        data = data.get("styles") if isinstance(data.get("styles"), list) else \
            [{"name": k, **v} for k, v in data.items() if isinstance(v, dict)]
    if not isinstance(data, list):
        raise PromptkitError(f"FILE {file!r} is JSON but not a list of styles")
    invoke = any(isinstance(d, dict) and ("preset_data" in d or "positive_prompt" in d) for d in data)
    rows = []
    for item in data:
        if not isinstance(item, dict):
            continue
        inner = item.get("preset_data") if isinstance(item.get("preset_data"), dict) else item
        entry = _row(item.get("name"), inner.get("positive_prompt", inner.get("prompt")), inner.get("negative_prompt"))
        if entry is not None:
            rows.append(entry)
    return ("invokeai json" if invoke else "fooocus json"), rows


def read_preset_file(path: str | Path) -> tuple[str, list[dict[str, str]]]:
    """(format, [{name, positive, negative}]) of a styles file; a one-line PromptkitError naming FILE."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_PRESET_FILE:
            raise PromptkitError(f"FILE {str(file)!r} is over {MAX_PRESET_FILE >> 20} MB: not a styles file")
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise PromptkitError(f"cannot read FILE {str(file)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PromptkitError(f"FILE {str(file)!r} is not UTF-8 text") from None
    fmt, rows = _json(text, str(file)) if text.lstrip()[:1] in ("[", "{") else _csv(text, str(file))
    if not rows:
        raise PromptkitError(f"FILE {str(file)!r} holds no styles")
    return fmt, rows
