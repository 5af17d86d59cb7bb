"""Which reader an image's metadata needs: looked up from the keys and shapes each tool writes."""

from __future__ import annotations

import json
from typing import Any

from . import ImportedImage, UnreadableImage, a1111, comfyui, fooocus, invokeai, novelai, swarmui
from .common import maybe_json
from .container import Container, read_container, read_stealth

PROMPTKIT_KEY = "promptkit"


def read_metadata(data: bytes, name: str) -> ImportedImage:
    """The prompt and settings of one image file's bytes; UnreadableImage with one line otherwise."""
    try:
        container = read_container(data)
        image = _read(container, data)
    except RecursionError:
        raise UnreadableImage("its metadata is nested too deep to read") from None
    image.image_size = container.size
    return image


def _read(container: Container, data: bytes) -> ImportedImage:
    # The metadata is kept verbatim: every text chunk (or EXIF text), not only the ones the reader used.
    if container.text:
        image = read_text_chunks(container.text, "png text")
        if image is not None:
            image.raw = dict(container.text)
            return image
    if container.exif:
        image = read_exif(container.exif)
        if image is not None:
            image.raw = dict(container.exif)
            return image
    if container.format == "PNG":
        hidden = read_stealth(data)
        if hidden is not None:
            text, where = hidden
            meta = maybe_json(text)
            if isinstance(meta, dict) and novelai.is_novelai({k: str(v) for k, v in meta.items()}):
                chunks = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
                return novelai.read(chunks, where)
            return read_parameters(text, where, key="stealth")
    keys = ", ".join(sorted(container.text) + sorted(container.exif))
    raise UnreadableImage("it has no generation metadata promptkit reads"
                          + (f" (it has: {keys[:120]})" if keys else " (no text chunks, EXIF or stealth info)"))


def read_text_chunks(text: dict[str, str], where: str) -> ImportedImage | None:
    """The reader for a PNG's text chunks, by the keys each tool writes."""
    if "invokeai_metadata" in text:
        return invokeai.read_v3(text["invokeai_metadata"], where)
    if "sd-metadata" in text:
        return invokeai.read_v2(text["sd-metadata"], where, text.get("Dream"))
    if "Dream" in text:
        return invokeai.read_v1(text["Dream"], where)
    if "prompt" in text or "workflow" in text:
        if "parameters" not in text or comfyui.is_api_graph(maybe_json(text.get("prompt", ""))):
            return comfyui.read(text, where)
    if novelai.is_novelai(text):
        return novelai.read(text, where)
    if PROMPTKIT_KEY in text and ("parameters" not in text or maybe_json(text[PROMPTKIT_KEY]) is not None):
        return read_promptkit(text[PROMPTKIT_KEY], where)  # promptkit's own chunk says more than its A1111 text
    if "parameters" in text:
        return read_parameters(text["parameters"], where, scheme=text.get("fooocus_scheme"))
    return None


def read_exif(exif: dict[str, str]) -> ImportedImage | None:
    """JPEG/WebP: the UserComment (A1111, Fooocus, SwarmUI), ComfyUI's `prompt:`/`workflow:` Make/Model."""
    comfy = {key: value.split(":", 1)[1] for value in (exif.get("Model", ""), exif.get("Make", ""))
             for key in ("prompt", "workflow") if value.startswith(f"{key}:")}
    if comfy:
        return comfyui.read(comfy, "exif")
    text = exif.get("UserComment") or exif.get("comment")
    if not text:
        return None
    scheme = exif.get("MakerNote") if exif.get("MakerNote") in ("fooocus", "a1111") else None
    return read_parameters(text, "exif", key="UserComment", scheme=scheme)


def read_parameters(text: str, where: str, key: str = "parameters", scheme: str | None = None) -> ImportedImage:
    """A `parameters` text: SwarmUI or Fooocus JSON, Fooocus's A1111 scheme, or A1111 infotext."""
    meta = maybe_json(text)
    if meta is not None:
        if swarmui.is_swarm(meta):
            return swarmui.read(meta, text, where, key)
        if scheme == "fooocus" or fooocus.is_fooocus_json(meta):
            return fooocus.read_json(meta, text, where, key)
        raise UnreadableImage(f"its `{key}` text is JSON promptkit does not know (keys: {', '.join(list(meta)[:6])})")
    if scheme == "a1111" or "Version: Fooocus" in text:
        return fooocus.read_a1111(text, where, key)
    image = a1111.read(text, where, key)
    if not image.positive.strip() and not image.settings:
        raise UnreadableImage(f"its `{key}` text holds no prompt")
    return image


def read_promptkit(text: str, where: str) -> ImportedImage:
    """promptkit's own chunk (an image made in another library)."""
    from .common import load_json

    meta = load_json(text, "`promptkit`")
    if not isinstance(meta, dict) or not isinstance(meta.get("positive"), str):
        raise UnreadableImage("its `promptkit` chunk has no prompt")
    extra: dict[str, Any] = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    settings = {key: meta.get(key) for key in ("seed", "steps", "sampler", "cfg", "width", "height", "model",
                                               "model_hash", "noise_device")}
    settings.update({key: extra.get(key) for key in ("strength", "loras", "controlnets", "refiner")})
    return ImportedImage(tool="promptkit", container=where, positive=meta["positive"],
                         negative=str(meta.get("negative") or ""), settings=settings, raw={PROMPTKIT_KEY: text},
                         other={k: meta.get(k) for k in ("template", "template_digest", "fields", "family", "batch")
                                if meta.get(k) is not None}).clean()
