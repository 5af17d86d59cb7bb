"""AUTOMATIC1111's `parameters` text ("infotext"): the writer and A1111's own parser.

`parse_generation_parameters` is a port of `parse_generation_parameters` in AUTOMATIC1111's
stable-diffusion-webui, modules/infotext_utils.py (v1.10): the same `re_param` grammar, the same
"Negative prompt:" line handling, quoted values unquoted with `json.loads`, and `WxH` values
split into `KEY-1` / `KEY-2`. A1111's defaults for keys it fills in afterwards (Clip skip, Hires
resize, ...) are left out: they describe A1111's UI, not the image.

`read_infotext` gives promptkit's view of that parse: prompt, negative, the settings (with
`Size` joined back), and the values promptkit records (steps, seed, LoRA hashes, ControlNet
units, refiner, ...). `write_infotext` writes a GenerationRecord the way A1111 does, LoRAs
included as `<lora:NAME:SCALE>` in the prompt text.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from .errors import PromptkitError

if TYPE_CHECKING:
    from .records import GenerationRecord

NEGATIVE_MARKER = "Negative prompt:"
# modules/infotext_utils.py: `Key: value` pairs, values quoted when they hold commas.
re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
_LORA_TAG_RE = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.I)


def unquote(text: str) -> str:
    """modules/infotext_utils.py `unquote`: a JSON string literal, else the text as it is."""
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def parse_generation_parameters(x: str, last_negative_marker: bool = False) -> dict[str, str]:
    """A1111's parse of an infotext: {"Prompt", "Negative prompt", KEY: value, ...}.

    One switch departs from A1111: with LAST_NEGATIVE_MARKER the negative prompt starts at the
    last line that starts with "Negative prompt:" instead of the first. promptkit's writer puts an
    explicit negative line after a prompt that itself starts with the marker, so the two readings
    agree on everything A1111 writes and promptkit reads its own prompts back whole.
    """
    res: dict[str, str] = {}
    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    lines = [line.strip() for line in lines]
    markers = [i for i, line in enumerate(lines) if line.startswith(NEGATIVE_MARKER)]
    split = (markers[-1] if last_negative_marker else markers[0]) if markers else len(lines)
    negative = [lines[split][16:].strip(), *lines[split + 1:]] if markers else []
    res["Prompt"] = "\n".join(lines[:split])
    res["Negative prompt"] = "\n".join(negative)
    for k, v in re_param.findall(lastline):
        if v and v[0] == '"' and v[-1] == '"':
            v = unquote(v)
        m = re_imagesize.match(v)
        if m is not None:
            res[f"{k}-1"] = m.group(1)
            res[f"{k}-2"] = m.group(2)
        else:
            res[k] = v
    return res


# -- writing --------------------------------------------------------------------------


def one_line(text: str) -> str:
    # A newline inside a prompt would end the prompt section early for every reader.
    return " ".join(str(text).split())


def quote(value: Any) -> str:
    text = one_line(str(value))
    if "," in text or ":" in text or '"' in text:
        return json.dumps(text)
    return text


def format_number(value: float) -> str:
    """`7` for 7.0, `0.6` for 0.6; the shortest text that reads back as the same float."""
    short = f"{value:g}"
    return short if float(short) == float(value) else repr(float(value))


def short_name(model: str) -> str:
    """A ControlNet's or refiner's name as A1111 writes it: the last part of its path or hub id."""
    return str(model).rstrip("/").split("/")[-1]


def lora_tag_name(name: str) -> str:
    """The LoRA record name a `<lora:NAME>` tag stands for (its file stem)."""
    return name.strip().replace("\\", "/").split("/")[-1].removesuffix(".safetensors")


def prompt_with_lora_tags(positive: str, loras: list[tuple[str, float]]) -> str:
    """POSITIVE with a `<lora:NAME:SCALE>` tag for each LoRA it does not already name, as A1111 writes it."""
    tagged = {lora_tag_name(name) for name, _ in _LORA_TAG_RE.findall(positive)}
    tags = [f"<lora:{name}:{format_number(scale)}>" for name, scale in loras if name not in tagged]
    return " ".join(part for part in (positive, *tags) if part)


def lora_tag_scales(positive: str) -> dict[str, float]:
    """{record name: scale} of the `<lora:NAME:SCALE>` tags in POSITIVE (scale 1 when left out)."""
    scales = {}
    for name, scale in _LORA_TAG_RE.findall(positive):
        try:
            scales[lora_tag_name(name)] = float(scale) if scale.strip() else 1.0
        except ValueError:
            continue
    return scales


def _settings(record: "GenerationRecord") -> list[tuple[str, Any]]:
    sampling, inputs = record.sampling, record.inputs
    settings: list[tuple[str, Any]] = [
        ("Steps", sampling.steps), ("Sampler", sampling.sampler), ("CFG scale", format_number(sampling.cfg)),
        ("Seed", record.seed), ("Size", f"{sampling.width}x{sampling.height}"),
    ]
    if inputs.init_image is not None and inputs.init_image.strength is not None:
        settings.append(("Denoising strength", format_number(inputs.init_image.strength)))
    if inputs.mask is not None and inputs.mask.blur:
        settings.append(("Mask blur", inputs.mask.blur))
    if record.model.hash:
        settings.append(("Model hash", record.model.hash))
    settings.append(("Model", record.model.name))
    if inputs.loras:
        settings.append(("Lora hashes", ", ".join(f"{lora.name}: {lora.sha256[:12]}" for lora in inputs.loras)))
    for i, unit in enumerate(inputs.controlnets):
        settings.append((f"ControlNet {i}", f"Module: {unit.module}, Model: {short_name(unit.model)}, "
                                            f"Weight: {format_number(unit.scale)}, "
                                            f"Guidance Start: {format_number(unit.start)}, "
                                            f"Guidance End: {format_number(unit.end)}"))
    refiner = inputs.refiner
    if refiner is not None:
        name = short_name(refiner.model)
        settings.append(("Refiner", f"{name} [{refiner.model_hash}]" if refiner.model_hash else name))
        settings.append(("Refiner switch at", format_number(refiner.switch)))
    if sampling.noise_device == "gpu":
        settings.append(("RNG", "GPU"))
    if record.family_info:
        settings = family_settings(record, settings)
    settings.append(("Version", f"promptkit {record.versions.get('promptkit', '')}".strip()))
    return settings


def family_settings(record: "GenerationRecord", settings: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """A1111 settings as Forge writes them for a flow-matching model: FLUX.1's embedded guidance as
    `Distilled CFG Scale` (its `CFG scale` is the true CFG, 1 when off), `Schedule type`, `Shift`."""
    info = record.family_info
    out = list(settings)
    if info.get("guidance") == "embedded":
        cfg_at = next(i for i, (key, _v) in enumerate(out) if key == "CFG scale")
        out[cfg_at] = ("CFG scale", format_number(float(info.get("true_cfg_scale") or 1.0)))
        out.insert(cfg_at + 1, ("Distilled CFG Scale", format_number(record.sampling.cfg)))
    sampler_at = next((i for i, (key, _v) in enumerate(out) if key == "Sampler"), 0)
    out.insert(sampler_at + 1, ("Schedule type", "Simple"))
    if info.get("shift") is not None:
        out.append(("Shift", format_number(float(info["shift"]))))
    return out


def write_infotext(record: "GenerationRecord") -> str:
    """The `parameters` text A1111 and Civitai read: prompt (LoRA tags included), negative, then one
    line of settings. It names models and LoRAs, never their local paths."""
    loras = [(lora.name, lora.scale) for lora in record.inputs.loras]
    positive = one_line(prompt_with_lora_tags(record.prompt.positive, loras))
    negative = one_line(record.prompt.negative or "")
    lines = [positive]
    # A positive prompt that itself starts with the marker gets an explicit (maybe empty)
    # negative line after it, so the marker that counts (the last one) is ours.
    if negative or positive.startswith(NEGATIVE_MARKER):
        lines.append(f"{NEGATIVE_MARKER} {negative}")
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in _settings(record)))
    return "\n".join(lines)


# -- reading --------------------------------------------------------------------------


def _settings_of(parsed: dict[str, str]) -> dict[str, str]:
    """The settings of A1111's parse, `KEY-1`/`KEY-2` joined back into `KEY: WxH`."""
    settings: dict[str, str] = {}
    for key, value in parsed.items():
        if key in ("Prompt", "Negative prompt"):
            continue
        name = key.strip()
        if name.endswith("-1") and f"{key[:-2]}-2" in parsed:
            settings[name[:-2].strip()] = f"{value}x{parsed[key[:-2] + '-2']}"
        elif name.endswith("-2") and f"{key[:-2]}-1" in parsed:
            continue
        else:
            settings[name] = value.strip()
    return settings


