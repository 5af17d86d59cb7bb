"""Guided prompt authoring in the terminal: one question per field, the prompt and lint after each answer."""

from __future__ import annotations

from typing import Callable

from .errors import PromptkitError
from .lint import lint_prompt
from .templates import Fields, PromptBuilder

Ask = Callable[[str, str], str]  # (question, default) -> answer
Say = Callable[[str], None]


def _pick(ask: Ask, say: Say, builder: PromptBuilder, kind: str, question: str, default: str) -> list[str]:
    """Offer the presets of KIND by number; the answer is numbers or names, comma-separated, or empty."""
    presets = builder.presets(kind)
    for number, preset in enumerate(presets, 1):
        say(f"  {number:>2}. {preset.name:<16} {preset.description}")
    while True:
        answer = ask(question, default).strip()
        if not answer:
            return []
        chosen = []
        try:
            for part in answer.replace(" ", ",").split(","):
                if not part:
                    continue
                if part.isdigit():
                    if not 1 <= int(part) <= len(presets):
                        raise PromptkitError(f"{part} is not between 1 and {len(presets)}")
                    chosen.append(presets[int(part) - 1].name)
                else:
                    chosen.append(builder.preset(kind, part).name)
        except PromptkitError as exc:
            say(f"  ! {exc}")
            continue
        return chosen


def _show(say: Say, builder: PromptBuilder, fields: Fields, template: str, model: str | None) -> None:
    try:
        prompt = builder.render(fields, template)
    except PromptkitError as exc:
        say(f"  ! {exc}")
        return
    report = lint_prompt(prompt.positive, prompt.negative, model=model, notes=prompt.notes)
    count = f" ({report.positive.count}/{report.positive.limit} tokens)" if report.positive else ""
    say(f"  → positive{count}: {prompt.positive}")
    say(f"  → negative: {prompt.negative}")
    for finding in report.findings:
        say(f"  {'·' if finding.level == 'note' else '!'} {finding.level}: {finding.message}")


def guided_fields(ask: Ask, say: Say, builder: PromptBuilder, template: str = "default",
                  model: str | None = None) -> Fields:
    """Ask for each field in turn; show the rendered prompt and its lint after each answer."""
    fields = Fields()
    say("Describe the image one field at a time (Enter skips a field).")
    while not fields.subject:
        fields.subject = ask("Subject (what the image is of)", "").strip()
    _show(say, builder, fields, template, model)
    fields.action = ask("Action (what the subject is doing)", "").strip()
    _show(say, builder, fields, template, model)
    fields.environment = ask("Environment (setting, background, light)", "").strip()
    _show(say, builder, fields, template, model)
    say("Style presets:")
    fields.style = _pick(ask, say, builder, "style", "Style (numbers or names, comma-separated)", "")
    _show(say, builder, fields, template, model)
    say("Quality presets:")
    fields.quality = _pick(ask, say, builder, "quality", "Quality (numbers or names)", "")
    _show(say, builder, fields, template, model)
    say("Negative presets:")
    negative = _pick(ask, say, builder, "negative", "Negative preset (one number or name)", "standard")
    fields.negative_preset = negative[0] if negative else ""
    extra = ask("Your own negative terms (comma-separated)", "").strip()
    fields.negative = [t.strip() for t in extra.split(",") if t.strip()]
    _show(say, builder, fields, template, model)
    return fields
