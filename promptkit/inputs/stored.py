"""Inputs as the library keeps them: images and LoRA copies by sha256, and the shas a generation's params name.

Each function that reads or writes takes the library object as an argument; this module imports
nothing from promptkit.library.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .images import InputProblem
from .request import RunInputs

_SHA256 = re.compile(r"[0-9a-f]{64}")


def load_stored(library, sha256: str, argument: str, mode: str):
    """The library's stored image SHA256 in MODE, or a one-line refusal naming ARGUMENT."""
    from PIL import Image

    file = library.image_file(sha256)
    if not file.is_file():
        raise InputProblem(f"`{argument}` image {sha256[:16]} is not in the library at {str(file)!r}")
    with Image.open(file) as image:
        return image.convert(mode)


def resolve_inputs(library, extra: dict[str, Any]) -> RunInputs:
    """The images a generation's parameters refer to, read back from the library."""
    inputs = RunInputs()
    if extra.get("init_image"):
        inputs.init_image = load_stored(library, extra["init_image"], "init_image", "RGB")
    if extra.get("mask"):
        inputs.mask = load_stored(library, extra["mask"], "mask", "L")
    for unit in extra.get("controlnets") or []:
        inputs.control_images.append(load_stored(library, unit["image"], "control_image", "RGB"))
    for sha in stored_lora_shas(extra):
        file = library.lora_file(sha)
        if file.is_file():
            inputs.lora_files[sha] = str(file)
    return inputs


def store_loras(library, loras: list[dict[str, Any]]) -> None:
    """Copy each LoRA file into the library (once per content) and mark its record `stored`, so
    reproduce needs neither the path nor the bytes it held."""
    for lora in loras:
        if lora.get("stored") and library.lora_file(lora["sha256"]).is_file():
            os.utime(library.lora_file(lora["sha256"]))  # already kept (a child reusing its parent's LoRA)
            continue
        library.store_lora(lora["path"], lora["sha256"])
        lora["stored"] = True


def params_dict(params: dict[str, Any] | str | None) -> dict[str, Any]:
    """A generation's or experiment's params as a dict, whether stored JSON or already decoded;
    {} if unreadable."""
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            return {}
    return params if isinstance(params, dict) else {}


def input_image_shas(params: dict[str, Any] | str | None) -> list[str]:
    """The sha256 of every stored input image a generation's params refer to (init image, mask, control images)."""
    params = params_dict(params)
    shas = [params.get("init_image"), params.get("mask")]
    for unit in params.get("controlnets") or []:
        if isinstance(unit, dict):
            shas += [unit.get("image"), unit.get("source")]
    return [s for s in shas if isinstance(s, str) and _SHA256.fullmatch(s)]


def stored_lora_shas(params: dict[str, Any] | str | None) -> list[str]:
    """The sha256 of every LoRA file a generation's params say the library holds a copy of."""
    params = params_dict(params)
    shas = [lora.get("sha256") for lora in params.get("loras") or [] if isinstance(lora, dict) and lora.get("stored")]
    return [s for s in shas if isinstance(s, str) and _SHA256.fullmatch(s)]
