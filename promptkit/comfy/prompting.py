"""What the prompt nodes do, in promptkit's terms (no ComfyUI, no torch): build a prompt for a family, load
a saved one, give an experiment variant's prompt for a seed.

The building is the service layer's (`service.prompts.render_prompt`); this adds what a target family
changes about the lint (an encoder that ignores the negative prompt or A1111 weights, a longer token
window), from the family table. The prompts built here are remembered in this process by their text, so
that *Save to Library* can store a new prompt with its template and fields rather than as bare text.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import BadParameter, PromptkitError

if TYPE_CHECKING:
    from ..library import Library
    from ..service.prompts import BuiltPrompt

BUILT_REMEMBERED = 64  # prompts built in this process, kept for Save to Library by their text
_built: OrderedDict[tuple[str, str], Any] = OrderedDict()


def split_names(text: str) -> list[str]:
    """Preset names typed in one box: "watercolor, cinematic" -> ["watercolor", "cinematic"]."""
    return [name.strip() for name in str(text or "").replace("\n", ",").split(",") if name.strip()]


def family_findings(family: str, positive: str, negative: str) -> list[tuple[str, str]]:
    """(level, message) of what FAMILY (a key of `families.TABLE`) does with this prompt."""
    from ..families import BY_KEY, get_family
    from ..weighting import is_weighted

    if family not in BY_KEY:
        raise BadParameter(f"unknown family {family!r} (family); choose one of: {', '.join(BY_KEY)}")
    fam = get_family(family)
    found: list[tuple[str, str]] = []
    if negative.strip() and fam.negative_prompt == "never":
        found.append(("warning", f"{fam.label} ignores the negative prompt"))
    elif negative.strip() and fam.negative_prompt == "true_cfg":
        found.append(("note", f"{fam.label} reads the negative prompt only with true CFG above 1"))
    if not fam.a1111_weights and (is_weighted(positive) or is_weighted(negative)):
        found.append(("warning", f"{fam.label}'s text encoder reads (word:1.2) weights and BREAK as plain text"))
    longest = max(fam.encoders, key=lambda encoder: encoder.max_tokens)
    if longest.tokenizer != "clip-bpe":
        found.append(("note", f"{fam.label} reads up to {longest.max_tokens} tokens through {longest.name}; "
                              "the CLIP token count applies to its CLIP encoder only"
                      if any(e.tokenizer == "clip-bpe" for e in fam.encoders) else
                      f"{fam.label} reads up to {longest.max_tokens} tokens through {longest.name}; "
                      "the CLIP token count above is only a guide"))
    return found


def findings_text(built: BuiltPrompt, family: str) -> str:
    """The lint findings as lines "level: message", the family's after the prompt's ("" when none)."""
    tokens = built.tokens
    lines = []
    if tokens.get("positive") is not None:
        lines.append(f"tokens: positive {tokens['positive']}, negative {tokens['negative']} of {tokens['limit']} "
                     f"({tokens['tokenizer']})")
    lines += [f"{f.level}: {f.message}" for f in built.findings]
    lines += [f"{level}: {message}" for level, message in family_findings(family, built.positive, built.negative)]
    return "\n".join(dict.fromkeys(lines))


def build(subject: str, action: str, environment: str, style: str, quality: str, template: str,
          negative_preset: str, family: str, negative: str = "", templates_dir: str | None = None) -> BuiltPrompt:
    """Render the fields with the service layer; remember the result for Save to Library."""
    from ..service.prompts import render_prompt

    family_findings(family, "", "")  # an unknown family is refused before anything is rendered
    built = render_prompt(template=template or "default", templates_dir=templates_dir or None, subject=subject,
                          action=action, environment=environment, style=split_names(style),
                          quality=split_names(quality), negative=split_names(negative),
                          negative_preset=negative_preset or "standard")
    _built[(built.positive, built.negative)] = built
    _built.move_to_end((built.positive, built.negative))
    while len(_built) > BUILT_REMEMBERED:
        _built.popitem(last=False)
    return built


def built_with_text(positive: str, negative: str) -> BuiltPrompt | None:
    """The prompt built in this process with exactly this text, if any (its template and fields)."""
    return _built.get((positive, negative))


def load_prompt(library: Library, prompt: str) -> dict[str, Any]:
    """A saved prompt by name or id (the service's show, without its generations)."""
    if not str(prompt or "").strip():
        raise BadParameter("give a saved prompt's name or id (prompt)")
    return library.get_prompt(str(prompt).strip())


def variant_prompt(library: Library, experiment: str, variant: str) -> dict[str, Any]:
    """An experiment's variant: {experiment, label, prompt (the row), params (its GenerationParams)}."""
    from ..experiments import get_experiment
    from ..experiments.variants import variant_params

    found = get_experiment(library, str(experiment).strip())
    label = str(variant).strip()
    chosen = next((v for v in found["variants"] if v["label"] == label), None)
    if chosen is None:
        labels = ", ".join(v["label"] for v in found["variants"])
        raise PromptkitError(f"experiment {found['name']!r} has no variant {label!r} (variant); it has {labels}")
    return {"experiment": found, "label": label, "prompt": chosen["prompt"], "overrides": chosen["overrides"],
            "params": variant_params(found, chosen)}
