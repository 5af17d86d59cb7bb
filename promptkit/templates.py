"""The prompt builder: fields + presets + a sandboxed Jinja2 template -> a normalised Prompt."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import TemplateProblem, UnknownPreset

PRESET_KINDS = ("style", "quality", "negative")
DEFAULT_TEMPLATE = "default"
DEFAULT_NEGATIVE_PRESET = "standard"
# A rendered prompt longer than this is refused: CLIP reads 77 tokens, and a
# runaway template must not exhaust memory.
MAX_RENDERED_CHARS = 100_000
STANDARD_FIELDS = ("subject", "action", "environment", "style", "quality", "negative")
# A1111 attention weights that templates and --weight may write: above 0, at most 2 (past about 1.5
# images already break up), written with at most 4 decimals.
MAX_WEIGHT = 2.0


def packaged_templates_dir() -> Path:
    """The templates shipped with promptkit: inside the wheel, or the source tree's `templates/`."""
    here = Path(__file__).resolve().parent
    inside = here / "templates"
    return inside if inside.is_dir() else here.parent / "templates"


def user_templates_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The user's template folder: `--templates DIR`, else `PROMPTKIT_TEMPLATES`, else none."""
    value = explicit or os.environ.get("PROMPTKIT_TEMPLATES")
    if not value:
        default = default_user_templates_dir()
        return default if default.is_dir() else None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise TemplateProblem(f"template folder {str(path)!r} does not exist or is not a folder")
    return path


def default_user_templates_dir() -> Path:
    """Where `promptkit presets import` keeps presets when no --templates folder is named:
    `$XDG_CONFIG_HOME/promptkit/templates` (~/.config/promptkit/templates); read when it exists."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "promptkit" / "templates"


def preset_key(name: str) -> str:
    """How preset names are matched: case, spaces, `_` and `-` do not matter ("Oil_Painting" = "oil-painting")."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


@dataclass(frozen=True)
class Preset:
    kind: str
    name: str
    description: str
    positive: str = ""
    negative: str = ""
    phrase: str = ""  # the positive terms as a phrase, for the sentence template ("" : the terms themselves)
    source: str = ""  # where an imported preset came from: "<format>: <file>"

    @property
    def phrase_form(self) -> str:
        return self.phrase or self.positive

    @property
    def places_prompt(self) -> bool:
        """An A1111/Fooocus/InvokeAI style whose `{prompt}` says where the prompt goes."""
        return "{prompt}" in self.positive


