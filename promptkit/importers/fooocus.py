"""Fooocus: its JSON scheme and its A1111 scheme (modules/meta_parser.py).

The scheme is named by the `fooocus_scheme` PNG text chunk (EXIF MakerNote in a JPEG/WebP):
`fooocus` -> `parameters` holds sorted JSON (prompt, negative_prompt, styles, performance, steps,
resolution "(W, H)", guidance_scale, sharpness, adm_guidance, base_model, base_model_hash,
refiner_model, refiner_switch, sampler, scheduler, seed, lora_combined_N "name : weight", loras
[[name, weight, hash]], vae, clip_skip, full_prompt, full_negative_prompt, version);
`a1111` -> A1111 infotext whose prompt line is the full (styled) prompt, with `Raw prompt`,
`Raw negative prompt`, `Lora weights`, `Sharpness`, `Performance`, `Version: Fooocus v…`.
The prompt kept is the person's own (prompt / Raw prompt); the styled one stays in `other`.
"""

from __future__ import annotations

from typing import Any

from . import ImportedImage
from . import a1111
from .common import as_text, number, split_size

_JSON_SETTINGS = (("seed", "seed", int), ("steps", "steps", int), ("guidance_scale", "cfg", float),
                  ("clip_skip", "clip_skip", int))


def is_fooocus_json(meta: Any) -> bool:
    return isinstance(meta, dict) and (str(meta.get("version", "")).startswith("Fooocus")
                                       or {"guidance_scale", "sharpness"} <= set(meta))


def read_json(meta: dict[str, Any], text: str, container: str, key: str = "parameters") -> ImportedImage:
    settings: dict[str, Any] = {name: number(meta.get(src), kind) for src, name, kind in _JSON_SETTINGS}
    size = split_size(meta.get("resolution"))
    if size:
        settings["width"], settings["height"] = size
    settings.update(sampler=meta.get("sampler"), scheduler=meta.get("scheduler"), model=meta.get("base_model"),
                    model_hash=meta.get("base_model_hash"), vae=meta.get("vae"))
    loras = []
    for item in meta.get("loras") or []:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            lora = {"name": as_text(item[0]), "scale": number(item[1])}
            if len(item) > 2 and item[2]:
                lora["hash"] = as_text(item[2])
            loras.append(lora)
    if not loras:
        for k in sorted(k for k in meta if str(k).startswith("lora_combined_")):
            name, _, weight = as_text(meta[k]).rpartition(" : ")
            loras.append({"name": name, "scale": number(weight)})
    settings["loras"] = loras
    if meta.get("refiner_model") not in (None, "", "None"):
        settings["refiner"] = {k: v for k, v in {"model": meta["refiner_model"], "model_hash": meta.get("refiner_model_hash"),
                                                 "switch": number(meta.get("refiner_switch"))}.items() if v is not None}
    known = {"prompt", "negative_prompt", "resolution", "sampler", "scheduler", "base_model", "base_model_hash", "vae",
             "loras", "refiner_model", "refiner_model_hash", "refiner_switch", *(s for s, _, _ in _JSON_SETTINGS)}
    image = ImportedImage(tool="fooocus", container=container, positive=as_text(meta.get("prompt")),
                          negative=as_text(meta.get("negative_prompt")), settings=settings, raw={key: text},
                          other={k: v for k, v in meta.items() if k not in known and not str(k).startswith("lora_combined_")})
    if meta.get("styles") not in (None, "[]") or meta.get("prompt_expansion"):
        image.uncertain.append("Fooocus styles and its prompt expansion changed the prompt the model saw "
                               "(full_prompt in other)")
    return image.clean()


def read_a1111(text: str, container: str, key: str = "parameters") -> ImportedImage:
    image = a1111.read(text, container, key, tool="fooocus")
    settings = image.other
    if "Raw prompt" in settings:
        image.other["full_prompt"], image.positive = image.positive, settings["Raw prompt"]
    if "Raw negative prompt" in settings:
        image.other["full_negative_prompt"], image.negative = image.negative, settings["Raw negative prompt"]
    weights = settings.get("Lora weights") or ""
    scales = {}
    for item in weights.split(", "):
        name, _, weight = item.rpartition(": ")
        if name:
            scales[name] = number(weight)
    if scales:
        by_name = {lora["name"]: lora for lora in image.settings.get("loras", [])}
        for name, scale in scales.items():
            by_name.setdefault(name, {"name": name})["scale"] = scale
        image.settings["loras"] = list(by_name.values())
    image.settings.setdefault("scheduler", settings.get("Scheduler"))
    if settings.get("Refiner") and image.settings.get("refiner") is not None and settings.get("Refiner hash"):
        image.settings["refiner"]["model_hash"] = settings["Refiner hash"]
    return image.clean()
