"""Prompts: build from fields, save, search, list, show, delete, rate, lineage; presets and templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from ..library import Library
    from ..templates import Fields


@dataclass
class BuiltPrompt:
    """A rendered prompt with its lint report and, when saved, its library id."""

    positive: str
    negative: str
    template: str
    template_digest: str
    tokens: dict[str, Any]
    findings: list[Any] = field(default_factory=list)  # lint findings, each with .level and .message
    tokenizer: str | None = None
    id: int | None = None
    rendered: Any = field(default=None, repr=False)  # the templates' `Prompt`, for saving

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `promptkit build --json` prints."""
        return {"id": self.id, "positive": self.positive, "negative": self.negative, "tokens": self.tokens,
                "findings": [{"level": f.level, "message": f.message} for f in self.findings],
                "template": self.template, "template_digest": self.template_digest}


def library_info(library: Library) -> dict[str, Any]:
    """The library file, its image folder and its schema version."""
    return {"db": str(library.path), "images": str(library.images_dir), "schema": library.schema_version()}


def presets(kind: str | None = None, templates_dir: str | None = None) -> list[dict[str, Any]]:
    """Style, quality and negative presets, optionally of one KIND, with their descriptions and text."""
    from ..templates import PromptBuilder

    return [{"kind": p.kind, "name": p.name, "description": p.description, "positive": p.positive,
             "negative": p.negative, "phrase": p.phrase_form, **({"source": p.source} if p.source else {})}
            for p in PromptBuilder(templates_dir).presets(kind)]


def templates(templates_dir: str | None = None) -> list[dict[str, Any]]:
    """The templates a prompt can be rendered with: name, file and digest."""
    from ..templates import PromptBuilder

    builder = PromptBuilder(templates_dir)
    return [{"name": name, "file": builder.template_source(name)[1], "digest": builder.template_digest(name)}
            for name in builder.template_names()]


def make_fields(subject: str = "", action: str = "", environment: str = "", style: list[str] | tuple = (),
                quality: list[str] | tuple = (), negative: list[str] | tuple = (),
                negative_preset: str = "standard", extras: dict[str, str] | None = None,
                weights: dict[str, float] | None = None) -> Fields:
    """The `Fields` of a prompt; `negative_preset="none"` means no negative preset."""
    from ..templates import Fields

    return Fields(subject=subject, action=action, environment=environment, style=list(style), quality=list(quality),
                  negative=list(negative), negative_preset="" if negative_preset == "none" else negative_preset,
                  extras=dict(extras or {}), weights=dict(weights or {}))


def template_for(model: str | None = None, family: str | None = None) -> str:
    """The template a prompt for MODEL (or FAMILY) starts from: `sentence` for families whose encoder reads
    sentences, else `default`."""
    from ..family_rules import default_template, family_for

    return default_template(family_for(model, family))


def token_summary(report: Any) -> dict[str, Any]:
    """A lint report's token counts as `build --json` gives them: the longest window's counts, and per
    encoder (family, encoders) when a family other than SD 1.x/2.x/SDXL was followed."""
    tokens = {"positive": report.positive.count if report.positive else None,
              "negative": report.negative.count if report.negative else None,
              "limit": report.positive.limit if report.positive else None, "tokenizer": report.tokenizer}
    if report.family is not None:
        tokens["family"] = report.family
    if report.encoders:
        tokens["encoders"] = {side: [w.to_dict() for w in windows] for side, windows in report.encoders.items()}
    return tokens


def render_prompt(fields: Fields | None = None, template: str | None = None, *, model: str | None = None,
                  templates_dir: str | None = None, family: str | None = None, guidance: float | None = None,
                  true_cfg: float | None = None, max_sequence_length: int | None = None,
                  **field_values: Any) -> BuiltPrompt:
    """Render a prompt from fields and check it (tokens, overflow, duplicates, contradictions); store nothing.

    :param fields: a `Fields`; or pass subject=, action=, environment=, style=[...], quality=[...],
        negative=[...], negative_preset=, extras={...}, weights={...} as keywords.
    :param template: the template NAME (the file NAME.j2); None: the family's default (`sentence` for
        families whose encoder reads sentences, else `default`).
    :param model: count tokens with this model's own tokenizer(s) and follow its family.
    :param templates_dir: the person's template folder, searched before the packaged one.
    :param family: the family key (`promptkit families`) when no model says it.
    :param guidance: the guidance value to lint the negative prompt against (None: the family's default).
    :param true_cfg: `true_cfg_scale`, for FLUX.1 and Qwen-Image.
    :param max_sequence_length: the T5/LLM window, else the family's.
    """
    from ..family_rules import default_template, family_for
    from ..lint import lint_prompt
    from ..templates import PromptBuilder

    fam = family_for(model, family)
    builder = PromptBuilder(templates_dir)
    prompt = builder.render(fields if fields is not None else make_fields(**field_values),
                            template or default_template(fam))
    report = lint_prompt(prompt.positive, prompt.negative, model=model, notes=prompt.notes, family=fam and fam.key,
                         guidance=guidance, true_cfg=true_cfg, max_sequence_length=max_sequence_length)
    return BuiltPrompt(positive=prompt.positive, negative=prompt.negative, template=prompt.template,
                       template_digest=prompt.template_digest, tokens=token_summary(report),
                       findings=list(report.findings), tokenizer=report.tokenizer, rendered=prompt)


