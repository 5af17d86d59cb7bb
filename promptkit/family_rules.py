"""What each family accepts, read from the family table: which family a model or `--family` names, the
options a family cannot take (one-line errors naming the flag), when its negative prompt is ignored, and
its default template. The CLI, the Python API and the web page all call these (no torch here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import BadParameter, PromptkitError
from .families import BY_KEY, PIPELINE_FAMILY, TABLE, UNET_FAMILIES, Family

__all__ = ["FLOW_SAMPLERS", "check_family_options", "check_generation_options", "default_template", "family_for",
           "family_of", "family_summary", "guess_family_from_name", "guidance_label", "negative_ignored", "variant_for"]

#: Sampler names a flow-matching family takes: its one scheduler, by the names front-ends use for it
#: (ComfyUI and Forge write "euler" for FLUX, Z-Image, Qwen-Image and Chroma).
FLOW_SAMPLERS = ("Euler", "FlowMatchEuler", "FlowMatchEulerDiscreteScheduler")
#: `max_sequence_length` limits diffusers checks per family (its `check_inputs`); 512 elsewhere.
_SEQUENCE_LIMIT = {"qwenimage": 1024}
#: Hub-id fragments -> family, for a model that is not a local folder (lint only; a folder is detected
#: from its configs). Most specific first.
_NAME_HINTS = (("flux.2", "flux2-klein"), ("flux2", "flux2-klein"), ("flux", "flux"), ("chroma", "chroma"),
               ("qwen-image", "qwenimage"), ("z-image", "zimage"), ("stable-diffusion-3", "sd3"),
               ("sd3", "sd3"), ("xl", "sdxl"), ("stable-diffusion-2", "sd2"))


def family_of(family: str | Family | None) -> Family | None:
    """The table's entry for FAMILY (a key such as "flux", or a `Family`); None stays None.

    An unknown key is a one-line error naming `family` and the keys there are.
    """
    if family is None or isinstance(family, Family):
        return family
    key = str(family).strip().lower()
    if key not in BY_KEY:
        raise BadParameter(f"`family` {family!r} is not a family promptkit knows; choose one of "
                           f"{', '.join(BY_KEY)} (see `promptkit families`)")
    return BY_KEY[key]


def guess_family_from_name(model: str) -> str | None:
    """A family key from a hub id's name ("black-forest-labs/FLUX.1-dev" -> "flux"), or None."""
    name = model.lower().rsplit("/", 1)[-1] if "/" in model else model.lower()
    return next((key for hint, key in _NAME_HINTS if hint in name), None)


