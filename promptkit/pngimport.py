"""Importing PNGs made by AUTOMATIC1111, Civitai or promptkit as prompts in the library.

A PNG carrying promptkit's own `promptkit` chunk is imported with its template, template
digest and fields, so it matches the prompt it was generated from. Any other PNG needs
A1111's `parameters` chunk; it becomes a prompt with template `imported`, the prompt text
verbatim (A1111 weights, BREAK and LoRA tags untouched), fields `{"subject": positive,
"negative": [negative], ...}` plus an `imported` entry holding the raw `parameters` text,
its settings (Seed, Steps, Sampler, RNG, ...) and the generation parameters read from them
(`params`: seed, steps, sampler, model hash, LoRA hashes, ControlNet units, refiner, ...), and
the settings line in the notes. Either way the import result carries those `params`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PromptkitError
from .library import Library
from .a1111 import read_infotext
from .pnginfo import read_png_text
from .records import PARAMETERS_KEY, PROMPTKIT_KEY, GenerationRecord
from .templates import Fields

IMPORTED_TEMPLATE = "imported"
IMPORTED_TAG = "imported"
# What the A1111 settings line carries beyond the basics, for a promptkit PNG's notes.
A1111_INPUT_KEYS = ("Denoising strength", "Mask blur", "Lora hashes", "Refiner", "Refiner switch at")
# The generation parameters an import records, in promptkit's names (a1111.read_infotext's keys).
PARAM_KEYS = ("seed", "steps", "cfg", "sampler", "width", "height", "model", "model_hash", "noise_device",
              "strength", "mask_blur", "loras", "controlnets", "refiner")


@dataclass
class PngPrompt:
    """The prompt read from one PNG, ready to store."""

    file: str
    source: str  # "promptkit" or "a1111"
    positive: str
    negative: str
    template: str
    template_digest: str
    fields: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # seed, steps, loras, controlnets, refiner, ...

    @property
    def notes(self) -> str:
        settings = ", ".join(f"{key}: {value}" for key, value in self.settings.items())
        return f"imported from {Path(self.file).name}" + (f": {settings}" if settings else "")


def read_png_prompt(path: str | os.PathLike) -> PngPrompt:
    """Read the prompt a PNG carries; a PromptkitError names the file when it carries none."""
    name = str(path)
    chunks = read_png_text(path)
    if PROMPTKIT_KEY in chunks:
        meta = _promptkit_meta(chunks[PROMPTKIT_KEY])
        if meta is not None:
            return _from_promptkit(name, meta)
    if PARAMETERS_KEY in chunks:
        return _from_a1111(name, chunks[PARAMETERS_KEY])
    raise PromptkitError(f"{name} has no `parameters` text chunk: not a PNG from AUTOMATIC1111, Civitai or promptkit")


def _promptkit_meta(text: str) -> dict[str, Any] | None:
    try:
        meta = json.loads(text)
    except ValueError:
        return None  # damaged: fall back to the A1111 chunk
    if isinstance(meta, dict) and isinstance(meta.get("positive"), str) and isinstance(meta.get("negative", ""), str):
        return meta
    return None


def _from_promptkit(name: str, meta: dict[str, Any]) -> PngPrompt:
    fields = meta.get("fields") if isinstance(meta.get("fields"), dict) else \
        Fields(subject=meta["positive"]).to_dict()
    settings = {"Seed": meta.get("seed"), "Steps": meta.get("steps"), "Sampler": meta.get("sampler"),
                "CFG scale": meta.get("cfg"), "Size": f"{meta.get('width')}x{meta.get('height')}",
                "Model hash": meta.get("model_hash"), "Model": meta.get("model"),
                "RNG": "GPU" if meta.get("noise_device") == "gpu" else "CPU"}
    # LoRA, ControlNet and refiner settings as the A1111 chunk writes them
    try:
        written = read_infotext(GenerationRecord.from_png_meta(meta).infotext())["settings"]
    except (KeyError, TypeError, ValueError, AttributeError, PromptkitError):
        written = {}
    settings.update({k: v for k, v in written.items() if k in A1111_INPUT_KEYS or k.startswith("ControlNet ")})
    return PngPrompt(
        file=name, source="promptkit", positive=meta["positive"], negative=meta.get("negative", ""),
        template=str(meta.get("template") or IMPORTED_TEMPLATE), template_digest=str(meta.get("template_digest") or ""),
        fields=fields, settings={k: v for k, v in settings.items() if v is not None}, params=_promptkit_params(meta),
    )


def _promptkit_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The generation parameters of a promptkit PNG, in the shape `a1111.read_infotext` gives (plus what
    only the promptkit chunk knows: full sha256, LoRA scales; older PNGs also named local paths)."""
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    params = {key: meta.get(key) for key in PARAM_KEYS[:9]}
    params.update({key: extra.get(key) for key in ("strength", "mask_blur")})
    if isinstance(extra.get("loras"), list):
        params["loras"] = [{k: lora.get(k) for k in ("name", "sha256", "scale", "path")}
                           for lora in extra["loras"] if isinstance(lora, dict)]
    if isinstance(extra.get("controlnets"), list):
        params["controlnets"] = [{k: unit.get(k) for k in ("module", "model", "model_hash", "scale", "start", "end")}
                                 for unit in extra["controlnets"] if isinstance(unit, dict)]
    if isinstance(extra.get("refiner"), dict):
        params["refiner"] = {k: extra["refiner"].get(k) for k in ("model", "model_hash", "switch")}
    return _without_none(params)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _from_a1111(name: str, text: str) -> PngPrompt:
    try:
        parsed = read_infotext(text)
    except PromptkitError as exc:
        raise PromptkitError(f"{name}: {exc}") from None
    positive, negative = parsed["positive"].strip(), parsed["negative"].strip()
    if not positive:
        raise PromptkitError(f"{name}: its `parameters` chunk has no prompt")
    fields = Fields(subject=positive, negative=[negative] if negative else [], negative_preset="").to_dict()
    # The settings travel in the fields JSON too, RNG included (GPU, CPU or NV noise).
    params = {key: parsed[key] for key in PARAM_KEYS if key in parsed}
    fields["imported"] = {"from": "a1111", "parameters": text, "settings": parsed["settings"], "params": params}
    return PngPrompt(file=name, source="a1111", positive=positive, negative=negative, template=IMPORTED_TEMPLATE,
                     template_digest="", fields=fields, settings=parsed["settings"], params=params)