def lint_text(positive: str, negative: str = "", *, model: str | None = None, family: str | None = None,
              guidance: float | None = None, true_cfg: float | None = None,
              max_sequence_length: int | None = None) -> dict[str, Any]:
    """Lint a prompt pair as written (no template): tokens per encoder of the family, the words past each
    window, weights the family cannot use, a negative prompt it ignores, terms in both prompts.

    :param model: a local model folder (its family and own tokenizers) or a hub id (its family by name).
    :param family: the family key when no model says it; SD 1.x rules when neither does.
    """
    from ..family_rules import family_for
    from ..lint import lint_prompt

    fam = family_for(model, family)
    report = lint_prompt(positive, negative, model=model, family=fam and fam.key, guidance=guidance,
                         true_cfg=true_cfg, max_sequence_length=max_sequence_length)
    return {"family": fam.key if fam else None, "positive": positive, "negative": negative,
            "tokens": token_summary(report), "findings": [f.to_dict() for f in report.findings]}


def save_prompt(library: Library, built: BuiltPrompt, name: str | None = None, parent: int | str | None = None,
                tags: list[str] | tuple = ()) -> int:
    """Store a rendered prompt; sets and returns its id.

    :param name: a unique name (None or "" for none); :param parent: the prompt id or name it was iterated from.
    """
    parent_id = library.get_prompt(parent)["id"] if parent else None
    built.id = library.save_prompt(built.rendered, name=name or None, parent_id=parent_id, tags=list(tags))
    return built.id


def build_prompt(library: Library | None = None, fields: Fields | None = None, *, template: str | None = None,
                 save: str | None = None, parent: int | str | None = None, tags: list[str] | tuple = (),
                 model: str | None = None, templates_dir: str | None = None, family: str | None = None,
                 **field_values: Any) -> BuiltPrompt:
    """Render a prompt (see `render_prompt`) and, with `save` or `parent`, store it in LIBRARY.

    :param save: store the prompt under this name ("" stores it without a name; None does not store it).
    :param parent: the prompt id or name this one was iterated from (stores it too).
    :param tags: tags stored with the prompt.
    :param family: the family key when no model says it (its default template, its lint).
    """
    built = render_prompt(fields, template, model=model, templates_dir=templates_dir, family=family, **field_values)
    if save is not None or parent is not None:
        if library is None:
            raise TypeError("build_prompt needs a library to save the prompt in")
        save_prompt(library, built, save, parent, tags)
    return built


def rate(library: Library, generation_id: int, stars: int, note: str = "") -> dict[str, Any]:
    """Rate a generated image 1 to 5 stars.

    :param generation_id: the image's generation id.
    :param stars: 1 to 5.
    :param note: a short note on the image.
    :returns: the rating: id, generation_id, stars, note.
    """
    rating_id = library.rate(generation_id, stars, note)
    return {"id": rating_id, "generation_id": generation_id, "stars": stars, "note": note}


def search(library: Library, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Full-text search over saved prompts (name, text, tags, notes), best match first.

    :param query: words that must all match.
    :param limit: the most prompts returned.
    """
    return library.search(query, limit)


def list_prompts(library: Library, limit: int = 50) -> list[dict[str, Any]]:
    """Saved prompts, newest first.

    :param limit: the most prompts returned.
    """
    return library.list_prompts(limit)


def show_prompt(library: Library, prompt: int | str) -> dict[str, Any]:
    """A prompt with its generations and their ratings.

    :param prompt: the prompt's id or name.
    """
    from .scores import attach_scores

    data = library.show_prompt(prompt)
    attach_scores(library, data["generations"])
    return data


def delete_prompt(library: Library, prompt: int | str, with_images: bool = False) -> dict[str, Any]:
    """Delete a saved prompt; one in an experiment, with votes or with iterations is kept, with the reason.

    :param prompt: the prompt's id or name.
    :param with_images: also delete its generation rows and ratings (the image files stay until the doctor
        quarantines them); a prompt with images needs it.
    """
    return library.delete_prompt(prompt, with_generations=with_images)


def history(library: Library, prompt: int | str) -> dict[str, Any]:
    """A prompt's lineage: ancestors, the prompt and every prompt iterated from it.

    :param prompt: the prompt's id or name.
    """
    from ..lineage import history as lineage_history

    return lineage_history(library, prompt)