def _pipeline_class(folder: Path) -> str:
    try:
        return str(json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _detected(model: str) -> str | None:
    """The family a local model folder's configs say, or a hub id's name suggests; None when unknown."""
    from . import families

    path = Path(model).expanduser()
    if path.is_dir():
        pipeline = _pipeline_class(path)
        if pipeline in PIPELINE_FAMILY:  # the transformer families: their pipeline class says it
            return PIPELINE_FAMILY[pipeline]
        try:
            key = families.detect_family(path).get("family")
        except (OSError, ValueError):
            return None
        return key if key in BY_KEY else None
    if path.is_file():
        detect_file = getattr(families, "detect_single_file", None)  # the engine side's, when it has one
        if detect_file is not None:
            try:
                key = detect_file(path).get("family")
            except Exception:  # noqa: BLE001 - a file we cannot read is linted without a family
                return None
            return key if key in BY_KEY else None
        return None
    return guess_family_from_name(model)


def family_for(model: str | None = None, family: str | Family | None = None, by_name: bool = True) -> Family | None:
    """The family to follow: FAMILY (`--family`) when given, else the one MODEL is detected as; None when
    neither says (callers then keep the SD 1.x behaviour). A `--family` that contradicts a model folder's
    own configs is refused.

    :param by_name: also guess a hub id's family from its name (lint does; refusals go by configs only).
    """
    chosen = family_of(family)
    detected = _detected(model) if model else None
    if detected is not None and not by_name and not Path(str(model)).expanduser().exists():
        detected = None
    if chosen is not None and detected is not None and detected != chosen.key and Path(str(model)).exists():
        raise BadParameter(f"`family` {chosen.key} does not match the model: {model} is "
                           f"{BY_KEY[detected].label} ({detected}); leave --family out")
    return chosen or (BY_KEY[detected] if detected else None)


def variant_for(family: str | Family, model: str | None) -> tuple[str | None, dict[str, Any]]:
    """The table's variant MODEL's name says ("FLUX.1-schnell" -> schnell, "Z-Image-Turbo" -> turbo) and its
    defaults (guidance, steps, max_tokens); (None, {}) when the name says none."""
    fam = family_of(family)
    if fam is None or not model:
        return None, {}
    name = Path(str(model).rstrip("/")).name.lower()
    for key, values in fam.variants.items():
        if re.search(rf"(^|[^a-z]){re.escape(key)}([^a-z]|$)", name):
            return key, dict(values)
    return None, {}


def default_template(family: str | Family | None) -> str:
    """The packaged template a family's prompts start from: `sentence` where its encoder reads sentences
    (T5, an LLM), else `default` (comma-separated tags, as CLIP models are prompted)."""
    fam = family_of(family)
    return "sentence" if fam is not None and fam.prompt_style == "sentences" else "default"


def guidance_label(family: str | Family | None) -> str:
    """What a face calls the family's guidance control: "CFG" for classifier-free guidance, "True CFG"
    for `true_cfg_scale`, else "Guidance" (FLUX.1's embedded guidance, a distilled model's)."""
    fam = family_of(family)
    if fam is None or fam.guidance == "cfg":
        return "CFG"
    return "True CFG" if fam.guidance_arg == "true_cfg_scale" else "Guidance"


def _true_cfg_value(fam: Family, guidance: float | None, true_cfg: float | None) -> float:
    if true_cfg is not None:
        return float(true_cfg)
    if fam.guidance_arg == "true_cfg_scale":  # Qwen-Image: its guidance control is true CFG
        return float(guidance if guidance is not None else fam.default_guidance)
    return 1.0  # diffusers' default: off


def negative_ignored(family: str | Family, guidance: float | None = None, true_cfg: float | None = None) -> str | None:
    """Why FAMILY ignores a negative prompt at these settings, or None when it uses one.

    :param guidance: the guidance value (`--cfg`); None: the family's default.
    :param true_cfg: `true_cfg_scale` (`--true-cfg`); None: not given.
    """
    fam = family_of(family)
    if fam is None or fam.negative_prompt == "always":
        return None
    if fam.negative_prompt == "never":
        return f"{fam.label} takes no negative prompt ({fam.pipelines['txt2img']} has no such argument)"
    if fam.negative_prompt == "true_cfg":
        value = _true_cfg_value(fam, guidance, true_cfg)
        if value <= 1:
            return f"{fam.label} reads the negative prompt only with true CFG above 1 (true_cfg_scale is {value:g})"
        return None
    value = float(guidance if guidance is not None else fam.default_guidance)
    if value <= 1:
        return f"{fam.label} reads the negative prompt only with guidance above 1 ({fam.guidance_arg} is {value:g})"
    return None


def _sampler_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def _check_sampler(fam: Family, sampler: str) -> None:
    flow = fam.key not in ("sd1", "sd2", "sdxl")
    flow_keys = {_sampler_key(name) for name in FLOW_SAMPLERS}
    if flow:
        if _sampler_key(sampler) not in flow_keys:
            raise BadParameter(f"`sampler` {sampler!r} cannot be used with {fam.label}: it is a flow-matching "
                               f"model ({', '.join(fam.schedulers)}); choose Euler or leave it out")
        return
    if _sampler_key(sampler) in flow_keys - {"euler"}:
        raise BadParameter(f"`sampler` {sampler!r} is for flow-matching models; {fam.label} takes the A1111 "
                           "names (Euler, DPM++ 2M Karras, …)")
    from .params import canonical_sampler

    canonical_sampler(sampler)  # an unknown name: its own one-line error with the closest names


def _check_sequence_length(fam: Family, value: int) -> None:
    long_encoders = [e for e in fam.encoders if e.tokenizer != "clip-bpe"]
    if not long_encoders:
        raise BadParameter(f"`max_sequence_length` applies to families with a T5 or LLM text encoder; "
                           f"{fam.label} reads {fam.max_tokens} CLIP tokens")
    limit = _SEQUENCE_LIMIT.get(fam.key, 512)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise BadParameter(f"`max_sequence_length` must be a whole number from 1 to {limit} for {fam.label} "
                           f"but is {value!r}")


def check_family_options(family: str | Family | None, *, sampler: str | None = None,
                         true_cfg_scale: float | None = None, strength: float | None = None,
                         mask: Any = None, max_sequence_length: int | None = None, init_image: Any = None) -> None:
    """Refuse, in one line naming the option, what FAMILY cannot take. None means "not given".

    :param sampler: a sampler the person chose (not the default filled in for them).
    :param true_cfg_scale: `--true-cfg`: only families with true CFG (FLUX.1, Qwen-Image).
    :param strength: img2img strength; needs an img2img pipeline (or, with MASK, an inpainting one).
    :param max_sequence_length: the T5/LLM window; only families with such an encoder.
    :param init_image: an init image (img2img, or inpainting with MASK): the family needs that pipeline.
    """
    fam = family_of(family)
    if fam is None:
        return
    if sampler is not None:
        _check_sampler(fam, sampler)
    if true_cfg_scale is not None:
        if fam.negative_prompt != "true_cfg":
            with_it = ", ".join(f.label for f in TABLE if f.negative_prompt == "true_cfg")
            raise BadParameter(f"`true_cfg_scale` applies to families with true CFG ({with_it}); {fam.label} "
                               f"has {guidance_label(fam)}: use `cfg`")
        if not 0 < float(true_cfg_scale) <= 100:
            raise BadParameter(f"`true_cfg_scale` must be above 0 and at most 100 but is {true_cfg_scale}")
    if strength is not None or init_image:
        mode = "inpaint" if mask else "img2img"
        if mode not in fam.pipelines and not (mask and "fill" in fam.pipelines):
            flag = "strength" if strength is not None else ("mask" if mask else "init_image")
            raise BadParameter(f"`{flag}` needs an {'inpainting' if mask else 'img2img'} pipeline, which "
                               f"{fam.label} does not have in diffusers (it has: {', '.join(fam.pipelines)})")
    if max_sequence_length is not None:
        _check_sequence_length(fam, max_sequence_length)


def check_generation_options(model: str, params: Any = None, inputs: Any = None, *, sampler: str | None = None,
                             true_cfg_scale: float | None = None, max_sequence_length: int | None = None) -> None:
    """`check_family_options` for a generation request on MODEL (a local folder or file: its detected family;
    a hub id is not guessed at). PARAMS (`GenerationParams`) gives the sampler when it is not the default
    filled in for the person; INPUTS (`InputRequest`) the strength and mask; the keyword arguments win.
    """
    from .params import DEFAULT_SAMPLER

    fam = family_for(model, by_name=False)
    if fam is None:
        return
    if sampler is None and params is not None and getattr(params, "sampler", DEFAULT_SAMPLER) != DEFAULT_SAMPLER:
        sampler = params.sampler
    extra = getattr(params, "extra", None) or {}
    check_family_options(
        fam, sampler=sampler,
        true_cfg_scale=true_cfg_scale if true_cfg_scale is not None else getattr(inputs, "true_cfg_scale", None),
        strength=getattr(inputs, "strength", None) if inputs is not None else extra.get("strength"),
        mask=getattr(inputs, "mask", None) if inputs is not None else extra.get("mask"),
        init_image=getattr(inputs, "init_image", None) if inputs is not None else extra.get("init_image"),
        max_sequence_length=(max_sequence_length if max_sequence_length is not None
                             else getattr(inputs, "max_sequence_length", None)))


def family_summary(family: str | Family, guidance: float | None = None, true_cfg: float | None = None,
                   model: str | None = None) -> dict[str, Any]:
    """What a face needs to follow FAMILY: its guidance control's label and default, whether the negative
    prompt is read at these settings, each encoder's window, the default template and the samplers it takes.
    A variant MODEL's name says (FLUX.1 schnell, Z-Image Turbo) brings its own defaults."""
    fam = family_of(family)
    assert fam is not None
    from .tokenwindows import ENCODER_LABELS

    variant, defaults = variant_for(fam, model)
    default_guidance = defaults.get("guidance", fam.default_guidance)
    guidance = guidance if guidance is not None else default_guidance
    flow = fam.key not in ("sd1", "sd2", "sdxl")
    return {"key": fam.key, "label": fam.label, "variant": variant, "guidance_label": guidance_label(fam),
            "guidance": fam.guidance, "guidance_arg": fam.guidance_arg, "default_guidance": default_guidance,
            "default_steps": defaults.get("steps", fam.default_steps), "default_size": fam.default_size,
            "negative_prompt": fam.negative_prompt, "negative_ignored": negative_ignored(fam, guidance, true_cfg),
            "true_cfg": fam.negative_prompt == "true_cfg" and fam.guidance_arg != "true_cfg_scale",
            "max_sequence_length": any(e.tokenizer != "clip-bpe" for e in fam.encoders),
            "a1111_weights": fam.a1111_weights, "default_template": default_template(fam),
            "samplers": ["Euler"] if flow else None,
            "encoders": [{"name": e.name, "label": ENCODER_LABELS.get(e.name, e.name), "max_tokens": e.max_tokens,
                          "window": e.window, "note": e.note} for e in fam.encoders]}


def family_defaults(model: str | None) -> tuple[int, float]:
    """(steps, guidance) for a generation whose `--steps`/`--cfg` were not given: SD 1.x/2.x/SDXL (or a model
    whose family cannot be told) keep promptkit's 25 steps at CFG 7; a flow-matching family takes its table
    defaults, a distilled variant's (schnell, turbo) when the model's name says one."""
    try:
        family = family_for(model) if model else None
    except PromptkitError:
        family = None
    if family is None or family.key in UNET_FAMILIES:
        return 25, 7.0
    _, variant = variant_for(family, model)
    return int(variant.get("steps", family.default_steps)), float(variant.get("guidance", family.default_guidance))
