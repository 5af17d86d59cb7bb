"""PNG metadata: an AUTOMATIC1111-compatible `parameters` chunk and a promptkit JSON chunk."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from .errors import PromptkitError

PARAMETERS_KEY = "parameters"
PROMPTKIT_KEY = "promptkit"
NEGATIVE_MARKER = "Negative prompt:"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC
# A1111's own parser (modules/infotext_utils.py): `Key: value` pairs, values quoted when they hold commas.
_PARAM_RE = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def _one_line(text: str) -> str:
    # A newline inside a prompt would end the prompt section early for every reader.
    return " ".join(str(text).split())


def _quote(value: Any) -> str:
    text = _one_line(str(value))
    if "," in text or ":" in text or '"' in text:
        return json.dumps(text)
    return text


def format_number(value: float) -> str:
    return f"{value:g}"


def a1111_parameters(meta: dict[str, Any]) -> str:
    """The `parameters` text A1111 and Civitai read: prompt, negative, then one line of settings."""
    settings = [
        ("Steps", meta["steps"]),
        ("Sampler", meta["sampler"]),
        ("CFG scale", format_number(meta["cfg"])),
        ("Seed", meta["seed"]),
        ("Size", f"{meta['width']}x{meta['height']}"),
    ]
    extra = meta.get("extra") or {}
    if "strength" in extra:
        settings.append(("Denoising strength", format_number(extra["strength"])))
    if extra.get("mask_blur"):
        settings.append(("Mask blur", extra["mask_blur"]))
    if meta.get("model_hash"):
        settings.append(("Model hash", meta["model_hash"]))
    settings.append(("Model", meta.get("model_name") or meta.get("model", "")))
    if extra.get("loras"):
        settings.append(("Lora hashes", ", ".join(f"{l['name']}: {l['sha256'][:12]}" for l in extra["loras"])))
    for i, unit in enumerate(extra.get("controlnets") or []):
        name = str(unit["model"]).rstrip("/").split("/")[-1]
        settings.append((f"ControlNet {i}", f"Module: {unit['module']}, Model: {name}, "
                                            f"Weight: {format_number(unit['scale'])}, "
                                            f"Guidance Start: {format_number(unit['start'])}, "
                                            f"Guidance End: {format_number(unit['end'])}"))
    if extra.get("refiner"):
        refiner = extra["refiner"]
        name = str(refiner["model"]).rstrip("/").split("/")[-1]
        settings.append(("Refiner", f"{name} [{refiner['model_hash']}]" if refiner.get("model_hash") else name))
        settings.append(("Refiner switch at", format_number(refiner["switch"])))
    if meta.get("noise_device") == "gpu":
        settings.append(("RNG", "GPU"))
    settings.append(("Version", f"promptkit {meta.get('versions', {}).get('promptkit', '')}".strip()))
    positive = _one_line(meta["positive"])
    negative = _one_line(meta.get("negative", ""))
    lines = [positive]
    # A positive prompt that itself starts with the marker gets an explicit (maybe empty)
    # negative line after it, so the marker that counts (the last one) is ours.
    if negative or positive.startswith(NEGATIVE_MARKER):
        lines.append(f"{NEGATIVE_MARKER} {negative}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in settings))
    return "\n".join(lines)


def parse_a1111_parameters(text: str) -> dict[str, Any]:
    """Parse A1111's `parameters` text into prompt, negative and a dict of settings."""
    lines = [line.strip() for line in text.strip().split("\n")]
    settings_line = lines[-1] if lines and len(_PARAM_RE.findall(lines[-1])) >= 3 else ""
    if settings_line:
        lines = lines[:-1]
    # The negative prompt starts at the last line that starts with the marker (A1111 takes the
    # first; the two agree unless a prompt line itself starts with "Negative prompt:").
    markers = [i for i, line in enumerate(lines) if line.startswith(NEGATIVE_MARKER)]
    split = markers[-1] if markers else len(lines)
    positive = lines[:split]
    negative = [lines[split][len(NEGATIVE_MARKER) :].strip()] + lines[split + 1 :] if markers else []
    settings: dict[str, str] = {}
    for key, value in _PARAM_RE.findall(settings_line):
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        settings[key.strip()] = value
    result: dict[str, Any] = {"positive": "\n".join(positive), "negative": "\n".join(negative), "settings": settings}
    if "Size" in settings:
        size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", settings["Size"])
        if not size:
            raise PromptkitError(f"parameters field 'Size' is not WIDTHxHEIGHT: {settings['Size']!r}")
        result["width"], result["height"] = int(size.group(1)), int(size.group(2))
    for key, name, kind in (("Steps", "steps", int), ("CFG scale", "cfg", float), ("Seed", "seed", int)):
        if key in settings:
            try:
                result[name] = kind(settings[key])
            except ValueError:
                raise PromptkitError(f"parameters field {key!r} is not a number: {settings[key]!r}") from None
    if "Denoising strength" in settings:
        result["strength"] = _setting_number(settings, "Denoising strength")
    if "Sampler" in settings:
        result["sampler"] = settings["Sampler"]
    if "Model" in settings:
        result["model"] = settings["Model"]
    if settings.get("Model hash"):
        result["model_hash"] = settings["Model hash"]
    if "Mask blur" in settings:
        result["mask_blur"] = int(_setting_number(settings, "Mask blur"))
    if settings.get("Lora hashes"):
        result["loras"] = parse_lora_hashes(settings["Lora hashes"])
    units = sorted((int(m.group(1)), key) for key in settings if (m := re.fullmatch(r"ControlNet (\d+)", key)))
    if units:
        result["controlnets"] = [parse_controlnet_unit(key, settings[key]) for _, key in units]
    if settings.get("Refiner"):
        model, model_hash = _name_and_hash(settings["Refiner"])
        refiner: dict[str, Any] = {"model": model}
        if model_hash:
            refiner["model_hash"] = model_hash
        if "Refiner switch at" in settings:
            refiner["switch"] = _setting_number(settings, "Refiner switch at")
        result["refiner"] = refiner
    if "RNG" in settings:
        result["noise_device"] = "gpu" if settings["RNG"].strip().upper() == "GPU" else "cpu"
    return result