@dataclass
class Fields:
    """What a person fills in. `style` and `quality` are preset names."""

    subject: str = ""
    action: str = ""
    environment: str = ""
    style: list[str] = field(default_factory=list)
    quality: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    negative_preset: str = DEFAULT_NEGATIVE_PRESET
    extras: dict[str, str] = field(default_factory=dict)
    # field name -> A1111 weight: the field's text reaches the template as `(text:weight)`.
    weights: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["weights"]:
            del data["weights"]  # prompts without weights are stored exactly as before
        return data

    def is_empty(self) -> bool:
        """True when nothing was described: no text field, preset, negative term or extra."""
        texts = [self.subject, self.action, self.environment, *self.style, *self.quality, *self.negative,
                 *self.extras.values()]
        return not any(str(text).strip() for text in texts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Fields":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Prompt:
    template: str
    template_digest: str
    fields: Fields
    positive: str
    negative: str
    notes: list[str] = field(default_factory=list)


class _CappedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` refused when the result would be huge."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):  # type: ignore[override]
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise SecurityError("exponent too large in template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                    if len(seq) * count > MAX_RENDERED_CHARS:
                        raise SecurityError("repetition too large in template")
        return super().call_binop(context, operator, left, right)


class WeightError(ValueError):
    """A weight a template or --weight asked for that cannot be written."""


def check_weight(weight: Any) -> float:
    """WEIGHT as a float in (0, MAX_WEIGHT], rounded to 4 decimals; text such as "1.3" (a --set value) counts."""
    import math

    number = None
    if isinstance(weight, (int, float)) and not isinstance(weight, bool):
        number = float(weight)
    elif isinstance(weight, str):
        try:
            number = float(weight.strip())
        except ValueError:
            pass
    if number is None or not math.isfinite(number):
        raise WeightError(f"weight {weight!r} is not a number")
    rounded = round(number, 4)
    if not 0 < rounded <= MAX_WEIGHT:
        raise WeightError(f"weight {weight!r} is out of range: give a number above 0 and at most {MAX_WEIGHT:g}")
    return rounded


def escape_attention(text: str) -> str:
    """TEXT with A1111's brackets escaped (`\\(`), so it reads as literal text inside a weight."""
    return re.sub(r"([\\()\[\]])", r"\\\1", text)


def weight_text(value: Any, weight: Any) -> str:
    """`(value:weight)` in A1111's syntax, the value's brackets escaped; weight 1 or an empty value: unchanged."""
    number = check_weight(weight)
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = "" if value is None else str(value)
    if number == 1 or not text.strip():
        return text
    return f"({escape_attention(text.strip())}:{format(number, '.4f').rstrip('0').rstrip('.')})"


def sentence_text(text: Any) -> str:
    """TEXT as a sentence: stripped, its first letter capitalised, a full stop added when it has no end mark
    ("" stays ""); the packaged `sentence` template's filter."""
    text = " ".join(str(text or "").split())
    if not text:
        return ""
    first = next((i for i, ch in enumerate(text) if ch.isalpha()), None)
    if first is not None:
        text = text[:first] + text[first].upper() + text[first + 1:]
    return text if text[-1] in ".!?" else text + "."


def normalise_terms(text: str) -> tuple[str, list[str]]:
    """Join comma-separated terms cleanly; return the text and the duplicate terms dropped.

    Commas and newlines separate terms; empty segments vanish, whitespace collapses to one space,
    and a term seen before (case-insensitive) is dropped, keeping the first.
    """
    seen: set[str] = set()
    kept: list[str] = []
    dropped: list[str] = []
    for raw in re.split(r"[,\n]", text):
        term = " ".join(raw.split())
        if not term:
            continue
        key = term.lower()
        if key in seen:
            dropped.append(term)
            continue
        seen.add(key)
        kept.append(term)
    return ", ".join(kept), dropped


class PromptBuilder:
    """Renders prompts from fields through the sandboxed template loader chain.

    :param templates_dir: the user's template folder, searched before the packaged one.
    """

    def __init__(self, templates_dir: str | os.PathLike | None = None) -> None:
        self.user_dir = user_templates_dir(templates_dir)
        self.search_path = [p for p in (self.user_dir, packaged_templates_dir()) if p]
        self.env = _CappedSandbox(
            loader=jinja2.FileSystemLoader([str(p) for p in self.search_path]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )
        self.env.filters["weight"] = weight_text
        self.env.filters["sentence"] = sentence_text
        for name, plugin_filter in _plugin_filters().items():
            self.env.filters.setdefault(name, plugin_filter)  # a plugin adds filters; it replaces none
        self._presets: dict[str, dict[str, Preset]] | None = None

    # -- presets --------------------------------------------------------
    def presets(self, kind: str | None = None) -> list[Preset]:
        table = self._load_presets()
        kinds = [kind] if kind else list(PRESET_KINDS)
        for k in kinds:
            if k not in table:
                raise UnknownPreset(f"unknown preset kind {k!r}; choose one of {', '.join(PRESET_KINDS)}")
        return [p for k in kinds for p in table[k].values()]

    def preset(self, kind: str, name: str) -> Preset:
        """The preset NAME of KIND, matched leniently (`preset_key`); unknown: the closest names suggested."""
        import difflib

        table = self._load_presets()[kind]
        if name in table:
            return table[name]
        keys = {preset_key(known): known for known in table}
        if preset_key(name) in keys:
            return table[keys[preset_key(name)]]
        close = [keys[k] for k in difflib.get_close_matches(preset_key(name), keys, n=3, cutoff=0.6)]
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        listed = sorted(table) if len(table) <= 30 else sorted(table)[:30] + [f"… {len(table) - 30} more"]
        raise UnknownPreset(f"unknown {kind} preset {name!r}; {hint}available: {', '.join(listed)}"
                            f" (see `promptkit presets --kind {kind}`)")

    def _load_presets(self) -> dict[str, dict[str, Preset]]:
        if self._presets is not None:
            return self._presets
        table: dict[str, dict[str, Preset]] = {k: {} for k in PRESET_KINDS}
        # Packaged first, then the plugins' (`promptkit_presets`), then the user's folder, so the user's presets win.
        for folder in reversed(self.search_path):
            if folder == self.user_dir:
                _add_plugin_presets(table)
            for kind in PRESET_KINDS:
                path = folder / "presets" / f"{kind}.json"
                if not path.is_file():
                    continue
                try:
                    entries = json.loads(path.read_text(encoding="utf-8"))
                    for entry in entries:
                        table[kind][entry["name"]] = Preset(
                            kind=kind,
                            name=str(entry["name"]),
                            description=str(entry.get("description", "")),
                            positive=str(entry.get("positive", "")),
                            negative=str(entry.get("negative", "")),
                            phrase=str(entry.get("phrase", "")),
                            source=str(entry.get("source", "")),
                        )
                except (ValueError, KeyError, TypeError) as exc:
                    raise TemplateProblem(f"preset file {str(path)!r} is not valid: {exc}") from None
        if self.user_dir is None:
            _add_plugin_presets(table)
        self._presets = table
        return table

    # -- templates ------------------------------------------------------
    def template_names(self) -> list[str]:
        names = {n[:-3] for n in self.env.list_templates(extensions=["j2"]) if "/" not in n}
        return sorted(names)

    def template_source(self, name: str) -> tuple[str, str]:
        """The source and file path of template NAME."""
        try:
            source, filename, _ = self.env.loader.get_source(self.env, f"{name}.j2")  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            raise TemplateProblem(
                f"unknown template {name!r}; available: {', '.join(self.template_names())}"
            ) from None
        return source, filename

    def _template_chain(self, name: str):
        """Yield (file name, source, parsed tree) for template NAME and every template it extends
        or includes, each once, in the order they are reached."""
        seen: set[str] = set()
        pending = [f"{name}.j2"]
        while pending:
            file_name = pending.pop(0)
            if file_name in seen:
                continue
            seen.add(file_name)
            try:
                source, _, _ = self.env.loader.get_source(self.env, file_name)  # type: ignore[union-attr]
                tree = self.env.parse(source)
            except jinja2.TemplateNotFound:
                raise TemplateProblem(f"template {name!r} refers to missing template {file_name!r}") from None
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateProblem(f"template {file_name!r} line {exc.lineno}: {exc.message}") from None
            yield file_name, source, tree
            pending.extend(r for r in jinja2.meta.find_referenced_templates(tree) if r)

    def template_digest(self, name: str) -> str:
        """sha256 over the template's source and every template it extends or includes."""
        digest = hashlib.sha256()
        for file_name, source, _tree in self._template_chain(name):
            digest.update(file_name.encode() + b"\0" + source.encode() + b"\0")
        return digest.hexdigest()

    def declared_fields(self, name: str) -> list[str]:
        """The extra `key=value` fields template NAME uses: variables it (or a template it extends or
        includes) reads that the builder does not provide itself."""
        provided = set(self._context(Fields())) | {"negative_preset"}
        found: set[str] = set()
        for _file_name, _source, tree in self._template_chain(name):
            found |= jinja2.meta.find_undeclared_variables(tree)
        return sorted(found - provided)

    def render(self, fields: Fields, template: str = DEFAULT_TEMPLATE) -> Prompt:
        """Render FIELDS through TEMPLATE into a normalised positive and negative prompt."""
        check_field_text(fields)
        context = self._context(fields)
        try:
            tmpl = self.env.get_template(f"{template}.j2")
        except jinja2.TemplateNotFound as exc:
            if exc.name == f"{template}.j2":
                raise TemplateProblem(
                    f"unknown template {template!r}; available: {', '.join(self.template_names())}"
                ) from None
            raise TemplateProblem(f"template {template!r} refers to missing template {exc.name!r}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(f"template {template!r} line {exc.lineno}: {exc.message}") from None
        digest = self.template_digest(template)

        try:
            ctx = tmpl.new_context(context)
            # The `negative` block is its own prompt: a blank stand-in goes first so the
            # positive render skips it; the real definitions (child first) follow it.
            ctx.blocks["negative"] = [_blank_block] + ctx.blocks.get("negative", [])
            positive_raw = _join_capped(tmpl.root_render_func(ctx), template)
            if len(ctx.blocks["negative"]) > 1:
                negative_raw = _join_capped(ctx.blocks["negative"][1](ctx), template)
            else:
                negative_raw = context["negative"]
        except jinja2.UndefinedError as exc:
            # Short enough for one line of the studio's error box: its field is marked there.
            name = re.search(r"'(\w+)' is undefined", exc.message or "")
            raise TemplateProblem(f"template {template!r}: {exc.message}; fill it in "
                                  f"(--set {name.group(1) if name else 'NAME'}=VALUE)") from None
        except SecurityError as exc:
            raise TemplateProblem(f"template {template!r} refused by the sandbox: {exc}") from None
        except WeightError as exc:
            raise TemplateProblem(f"template {template!r}: the weight filter: {exc}") from None
        except TemplateProblem:
            raise
        except Exception as exc:  # any other error inside user template code
            raise TemplateProblem(f"template {template!r} failed: {type(exc).__name__}: {exc}") from None

        positive_raw, negative_raw = self._place_prompt(fields, positive_raw, negative_raw)
        positive, dropped_pos = normalise_terms(positive_raw)
        negative, dropped_neg = normalise_terms(negative_raw)
        notes = [f"duplicate term {t!r} dropped from the positive prompt" for t in _once(dropped_pos)]
        notes += [f"duplicate term {t!r} dropped from the negative prompt" for t in _once(dropped_neg)]
        return Prompt(template, digest, fields, positive, negative, notes)

    def _place_prompt(self, fields: Fields, positive: str, negative: str) -> tuple[str, str]:
        """Styles with `{prompt}` (A1111 styles.csv, Fooocus, InvokeAI) wrap the rendered prompt, in order,
        as A1111's apply_styles_to_prompt does; the same for a negative with `{prompt}`."""
        for style in (self.preset("style", name) for name in fields.style):
            if style.places_prompt:
                positive = style.positive.replace("{prompt}", normalise_terms(positive)[0])
            if "{prompt}" in style.negative:
                negative = style.negative.replace("{prompt}", normalise_terms(negative)[0])
        return positive, negative

    def _context(self, fields: Fields) -> dict[str, Any]:
        styles = [self.preset("style", name) for name in fields.style]
        qualities = [self.preset("quality", name) for name in fields.quality]
        negative_preset = self.preset("negative", fields.negative_preset) if fields.negative_preset else None
        for key in fields.extras:
            if key in STANDARD_FIELDS or not key.isidentifier():
                raise TemplateProblem(
                    f"extra field name {key!r} is not allowed: use a Python-style name that is not one of "
                    f"{', '.join(STANDARD_FIELDS)}"
                )
        negative_parts = [negative_preset.negative if negative_preset else ""]
        negative_parts += [p.negative for p in styles if "{prompt}" not in p.negative]
        negative_parts += list(fields.negative)
        context = {
            **fields.extras,
            "subject": fields.subject,
            "action": fields.action,
            "environment": fields.environment,
            "style": ", ".join(p.positive for p in styles if not p.places_prompt),
            "style_names": list(fields.style),
            "quality": ", ".join(p.positive for p in qualities),
            "style_phrase": ", ".join(p.phrase_form for p in styles),
            "quality_phrase": ", ".join(p.phrase_form for p in qualities),
            "negative": ", ".join(part for part in negative_parts if part),
        }
        for key, weight in fields.weights.items():
            if key not in context or key in ("style_names", "style_phrase", "quality_phrase"):
                raise TemplateProblem(f"--weight {key}: no such field; weight one of {', '.join(STANDARD_FIELDS)} "
                                      "or a --set field")
            try:
                context[key] = weight_text(context[key], weight)
            except WeightError as exc:
                raise TemplateProblem(f"--weight {key}={weight}: {exc}") from None
        return context


def _plugin_filters() -> dict[str, Any]:
    """Template filters from plugins (`promptkit_template_filters`); "weight" stays promptkit's."""
    from .plugins.discovery import plugins_installed

    if not plugins_installed():  # nothing to load: no importlib.metadata, no pluggy at `build`
        return {}
    from .plugins.manager import get_plugins

    return get_plugins().template_filters()


def _add_plugin_presets(table: dict[str, dict[str, Preset]]) -> None:
    """Presets from plugins (`promptkit_presets`) into TABLE; one of an unknown kind is refused in one line."""
    from .plugins.discovery import plugins_installed

    if not plugins_installed():
        return
    from .plugins.manager import get_plugins

    for entry in get_plugins().presets():
        kind = entry.get("kind")
        if kind not in table or not entry.get("name"):
            raise TemplateProblem(f"plugin {entry.get('plugin')!r} gives a preset without a name or of unknown kind "
                                  f"{kind!r}; kinds are {', '.join(PRESET_KINDS)}")
        table[kind][str(entry["name"])] = Preset(kind=kind, name=str(entry["name"]),
                                                 description=str(entry.get("description", "")),
                                                 positive=str(entry.get("positive", "")),
                                                 negative=str(entry.get("negative", "")))


def _once(terms: list[str]) -> list[str]:
    """TERMS without repeats (case-insensitive): a term dropped twice is reported once."""
    return list({term.lower(): term for term in reversed(terms)}.values())[::-1]


def check_fields_given(fields: Fields) -> None:
    """Refuse FIELDS that describe nothing: an empty prompt is never what was meant."""
    if fields.is_empty():
        raise TemplateProblem("nothing to build: give --subject (or --action, --environment, --style, --quality, "
                              "--negative, --set KEY=VALUE)")


def check_field_text(fields: Fields) -> None:
    """Refuse text that cannot be stored: a lone surrogate (what Python makes of command-line
    bytes that are not UTF-8) would fail later in SQLite or in a PNG chunk, far from its cause."""
    values: list[tuple[str, object]] = [
        ("subject", fields.subject), ("action", fields.action), ("environment", fields.environment),
        ("negative_preset", fields.negative_preset),
    ]
    values += [("style", v) for v in fields.style] + [("quality", v) for v in fields.quality]
    values += [("negative", v) for v in fields.negative]
    values += [(f"--set {k}", k) for k in fields.extras] + [(f"--set {k}", v) for k, v in fields.extras.items()]
    for name, value in values:
        if not isinstance(value, str):
            raise TemplateProblem(f"field {name!r} must be text but is {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TemplateProblem(
                f"field {name!r} is not valid text: {value[exc.start]!r} at position {exc.start} is not a "
                "Unicode character (bytes that are not UTF-8?)"
            ) from None


def _blank_block(_context):
    return iter(())


def _join_capped(pieces, template: str) -> str:
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_RENDERED_CHARS:
            raise TemplateProblem(
                f"template {template!r} rendered more than {MAX_RENDERED_CHARS} characters; refused"
            )
        out.append(piece)
    return "".join(out)


_EXTRA_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)


def parse_weights(pairs: list[str] | tuple[str, ...]) -> dict[str, float]:
    """`FIELD=WEIGHT` strings (`subject=1.3`) into a dict, naming the bad one on error."""
    weights: dict[str, float] = {}
    for pair in pairs:
        match = _EXTRA_RE.match(pair)
        if not match:
            raise TemplateProblem(f"--weight expects FIELD=WEIGHT (subject=1.3), got {pair!r}")
        try:
            weights[match.group(1)] = check_weight(match.group(2))
        except WeightError as exc:
            raise TemplateProblem(f"--weight {pair}: {exc}") from None
    return weights


def parse_extras(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Turn `key=value` strings into a dict, naming the bad one on error."""
    extras: dict[str, str] = {}
    for pair in pairs:
        match = _EXTRA_RE.match(pair)
        if not match:
            raise TemplateProblem(f"--set expects NAME=VALUE, got {pair!r}")
        extras[match.group(1)] = match.group(2)
    return extras
