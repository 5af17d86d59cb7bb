"""Iteration: child prompts that change one thing, generated on the parent's seeds, and their lineage."""

from __future__ import annotations

import difflib
from typing import Any

from .errors import BadParameter, PromptkitError
from .library import Library
from .params import GenerationParams
from .templates import STANDARD_FIELDS, Fields, PromptBuilder

LIST_FIELDS = ("style", "quality", "negative")


def apply_changes(fields: dict[str, Any], changes: dict[str, str]) -> dict[str, Any]:
    """Fields with CHANGES applied: a standard field by name (lists comma-separated), else a template extra."""
    updated = {**fields, "extras": dict(fields.get("extras") or {})}
    for key, value in changes.items():
        if key in LIST_FIELDS:
            updated[key] = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "negative_preset" or key in STANDARD_FIELDS:
            updated[key] = value
        else:
            updated["extras"][key] = value
    return updated


def field_diff(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = sorted(set(parent) | set(child))
    return {k: {"from": parent.get(k), "to": child.get(k)} for k in keys if parent.get(k) != child.get(k)}


def text_diff(before: str, after: str) -> dict[str, list[str]]:
    """Terms added and removed between two comma-separated prompts."""
    a = [t.strip() for t in before.split(",") if t.strip()]
    b = [t.strip() for t in after.split(",") if t.strip()]
    added, removed = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b).get_opcodes():
        if op in ("replace", "delete"):
            removed += a[i1:i2]
        if op in ("replace", "insert"):
            added += b[j1:j2]
    return {"added": added, "removed": removed}


def iterate_prompt(library: Library, parent_ref: str, changes: dict[str, str], name: str | None = None,
                   templates_dir: str | None = None) -> dict[str, Any]:
    """Save a child of PARENT with CHANGES; return the child and its differences from the parent."""
    if not changes:
        raise BadParameter("nothing to change: give --set FIELD=VALUE or a field option")
    parent = library.get_prompt(parent_ref)
    fields = apply_changes(parent["fields"] or {}, changes)
    prompt = PromptBuilder(templates_dir).render(Fields.from_dict(fields), parent["template"] or "default")
    child_id = library.save_prompt(prompt, name=name, parent_id=parent["id"], tags=list(parent.get("tags") or []))
    child = library.get_prompt(child_id)
    return {
        "parent": parent,
        "child": child,
        "fields": field_diff(parent["fields"] or {}, child["fields"] or {}),
        "positive": text_diff(parent["positive"], child["positive"]),
        "negative": text_diff(parent["negative"], child["negative"]),
        "notes": prompt.notes,
    }


def parent_settings(library: Library, prompt_id: int) -> tuple[GenerationParams, list[int], str, int]:
    """The parameters, seeds, model and batch size of the prompt's most recent generation run.

    The parameters include its inputs (init image, mask, control images, LoRAs, refiner), so a
    child generated with them changes only the prompt.
    """
    latest = library.latest_run_settings(prompt_id)
    if latest is None:
        raise PromptkitError(f"prompt {prompt_id} has no generations to take seeds and parameters from; "
                             "generate it first or pass --seeds")
    sampler, steps, cfg, width, height, noise_device, model, extra = (
        latest[k] for k in ("sampler", "steps", "cfg", "width", "height", "noise_device", "model", "params"))
    seeds, batch_size = latest["seeds"], latest["batch_size"]
    from .generation import recorded_inputs

    params = GenerationParams(sampler=sampler, steps=steps, cfg=cfg, width=width, height=height,
                              noise_device=noise_device or "cpu", extra=recorded_inputs(extra))
    return params, seeds, model, batch_size


def child_loras(loras: list[dict[str, Any]], parent_positive: str, child_positive: str,
                lora_dir: str | None) -> list[dict[str, Any]]:
    """The LoRAs a child prompt runs with: the parent's `--lora` files as they were, and the
    child's own `<lora:NAME:SCALE>` tags at the child's scales. A tag the parent also had reuses
    the parent's file (the library keeps a copy); a new one is resolved in LORA_DIR."""
    from .inputs import lora_tag_record_name, merge_loras, prompt_loras
    from .weighting import lora_tags

    parent_tagged = {lora_tag_record_name(name) for name, _ in lora_tags(parent_positive)}
    kept = [lora for lora in loras if lora.get("name") not in parent_tagged]
    known = {lora.get("name"): lora for lora in loras}
    tagged = []
    for name, scale in lora_tags(child_positive):
        if lora_tag_record_name(name) in known:
            tagged.append({**known[lora_tag_record_name(name)], "scale": scale})
        else:
            tagged.extend(prompt_loras(f"<lora:{name}:{scale}>", lora_dir))
    return merge_loras(kept, tagged)


def history(library: Library, ref: str) -> dict[str, Any]:
    """The prompt's ancestors (root first) and its descendants as a tree."""
    prompt = library.get_prompt(ref)
    ancestors = []
    current = prompt
    seen = {prompt["id"]}
    while current.get("parent_id") and current["parent_id"] not in seen:
        current = library.get_prompt(current["parent_id"])
        seen.add(current["id"])
        ancestors.append(_brief(current))
    ancestors.reverse()

    def children(prompt_id: int, depth: int) -> list[dict[str, Any]]:
        if depth > 50:
            return []
        return [{**_brief(child), "children": children(child["id"], depth + 1)}
                for child in library.child_prompts(prompt_id)]

    return {"prompt": _brief(prompt), "ancestors": ancestors, "descendants": children(prompt["id"], 0)}


def _brief(prompt: dict[str, Any]) -> dict[str, Any]:
    return {"id": prompt["id"], "name": prompt.get("name"), "positive": prompt["positive"],
            "created_at": prompt["created_at"]}