def _setting_number(settings: dict[str, str], key: str, value: str | None = None) -> float:
    text = settings[key] if value is None else value
    try:
        return float(text)
    except ValueError:
        raise PromptkitError(f"parameters field {key!r} is not a number: {text!r}") from None


def _name_and_hash(text: str) -> tuple[str, str | None]:
    """`sd_xl_refiner_1.0 [7440042bbd]` -> ("sd_xl_refiner_1.0", "7440042bbd")."""
    match = re.fullmatch(r"\s*(.*?)\s*\[([0-9A-Fa-f]+)\]\s*", text)
    return (match.group(1), match.group(2)) if match else (text.strip(), None)


def parse_lora_hashes(text: str) -> list[dict[str, str]]:
    """A1111's `Lora hashes` value, `name: hash, name: hash` -> [{"name", "sha256"}] (a 12-digit prefix)."""
    loras = []
    for item in text.split(","):
        name, sep, digest = item.rpartition(":")
        if not sep or not name.strip() or not re.fullmatch(r"\s*[0-9A-Fa-f]+\s*", digest):
            raise PromptkitError(f"parameters field 'Lora hashes' is not `name: hash, …`: {text!r}")
        loras.append({"name": name.strip(), "sha256": digest.strip().lower()})
    return loras


_CONTROLNET_KEYS = {"Module": "module", "Model": "model", "Weight": "scale", "Guidance Start": "start",
                    "Guidance End": "end"}


def parse_controlnet_unit(key: str, text: str) -> dict[str, Any]:
    """`Module: canny, Model: cn [d14c016b], Weight: 1, Guidance Start: 0, Guidance End: 1, …` -> a unit
    with module, model (and model_hash), scale, start, end; A1111's other keys under `options`."""
    unit: dict[str, Any] = {}
    options: dict[str, str] = {}
    for name, value in _PARAM_RE.findall(text):
        name, value = name.strip(), value.strip()
        field = _CONTROLNET_KEYS.get(name)
        if field in ("scale", "start", "end"):
            unit[field] = _setting_number({}, f"{key} {name}", value)
        elif field == "model":
            unit["model"], model_hash = _name_and_hash(value)
            if model_hash:
                unit["model_hash"] = model_hash
        elif field:
            unit[field] = value
        elif name:
            options[name] = value
    if "module" not in unit or "model" not in unit:
        raise PromptkitError(f"parameters field {key!r} has no Module and Model: {text!r}")
    if options:
        unit["options"] = options
    return unit


def encode_png(image, meta: dict[str, Any]) -> bytes:
    """PNG bytes with both chunks. Deterministic: the same pixels and META give the same bytes."""
    from PIL.PngImagePlugin import PngInfo

    promptkit_json = json.dumps(meta, sort_keys=True, ensure_ascii=False)
    try:
        promptkit_json.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptkitError(f"image metadata holds {promptkit_json[exc.start]!r}, which a PNG text chunk cannot carry") from None
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, a1111_parameters(meta))
    info.add_text(PROMPTKIT_KEY, promptkit_json)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def read_png_text(path_or_bytes) -> dict[str, str]:
    """The text chunks of a PNG file (or bytes)."""
    from PIL import Image, UnidentifiedImageError

    is_bytes = isinstance(path_or_bytes, (bytes, bytearray))
    name = "data" if is_bytes else str(path_or_bytes)
    try:
        data = bytes(path_or_bytes) if is_bytes else Path(path_or_bytes).read_bytes()
    except OSError as exc:
        raise PromptkitError(f"cannot read {name}: {exc.strerror or exc}") from None
    if not data.startswith(PNG_SIGNATURE):
        raise PromptkitError(f"{name} is not a PNG (it does not start with the PNG signature)")
    # Pillow reads a PNG cut short after its pixels without complaint; a complete file ends with IEND.
    if data.rfind(PNG_END) < len(PNG_SIGNATURE):
        raise PromptkitError(f"{name} is not a readable PNG: it is truncated (no IEND chunk)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise PromptkitError(f"{name} is not a PNG")
            image.load()
            return {k: v for k, v in getattr(image, "text", {}).items() if isinstance(v, str)}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PromptkitError(f"{name} is not a readable PNG: {exc}") from None