def read_infotext(text: str) -> dict[str, Any]:
    """promptkit's reading of an infotext: positive, negative, settings, and the values it records
    (seed, steps, cfg, sampler, width, height, model, model_hash, strength, mask_blur, loras,
    controlnets, refiner, noise_device). A malformed value is a one-line PromptkitError."""
    parsed = parse_generation_parameters(text, last_negative_marker=True)
    settings = _settings_of(parsed)
    result: dict[str, Any] = {"positive": parsed["Prompt"], "negative": parsed["Negative prompt"],
                              "settings": settings}
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
        result["strength"] = setting_number(settings, "Denoising strength")
    for key, name in (("Sampler", "sampler"), ("Model", "model")):
        if key in settings:
            result[name] = settings[key]
    if settings.get("Model hash"):
        result["model_hash"] = settings["Model hash"]
    if "Mask blur" in settings:
        result["mask_blur"] = int(setting_number(settings, "Mask blur"))
    if settings.get("Lora hashes"):
        result["loras"] = parse_lora_hashes(settings["Lora hashes"])
    units = sorted((int(m.group(1)), key) for key in settings if (m := re.fullmatch(r"ControlNet (\d+)", key)))
    if units:
        result["controlnets"] = [parse_controlnet_unit(key, settings[key]) for _, key in units]
    if settings.get("Refiner"):
        result["refiner"] = _refiner(settings)
    if "RNG" in settings:
        result["noise_device"] = "gpu" if settings["RNG"].strip().upper() == "GPU" else "cpu"
    if "Distilled CFG Scale" in settings:  # Forge's FLUX.1: the embedded guidance; CFG scale is the true CFG
        result["true_cfg"] = result.get("cfg", 1.0)
        result["cfg"] = setting_number(settings, "Distilled CFG Scale")
    return result


def _refiner(settings: dict[str, str]) -> dict[str, Any]:
    model, model_hash = name_and_hash(settings["Refiner"])
    refiner: dict[str, Any] = {"model": model}
    if model_hash:
        refiner["model_hash"] = model_hash
    if "Refiner switch at" in settings:
        refiner["switch"] = setting_number(settings, "Refiner switch at")
    return refiner


def setting_number(settings: dict[str, str], key: str, value: str | None = None) -> float:
    text = settings[key] if value is None else value
    try:
        return float(text)
    except ValueError:
        raise PromptkitError(f"parameters field {key!r} is not a number: {text!r}") from None


def name_and_hash(text: str) -> tuple[str, str | None]:
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
    for name, value in re_param.findall(text):
        name, value = name.strip(), value.strip()
        field = _CONTROLNET_KEYS.get(name)
        if field in ("scale", "start", "end"):
            unit[field] = setting_number({}, f"{key} {name}", value)
        elif field == "model":
            unit["model"], model_hash = name_and_hash(value)
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