def _same_prompt(row: dict[str, Any], png: PngPrompt) -> bool:
    if (row["positive"], row["negative"], row["template"]) != (png.positive, png.negative, png.template):
        return False
    if png.source == "a1111":
        return True  # same text imported before; its settings are kept with the first import
    try:
        fields = json.loads(row["fields"] or "null")
    except ValueError:
        return False
    return row["template_digest"] == png.template_digest and fields == png.fields


def import_pngs(lib: Library, files: list[str | os.PathLike | PngPrompt]) -> list[dict[str, Any]]:
    """Store the prompt of each PNG in FILES (paths, or prompts already read with
    `read_png_prompt`); skip one the library (or an earlier file) already has. Every file is read
    before anything is written, and all rows go in one transaction, so one unreadable file
    means nothing is imported."""
    if not files:
        raise PromptkitError("no PNG files given")
    pngs = [f if isinstance(f, PngPrompt) else read_png_prompt(f) for f in files]
    rows = [{"name": None, "template": png.template, "template_digest": png.template_digest,
             "fields": json.dumps(png.fields, sort_keys=True, ensure_ascii=False), "positive": png.positive,
             "negative": png.negative, "tags": [IMPORTED_TAG], "notes": png.notes} for png in pngs]
    outcomes = lib.add_prompts_once(rows, lambda row, index: _same_prompt(row, pngs[index]))
    results = []
    for png, (prompt_id, skipped) in zip(pngs, outcomes):
        if skipped:
            results.append({"file": png.file, "status": "skipped", "prompt_id": prompt_id,
                            "source": png.source, "reason": f"same prompt as prompt {prompt_id}"})
        else:
            results.append({"file": png.file, "status": "added", "prompt_id": prompt_id,
                            "source": png.source, "settings": png.settings, "params": png.params})
    return results
