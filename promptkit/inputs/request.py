"""A request's inputs beyond the prompt: what was asked (paths, numbers), checked into parameters and images.

Everything is checked before any work; `PreparedInputs.store` then keeps the images in the
library content-addressed, referenced from the generation's parameters by sha256, so
`reproduce` needs only the library. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadParameter
from .controlnets import check_controlnet_ref, preprocess_control
from .images import InputProblem, check_mask_size, open_image, png_bytes
from .loras import check_lora, merge_loras, parse_lora_spec, prompt_loras
from .models import model_fingerprint, resolve_model

PENDING = "pending"  # an image's sha256 before it is stored


@dataclass
class RunInputs:
    """Decoded images for one generation: what the engine needs besides the prompt."""

    init_image: Any = None  # PIL RGB
    mask: Any = None  # PIL L
    control_images: list[Any] = field(default_factory=list)
    lora_files: dict[str, str] = field(default_factory=dict)  # LoRA sha256 -> the library's copy


@dataclass
class InputRequest:
    """What a person asked for beyond the prompt, as paths and numbers (nothing read yet)."""

    init_image: str | None = None
    mask: str | None = None
    mask_blur: int | None = None
    strength: float | None = None
    loras: list[str] = field(default_factory=list)  # PATH[:SCALE]
    lora_dir: str | None = None
    controlnets: list[str] = field(default_factory=list)
    control_images: list[str] = field(default_factory=list)
    control_modules: list[str] = field(default_factory=list)  # one per ControlNet, or one for all
    control_scales: list[float] = field(default_factory=list)
    control_starts: list[float] = field(default_factory=list)
    control_ends: list[float] = field(default_factory=list)
    refiner: str | None = None
    refiner_switch: float | None = None
    true_cfg_scale: float | None = None  # FLUX.1, Qwen-Image: true CFG (reads the negative prompt above 1)
    max_sequence_length: int | None = None  # the T5/LLM window, for the families that have one


@dataclass
class PreparedInputs:
    """Checked inputs: the parameters to record, and the images to store before generating."""

    extra: dict[str, Any]
    images: dict[str, Any] = field(default_factory=dict)  # "init_image", "mask", "control:0", "source:0"

    def store(self, library) -> dict[str, Any]:
        """Store every image content-addressed; return the parameters with their sha256 filled in."""
        from .stored import store_loras

        extra = json.loads(json.dumps(self.extra))
        for unit in extra.get("controlnets") or []:
            unit["model_hash"] = model_fingerprint(unit["model"])
        if extra.get("refiner"):
            extra["refiner"]["model_hash"] = model_fingerprint(extra["refiner"]["model"])
        store_loras(library, extra.get("loras") or [])
        for key, image in self.images.items():
            sha, _ = library.store_image(png_bytes(image))
            kind, _, index = key.partition(":")
            if kind in ("init_image", "mask"):
                extra[kind] = sha
            else:
                extra["controlnets"][int(index)]["image" if kind == "control" else "source"] = sha
        return extra


def _per_unit(values: list[Any], count: int, name: str, default: Any) -> list[Any]:
    if not values:
        return [default] * count
    if len(values) == 1:
        return list(values) * count
    if len(values) != count:
        raise BadParameter(f"`{name}` given {len(values)} times for {count} ControlNets; give it once or once each")
    return list(values)


def prepare_inputs(request: InputRequest, positive: str = "") -> PreparedInputs:
    """Read and check every input (images, LoRA files, ControlNet configs); write nothing."""
    from ..params import check_extra

    extra: dict[str, Any] = {}
    images: dict[str, Any] = {}
    # 1. init image and mask
    _image_inputs(request, extra, images)
    # 2. LoRAs: --lora PATH[:SCALE] and <lora:NAME:SCALE> in the prompt
    records = [check_lora(*parse_lora_spec(spec)) for spec in request.loras]
    loras = merge_loras(records, prompt_loras(positive, request.lora_dir))
    if loras:
        extra["loras"] = loras
    # 3. ControlNets, one control image each
    units = _controlnet_inputs(request, images)
    if units:
        extra["controlnets"] = units
    # 4. SDXL refiner
    if request.refiner_switch is not None and not request.refiner:
        raise BadParameter("`refiner_switch` needs a refiner (--refiner MODEL)")
    if request.refiner:
        # A local refiner folder is recorded by its absolute path, as the base model is, so a warm
        # engine, `iterate` and `reproduce` find it from any folder.
        extra["refiner"] = {"model": resolve_model(request.refiner),
                            "switch": float(request.refiner_switch if request.refiner_switch is not None else 0.8)}
    # 5. family-specific values, checked against the model's family by family_rules.check_generation_options
    for key in ("true_cfg_scale", "max_sequence_length"):
        if getattr(request, key) is not None:
            extra[key] = getattr(request, key)
    check_extra(extra)
    return PreparedInputs(extra=extra, images=images)


def _image_inputs(request: InputRequest, extra: dict[str, Any], images: dict[str, Any]) -> None:
    """Read the init image and mask into IMAGES and record them (pending) with strength and blur in EXTRA."""
    if request.mask and not request.init_image:
        raise BadParameter("`mask` needs an init image to paint into (--init-image)")
    if request.init_image:
        init = open_image(request.init_image, "init_image", "RGB")
        images["init_image"], extra["init_image"] = init, PENDING
        extra["strength"] = float(request.strength if request.strength is not None
                                  else (1.0 if request.mask else 0.75))
        if request.mask:
            mask = open_image(request.mask, "mask", "L")
            check_mask_size(init, mask, request.mask)
            images["mask"], extra["mask"] = mask, PENDING
            extra["mask_blur"] = int(request.mask_blur or 0)
    elif request.strength is not None:
        extra["strength"] = request.strength  # refused by check_extra with the reason
    if request.mask_blur and not request.mask:
        raise BadParameter("`mask_blur` applies to inpainting: give --mask")


def _controlnet_inputs(request: InputRequest, images: dict[str, Any]) -> list[dict[str, Any]]:
    """The ControlNet units asked for, their control images (and sources, when preprocessed) read into IMAGES."""
    count = len(request.controlnets)
    if count != len(request.control_images):
        if count and not request.control_images:
            raise InputProblem(f"ControlNet {request.controlnets[0]!r} has no control image: give --control-image")
        raise InputProblem(f"`controlnet` given {count} times but `control_image` {len(request.control_images)} "
                           "times; give one control image per ControlNet")
    modules = _per_unit(request.control_modules, count, "control_module", "none")
    scales = _per_unit(request.control_scales, count, "control_scale", 1.0)
    starts = _per_unit(request.control_starts, count, "control_start", 0.0)
    ends = _per_unit(request.control_ends, count, "control_end", 1.0)
    units = []
    for i, (model, image_path) in enumerate(zip(request.controlnets, request.control_images)):
        config = check_controlnet_ref(model)
        source = open_image(image_path, "control_image", "RGB")
        images[f"control:{i}"] = preprocess_control(source, modules[i])
        if modules[i] != "none":
            images[f"source:{i}"] = source
        units.append({"model": model, "module": modules[i], "image": PENDING, "scale": float(scales[i]),
                      "start": float(starts[i]), "end": float(ends[i]),
                      "config": {k: config.get(k) for k in ("cross_attention_dim", "addition_embed_type")
                                 if k in config}})
    return units
