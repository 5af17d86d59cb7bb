"""How an image was made, in a few words for its card: the model, the mode and each input's key value (no torch)."""

from __future__ import annotations

from typing import Any

from .families import family_label
from .inputs.stored import params_dict
from .records import GenerationInputs, public_model_name, recorded_inputs


def _number(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def how_made(generation: dict[str, Any]) -> list[str]:
    """The parts of a generation row's card line: model (family), mode with its strength, each LoRA as
    name:scale, each ControlNet by module (and scale when not 1), the refiner with its switch."""
    params = params_dict(generation.get("params"))
    inputs = GenerationInputs.from_extra(recorded_inputs(params))
    parts: list[str] = []
    model = public_model_name(generation.get("model") or "")
    if model:
        family = params.get("family")
        parts.append(f"{model} ({family_label(family)})" if family else model)
    mode = params.get("mode") or inputs.mode
    if mode in ("img2img", "inpaint") and inputs.init_image is not None and inputs.init_image.strength is not None:
        mode = f"{mode} {_number(inputs.init_image.strength)}"
    parts.append(mode)
    for lora in inputs.loras:
        parts.append(f"LoRA {lora.name}:{_number(lora.scale)}")
    for unit in inputs.controlnets:
        what = unit.module if unit.module and unit.module != "none" else public_model_name(unit.model or "")
        scale = "" if unit.scale in (None, 1, 1.0) else f" ×{_number(unit.scale)}"
        parts.append(f"ControlNet {what}{scale}")
    if inputs.refiner is not None:
        parts.append(f"refiner {public_model_name(inputs.refiner.model or '')} at {_number(inputs.refiner.switch)}")
    return parts


def how_made_text(generation: dict[str, Any]) -> str:
    """how_made's parts as one line: `tiny-sd (SD 1.x) · img2img 0.6 · LoRA style:0.8`."""
    return " · ".join(how_made(generation))
