"""NovelAI: PNG text chunks `Title`, `Description` (the prompt), `Software` ("NovelAI"), `Source`
(the model) and `Comment`, a JSON object: prompt, uc (the negative), steps, scale, seed, sampler,
noise_schedule, width, height, strength, noise, cfg_rescale, v4_prompt / v4_negative_prompt
(caption.base_caption). NovelAI also hides the same chunks as JSON in the alpha channel
(stealth_pngcomp), read by `container.read_stealth`."""

from __future__ import annotations

from typing import Any

from . import ImportedImage, UnreadableImage
from .common import as_text, load_json, number


def is_novelai(text: dict[str, str]) -> bool:
    return "novelai" in text.get("Software", "").lower() or ("Comment" in text and "Description" in text
                                                            and '"uc"' in text.get("Comment", ""))


def _caption(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("caption"), dict):
        base = value["caption"].get("base_caption")
        return base if isinstance(base, str) else None
    return None


def read(text: dict[str, str], container: str) -> ImportedImage:
    comment = load_json(text.get("Comment", "{}"), "NovelAI `Comment`")
    if not isinstance(comment, dict):
        raise UnreadableImage("its NovelAI `Comment` is not a JSON object")
    positive = comment.get("prompt") if isinstance(comment.get("prompt"), str) else \
        (_caption(comment.get("v4_prompt")) or text.get("Description", ""))
    negative = comment.get("uc") if isinstance(comment.get("uc"), str) else \
        (_caption(comment.get("v4_negative_prompt")) or "")
    schedule = comment.get("noise_schedule")
    settings = {"seed": number(comment.get("seed"), int), "steps": number(comment.get("steps"), int),
                "cfg": number(comment.get("scale")), "sampler": comment.get("sampler"),
                "scheduler": schedule, "width": number(comment.get("width"), int),
                "height": number(comment.get("height"), int), "model": text.get("Source"),
                "strength": number(comment.get("strength")) if comment.get("request_type") == "Img2ImgRequest" else None}
    keys = ("Title", "Description", "Software", "Source", "Comment", "Generation time")
    known = {"prompt", "uc", "seed", "steps", "scale", "sampler", "noise_schedule", "width", "height"}
    return ImportedImage(tool="novelai", container=container, positive=as_text(positive), negative=as_text(negative),
                         settings=settings, raw={k: text[k] for k in keys if k in text},
                         other={k: v for k, v in comment.items() if k not in known}).clean()
