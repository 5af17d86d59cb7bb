"""AUTOMATIC1111, Forge, SD.Next and Civitai: the `parameters` infotext.

The text is parsed with `promptkit.a1111.parse_generation_parameters`, a port of A1111's own
parser (modules/infotext_utils.py). The settings line is then read leniently: a value that does
not read is kept in `other` and named in `uncertain`, never a reason to refuse the image.
Civitai adds `Hashes` (JSON: `model`, `lora:NAME`, ...) and `Civitai resources` (JSON list).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..a1111 import _settings_of, lora_tag_scales, name_and_hash, parse_controlnet_unit, parse_generation_parameters
from ..errors import PromptkitError
from . import ImportedImage
from .common import mapped_sampler, number, split_size

_SIMPLE = (("Steps", "steps", int), ("CFG scale", "cfg", float), ("Seed", "seed", int), ("Clip skip", "clip_skip", int),
           ("Distilled CFG Scale", "guidance", float))


def tool_of(settings: dict[str, str]) -> str:
    """Which of the A1111 family wrote SETTINGS."""
    if "Civitai resources" in settings or "Civitai metadata" in settings:
        return "civitai"
    if "sd.next" in settings.get("App", "").lower() or "Backend" in settings and "Pipeline" in settings:
        return "sdnext"
    if re.match(r"f\d", settings.get("Version", "")):
        return "forge"
    return "a1111"


_JSON_VALUE = re.compile(r"(?:^|,)\s*(\w[\w \-/]+):\s*(?=[\[{])")


def _json_values(line: str) -> tuple[str, dict[str, str]]:
    """LINE without its unquoted JSON values (A1111 writes `Hashes: {...}`, Civitai `Civitai resources: [...]`
    as bare JSON, which A1111's comma grammar would cut apart), and those values by key."""
    found: dict[str, str] = {}
    decoder = json.JSONDecoder()
    pos = 0
    while (match := _JSON_VALUE.search(line, pos)) is not None:
        try:
            _, end = decoder.raw_decode(line, match.end())
        except (ValueError, RecursionError):
            pos = match.end()
            continue
        found[match.group(1).strip()] = line[match.end():end]
        line = line[:match.start()] + line[end:]
        pos = match.start()
    return line, found


def parse(text: str) -> tuple[str, str, dict[str, str]]:
    """Prompt, negative and settings (`Size: WxH` joined back) of an infotext."""
    *lines, last = text.strip().split("\n")
    last, json_values = _json_values(last)
    parsed = parse_generation_parameters("\n".join([*lines, last]))
    settings = _settings_of(parsed)
    if json_values and len(settings) == 0:  # the line was not a settings line after all
        parsed = parse_generation_parameters(text)
        return parsed["Prompt"], parsed["Negative prompt"], _settings_of(parsed)
    settings.update(json_values)
    return parsed["Prompt"], parsed["Negative prompt"], settings


def read(text: str, container: str, key: str = "parameters", tool: str | None = None) -> ImportedImage:
    positive, negative, settings = parse(text)
    image = ImportedImage(tool=tool or tool_of(settings), container=container, positive=positive, negative=negative,
                          raw={key: text}, other=dict(settings))
    read_settings(image, settings)
    return image.clean()


def read_settings(image: ImportedImage, settings: dict[str, str]) -> None:
    """Fill IMAGE.settings from an A1111 settings dict."""
    found = image.settings
    for key, name, kind in _SIMPLE:
        if key in settings:
            found[name] = number(settings[key], kind)
            if found[name] is None:
                image.uncertain.append(f"{key} {settings[key]!r} is not a number")
    if (size := split_size(settings.get("Size"))) is not None:
        found["width"], found["height"] = size
    found["sampler"] = settings.get("Sampler")
    found["scheduler"] = settings.get("Schedule type")
    found["model"] = settings.get("Model")
    found["model_hash"] = settings.get("Model hash")
    found["vae"] = settings.get("VAE") or settings.get("Module 1")
    if "RNG" in settings:
        found["noise_device"] = "gpu" if settings["RNG"].strip().upper() == "GPU" else "cpu"
    hires = _hires(settings)
    denoise = number(settings.get("Denoising strength"))
    if hires:
        hires["denoise"] = denoise  # with hires fix the denoising strength is the second pass's
        found["hires"] = {k: v for k, v in hires.items() if v is not None}
    else:
        found["strength"] = denoise
    found["loras"] = _loras(image, settings)
    found["controlnets"] = _controlnets(image, settings)
    if settings.get("Refiner"):
        model, model_hash = name_and_hash(settings["Refiner"])
        found["refiner"] = {k: v for k, v in {"model": model, "model_hash": model_hash,
                                               "switch": number(settings.get("Refiner switch at"))}.items() if v}
    civitai_hashes = _json_setting(image, settings, "Hashes")
    if isinstance(civitai_hashes, dict) and not found.get("model_hash") and civitai_hashes.get("model"):
        found["model_hash"] = str(civitai_hashes["model"])
    mapped = mapped_sampler(found.get("sampler"), found.get("scheduler"))
    if found.get("sampler") and mapped is None:
        image.uncertain.append(f"sampler {found['sampler']!r} has no promptkit equivalent")


def _hires(settings: dict[str, str]) -> dict[str, Any]:
    if not any(key.startswith("Hires") for key in settings):
        return {}
    resize = split_size(settings.get("Hires resize"))
    return {"upscale": number(settings.get("Hires upscale")), "upscaler": settings.get("Hires upscaler"),
            "steps": number(settings.get("Hires steps"), int), "width": resize[0] if resize else None,
            "height": resize[1] if resize else None}


def _json_setting(image: ImportedImage, settings: dict[str, str], key: str) -> Any:
    if key not in settings:
        return None
    try:
        return json.loads(settings[key])
    except (ValueError, RecursionError):
        image.uncertain.append(f"{key} is not valid JSON")
        return None


def _loras(image: ImportedImage, settings: dict[str, str]) -> list[dict[str, Any]]:
    """LoRAs with scales: `<lora:NAME:SCALE>` tags, `Lora hashes`, Civitai `Hashes` and resources."""
    loras: dict[str, dict[str, Any]] = {name: {"name": name, "scale": scale}
                                        for name, scale in lora_tag_scales(image.positive).items()}
    for item in (settings.get("Lora hashes") or "").split(","):
        name, sep, digest = item.rpartition(":")
        if sep and name.strip():
            loras.setdefault(name.strip(), {"name": name.strip()})["hash"] = digest.strip()
    hashes = _json_setting(image, settings, "Hashes")
    if isinstance(hashes, dict):
        for key, digest in hashes.items():
            if str(key).startswith("lora:"):
                loras.setdefault(key[5:], {"name": key[5:]})["hash"] = str(digest)
    resources = _json_setting(image, settings, "Civitai resources")
    for res in resources if isinstance(resources, list) else []:
        if isinstance(res, dict) and str(res.get("type", "")).lower() in ("lora", "locon", "lycoris"):
            name = str(res.get("modelName") or res.get("name") or res.get("modelVersionId"))
            entry = loras.setdefault(name, {"name": name})
            if number(res.get("weight")) is not None:
                entry.setdefault("scale", number(res.get("weight")))
            if res.get("modelVersionId") is not None:
                entry["civitai_version_id"] = res["modelVersionId"]
    return list(loras.values())


def _controlnets(image: ImportedImage, settings: dict[str, str]) -> list[dict[str, Any]]:
    units = sorted((int(m.group(1)), key) for key in settings if (m := re.fullmatch(r"ControlNet (\d+)", key)))
    found = []
    for _, key in units:
        try:
            found.append(parse_controlnet_unit(key, settings[key]))
        except PromptkitError:
            image.uncertain.append(f"{key} could not be read")
    return found
