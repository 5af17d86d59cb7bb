"""InvokeAI: `invokeai_metadata` (v3 and later), `sd-metadata` (v2) and `Dream` (v1).

v3+ (invokeai/app/invocations/metadata.py, CoreMetadata): positive_prompt, negative_prompt, seed,
steps, cfg_scale, scheduler (InvokeAI's sampler), width, height, model (v3 {model_name, base_model};
v4+ {key, hash, name, base, type}), loras [{model|lora, weight}], controlnets, clip_skip, strength,
rand_device, hrf_*, refiner_*, vae. v2 (ldm/invoke/pngwriter.py): `sd-metadata` JSON with an
`image` object whose prompt is a string or [{prompt, weight}]; text in [brackets] is the negative.
v1: the `Dream` text, `"prompt [negative]" -s STEPS -S SEED -W W -H H -C CFG -A SAMPLER`.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from . import ImportedImage, UnreadableImage
from .common import as_text, load_json, number

_NEGATIVE = re.compile(r"\[([^\[\]]*)\]")


def _name(model: Any) -> str | None:
    if isinstance(model, dict):
        return model.get("name") or model.get("model_name")
    return model if isinstance(model, str) else None


def read_v3(text: str, container: str) -> ImportedImage:
    meta = load_json(text, "`invokeai_metadata`")
    if not isinstance(meta, dict):
        raise UnreadableImage("its `invokeai_metadata` is not a JSON object")
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    settings: dict[str, Any] = {
        "seed": number(meta.get("seed"), int), "steps": number(meta.get("steps"), int),
        "cfg": number(meta.get("cfg_scale")), "sampler": meta.get("scheduler"), "width": number(meta.get("width"), int),
        "height": number(meta.get("height"), int), "model": _name(meta.get("model")), "model_hash": model.get("hash"),
        "vae": _name(meta.get("vae")), "clip_skip": number(meta.get("clip_skip"), int),
        "strength": number(meta.get("strength")) if "txt2img" not in str(meta.get("generation_mode", "txt2img"))
        else None, "guidance": number(meta.get("guidance")),
        "noise_device": {"cpu": "cpu", "cuda": "gpu"}.get(str(meta.get("rand_device")).lower()),
        "loras": [{"name": _name(item.get("model") or item.get("lora")), "scale": number(item.get("weight")),
                   **({"hash": item["model"]["hash"]} if isinstance(item.get("model"), dict)
                      and item["model"].get("hash") else {})}
                  for item in meta.get("loras") or [] if isinstance(item, dict)],
        "controlnets": [{"model": _name(item.get("control_model")), "scale": number(item.get("control_weight")),
                         "start": number(item.get("begin_step_percent")), "end": number(item.get("end_step_percent"))}
                        for item in meta.get("controlnets") or [] if isinstance(item, dict)],
    }
    if meta.get("hrf_enabled"):
        settings["hires"] = {"method": meta.get("hrf_method"), "denoise": number(meta.get("hrf_strength"))}
    if meta.get("refiner_model"):
        settings["refiner"] = {k: v for k, v in {
            "model": _name(meta["refiner_model"]), "switch": number(meta.get("refiner_start")),
            "steps": number(meta.get("refiner_steps"), int), "cfg": number(meta.get("refiner_cfg_scale")),
            "scheduler": meta.get("refiner_scheduler")}.items() if v is not None}
    known = {"positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "scheduler", "width", "height",
             "model", "vae", "clip_skip", "strength", "rand_device", "loras", "controlnets", "guidance"}
    image = ImportedImage(tool="invokeai", container=container, positive=as_text(meta.get("positive_prompt")),
                          negative=as_text(meta.get("negative_prompt")), settings=settings,
                          raw={"invokeai_metadata": text}, other={k: v for k, v in meta.items() if k not in known})
    if meta.get("positive_style_prompt") and meta.get("positive_style_prompt") != meta.get("positive_prompt"):
        image.uncertain.append("an SDXL style prompt differs from the prompt; it is kept in other")
    return image.clean()


def split_negative(text: str) -> tuple[str, str]:
    """InvokeAI 2.x and 1.x: `a cat [blurry, ugly]` -> ("a cat", "blurry, ugly")."""
    negative = ", ".join(part.strip() for part in _NEGATIVE.findall(text) if part.strip())
    positive = " ".join(_NEGATIVE.sub(" ", text).split())
    return positive, negative


def read_v2(text: str, container: str, dream: str | None = None) -> ImportedImage:
    meta = load_json(text, "`sd-metadata`")
    image_meta = meta.get("image") if isinstance(meta, dict) else None
    if not isinstance(image_meta, dict):
        raise UnreadableImage("its `sd-metadata` has no `image` object")
    prompt = image_meta.get("prompt")
    uncertain = []
    if isinstance(prompt, list):
        parts = [p for p in prompt if isinstance(p, dict)]
        if len(parts) > 1:
            uncertain.append(f"a blend of {len(parts)} weighted prompts; they are joined")
        prompt = ", ".join(as_text(p.get("prompt")) for p in parts)
    positive, negative = split_negative(as_text(prompt))
    settings = {"seed": number(image_meta.get("seed"), int), "steps": number(image_meta.get("steps"), int),
                "cfg": number(image_meta.get("cfg_scale")), "sampler": image_meta.get("sampler"),
                "width": number(image_meta.get("width"), int), "height": number(image_meta.get("height"), int),
                "model": meta.get("model_weights"), "model_hash": meta.get("model_hash"),
                "strength": number(image_meta.get("strength")) if image_meta.get("type") == "img2img" else None}
    if image_meta.get("hires_fix"):
        settings["hires"] = {"enabled": True}
    raw = {"sd-metadata": text, **({"Dream": dream} if dream is not None else {})}
    return ImportedImage(tool="invokeai", container=container, positive=positive, negative=negative,
                         settings=settings, raw=raw, uncertain=uncertain,
                         other={k: v for k, v in image_meta.items() if k not in ("prompt",)}).clean()


_DREAM_FLAGS = {"-s": ("steps", int), "--steps": ("steps", int), "-S": ("seed", int), "--seed": ("seed", int),
                "-W": ("width", int), "--width": ("width", int), "-H": ("height", int), "--height": ("height", int),
                "-C": ("cfg", float), "--cfg_scale": ("cfg", float), "-A": ("sampler", str), "--sampler": ("sampler", str),
                "-f": ("strength", float), "--strength": ("strength", float)}


def read_v1(text: str, container: str) -> ImportedImage:
    try:
        words = shlex.split(text)
    except ValueError:
        raise UnreadableImage("its `Dream` text is not a command line") from None
    if not words:
        raise UnreadableImage("its `Dream` text is empty")
    positive, negative = split_negative(words[0])
    settings: dict[str, Any] = {}
    other: dict[str, Any] = {}
    rest = words[1:]
    for i, word in enumerate(rest):
        flag, eq, inline = word.partition("=")
        key = flag if flag in _DREAM_FLAGS else (word[:2] if word[:2] in _DREAM_FLAGS and len(word) > 2 else None)
        if key is None:
            if word.startswith("-"):
                other[word] = True
            continue
        value = inline if eq else (word[2:] if key != word and not word.startswith("--") else
                                   (rest[i + 1] if i + 1 < len(rest) else None))
        name, kind = _DREAM_FLAGS[key]
        settings[name] = value if kind is str else number(value, kind)
    return ImportedImage(tool="invokeai", container=container, positive=positive, negative=negative,
                         settings=settings, raw={"Dream": text}, other=other).clean()
