"""SwarmUI: `{"sui_image_params": {...}, "sui_extra_data": {...}, "sui_models": [...]}` JSON in the PNG
`parameters` chunk (EXIF UserComment in a JPEG/WebP). Parameter ids are SwarmUI's T2IParamTypes ids:
prompt, negativeprompt, model, seed, steps, cfgscale, width, height, sampler, scheduler, loras and
loraweights (parallel lists), clipstopatlayer, initimagecreativity, refiner*, vae, fluxguidancescale."""

from __future__ import annotations

from typing import Any

from . import ImportedImage
from .common import as_text, number


def is_swarm(meta: Any) -> bool:
    return isinstance(meta, dict) and isinstance(meta.get("sui_image_params"), dict)


def read(meta: dict[str, Any], text: str, container: str, key: str = "parameters") -> ImportedImage:
    params = meta["sui_image_params"]
    hashes = {str(m.get("param")): m.get("hash") for m in meta.get("sui_models") or [] if isinstance(m, dict)}
    names = params.get("loras") if isinstance(params.get("loras"), list) else []
    weights = params.get("loraweights") if isinstance(params.get("loraweights"), list) else []
    loras = [{"name": as_text(name), "scale": number(weights[i]) if i < len(weights) else 1.0}
             for i, name in enumerate(names)]
    clip = number(params.get("clipstopatlayer"), int)
    settings: dict[str, Any] = {
        "seed": number(params.get("seed"), int), "steps": number(params.get("steps"), int),
        "cfg": number(params.get("cfgscale")), "guidance": number(params.get("fluxguidancescale")),
        "sampler": params.get("sampler"), "scheduler": params.get("scheduler"),
        "width": number(params.get("width"), int), "height": number(params.get("height"), int),
        "model": params.get("model"), "model_hash": hashes.get("model"), "vae": params.get("vae"),
        "clip_skip": abs(clip) if clip is not None else None, "strength": number(params.get("initimagecreativity")),
        "loras": loras,
    }
    if params.get("refinermodel") or params.get("refinercontrolpercentage") is not None:
        settings["refiner"] = {k: v for k, v in {
            "model": params.get("refinermodel"), "switch": number(params.get("refinercontrolpercentage",
                                                                              params.get("refinercontrol"))),
            "steps": number(params.get("refinersteps"), int), "cfg": number(params.get("refinercfgscale")),
            "upscale": number(params.get("refinerupscale")), "method": params.get("refinermethod")}.items()
            if v is not None}
    if params.get("controlnetmodel"):
        settings["controlnets"] = [{k: v for k, v in {
            "model": params.get("controlnetmodel"), "scale": number(params.get("controlnetstrength")),
            "start": number(params.get("controlnetstart")), "end": number(params.get("controlnetend"))}.items()
            if v is not None}]
    known = {"prompt", "negativeprompt", "seed", "steps", "cfgscale", "sampler", "scheduler", "width", "height",
             "model", "vae", "loras", "loraweights", "clipstopatlayer"}
    other = {k: v for k, v in params.items() if k not in known}
    if isinstance(meta.get("sui_extra_data"), dict):
        other["sui_extra_data"] = meta["sui_extra_data"]
    return ImportedImage(tool="swarmui", container=container, positive=as_text(params.get("prompt")),
                         negative=as_text(params.get("negativeprompt")), settings=settings, raw={key: text},
                         other=other).clean()
