"""Experiment variants: a prompt plus parameter overrides, parsed, checked and applied
(the refiner rules and the X/Y cell rule included), and the labels variants may have."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadParameter, PromptkitError
from ..params import GenerationParams

# strength, lora_scale (every LoRA of the experiment) and control_scale (every ControlNet) live in params.extra.
EXTRA_OVERRIDES = ("strength", "lora_scale", "control_scale", "true_cfg_scale", "shift", "max_sequence_length")
# Flow-matching families' own values (params.extra; the engine refuses them on a family that lacks them).
# `cfg` is each family's own guidance argument: guidance_scale, or true_cfg_scale for Qwen-Image.
FAMILY_OVERRIDES = ("true_cfg_scale", "shift", "max_sequence_length")
# The SDXL refiner (params.extra["refiner"]): `refiner=off`, `refiner=on` (the experiment's --refiner) or
# `refiner=MODEL`, and `refiner_switch=F`.
REFINER_OVERRIDES = ("refiner", "refiner_switch")
# model: the variant runs on another checkpoint (loaded once per process, with the same engine options).
OVERRIDABLE = ("sampler", "steps", "cfg", "width", "height", "noise_device", "model", *EXTRA_OVERRIDES,
               *REFINER_OVERRIDES)
# 1-64 characters; inner spaces allowed (X/Y cell labels read `cfg 3 · Euler a`), never ':', '=' or ','.
_LABEL_RE = re.compile(r"^(?=.{1,64}$)[^\s:=,](?:[^\t\n\r\f\v:=,]*[^\s:=,])?$")
_NAME_RE = re.compile(r"^\S(.{0,98}\S)?$")


class ExperimentProblem(PromptkitError):
    """An experiment, variant or vote that cannot be used as asked."""


@dataclass
class VariantSpec:
    """One arm of an experiment: a saved prompt plus parameter overrides."""

    label: str
    prompt: str  # id or name
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_override_value(key: str, value: str) -> Any:
    if key not in OVERRIDABLE:
        raise BadParameter(f"cannot override {key!r} in a variant; choose from {', '.join(OVERRIDABLE)}")
    try:
        if key in ("steps", "width", "height", "max_sequence_length"):
            return int(value)
        if key in ("cfg", "refiner_switch") or key in EXTRA_OVERRIDES:
            return float(value)
        if key == "model":
            from ..params import check_model_ref

            check_model_ref(value, allow_pickle=False)
        if key == "refiner":
            return parse_refiner_value(value)
    except ValueError:
        raise BadParameter(f"variant override {key}={value!r} is not a number") from None
    return value


def parse_refiner_value(value: str) -> str:
    """`off`, `on` (the experiment's refiner) or a refiner model: a diffusers folder (made absolute) or hub id."""
    from pathlib import Path

    from ..errors import ModelProblem
    from ..params import check_model_ref

    word = value.strip()
    if word.lower() in ("off", "on"):
        return word.lower()
    try:
        kind = check_model_ref(word, allow_pickle=False)
    except ModelProblem as exc:
        raise ModelProblem(f"`refiner` {word!r}: {exc}") from None
    if kind not in ("folder", "hub"):
        raise ModelProblem(f"`refiner` must be off, on, or a diffusers folder or hub id, not {word!r}")
    return word if kind == "hub" else str(Path(word).expanduser().resolve())


def parse_variant(text: str) -> VariantSpec:
    """`LABEL=PROMPT[:k=v,k=v]`, e.g. `B=lighthouse-2:cfg=9,sampler=Euler a`."""
    label, sep, rest = text.partition("=")
    if not sep or not rest:
        raise BadParameter(f"--variant expects LABEL=PROMPT[:k=v,…], got {text!r}")
    prompt, overrides = rest, {}
    head, colon, tail = rest.rpartition(":")
    if colon and re.fullmatch(r"\s*\w+\s*=[^,]*(,\s*\w+\s*=[^,]*)*", tail):
        prompt = head
        for pair in tail.split(","):
            key, _, value = pair.partition("=")
            overrides[key.strip()] = parse_override_value(key.strip(), value.strip())
    return VariantSpec(label.strip(), prompt.strip(), overrides)


def params_with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> GenerationParams:
    """BASE parameters (a GenerationParams dict) with a variant's overrides applied and checked."""
    plain = {k: v for k, v in overrides.items()
             if k not in EXTRA_OVERRIDES and k not in REFINER_OVERRIDES and k != "model"}
    extra = json.loads(json.dumps(base.get("extra") or {}))
    _apply_refiner(extra, overrides)
    if "strength" in overrides:
        extra["strength"] = float(overrides["strength"])
    for key in FAMILY_OVERRIDES:
        if key in overrides:
            extra[key] = int(overrides[key]) if key == "max_sequence_length" else float(overrides[key])
    for key, units, flag in (("lora_scale", "loras", "--lora"), ("control_scale", "controlnets", "--controlnet")):
        if key in overrides:
            if not extra.get(units):
                raise BadParameter(f"`{key}` can vary only when the experiment has a {flag.strip('-')} ({flag})")
            for unit in extra[units]:
                unit["scale"] = float(overrides[key])
    return GenerationParams(**{**base, **plain, "extra": extra})


def _apply_refiner(extra: dict[str, Any], overrides: dict[str, Any]) -> None:
    """`refiner=off|on|MODEL` and `refiner_switch=F` on a copy of the experiment's extra."""
    from ..params import model_fingerprint

    choice = overrides.get("refiner")
    if choice == "off":
        extra.pop("refiner", None)
    elif choice == "on":
        if not extra.get("refiner"):
            raise BadParameter("`refiner=on` uses the experiment's refiner, and it has none: "
                               "make it with --refiner MODEL, or give the variant refiner=MODEL")
    elif choice:
        switch = (extra.get("refiner") or {}).get("switch", 0.8)
        extra["refiner"] = {"model": choice, "switch": float(switch), "model_hash": model_fingerprint(choice)}
    if "refiner_switch" in overrides:
        if not extra.get("refiner"):
            raise BadParameter("`refiner_switch` needs a refiner: the experiment's --refiner MODEL or the "
                               "variant's refiner=MODEL" + (" (this variant has refiner=off)" if choice == "off"
                                                            else ""))
        extra["refiner"]["switch"] = float(overrides["refiner_switch"])


def check_refiner_base(extra: dict[str, Any], model: str | None) -> None:
    """Refuse a refiner on a base that is not SDXL, when MODEL is a local folder (a hub id is checked at run)."""
    from pathlib import Path

    from ..errors import ModelProblem
    from ..families import detect_family, family_label

    if not extra.get("refiner"):
        return
    if extra.get("init_image") or extra.get("controlnets"):
        raise BadParameter("`refiner` applies to SDXL text-to-image without ControlNet; this experiment has "
                           + ("an init image" if extra.get("init_image") else "a ControlNet"))
    if not model or not Path(model).expanduser().is_dir():
        return
    family = detect_family(model)["family"]
    if family != "sdxl":
        raise ModelProblem(f"`refiner` needs an SDXL base model, but model {model!r} is {family_label(family)}")


def check_overrides(params: GenerationParams, overrides: dict[str, Any], model: str | None) -> GenerationParams:
    """A variant's parameters, checked (a refiner against its base model too); writes nothing."""
    checked = params_with_overrides(params.to_dict(), overrides)
    check_refiner_base(checked.extra, overrides.get("model") or model)
    return checked


def cell_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """An X/Y cell's parameter overrides: in the refiner=off cells of a refiner_switch axis there
    is no refiner to switch, so the switch is dropped (those cells repeat)."""
    if overrides.get("refiner") == "off":
        overrides = {k: v for k, v in overrides.items() if k != "refiner_switch"}
    return overrides


def check_label(label: str) -> str:
    if not _LABEL_RE.match(label) or label.lower() == "tie":
        raise BadParameter(f"variant label {label!r} is not allowed: 1-64 characters, no ':', '=' or ',', "
                           "no space at either end, and not 'tie'")
    return label


def variant_params(experiment: dict[str, Any], variant: dict[str, Any]) -> GenerationParams:
    base = {k: v for k, v in experiment["params"].items() if k in GenerationParams.__dataclass_fields__}
    return params_with_overrides(base, variant["overrides"])
