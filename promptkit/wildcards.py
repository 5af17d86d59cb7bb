"""Wildcards: the dynamic-prompts syntax people already write, expanded into variants or terms.

    {red|green|blue}        one of them
    {2$$a|b|c}              two different ones, joined with ", "
    {1-2$$a|b|c}            one or two;  {2$$ and $$a|b|c}: joined with " and "
    __colors__              one line of colors.txt in the wildcard folder (--wildcards DIR);
                            __animals/birds__ reads animals/birds.txt; lines may use the syntax too

Combinatorial mode lists every expansion in order; random mode draws COUNT different ones with a
seeded generator (the same seed gives the same variants). Each expansion records the choices it
made ({"from": "{red|green|blue}", "chose": "red"}).

Why not the `dynamicprompts` package: it is not installed here and pulls in pyparsing, and its
Jinja generator renders with a plain `jinja2.Environment` (dynamicprompts 0.31.0,
generators/jinjagenerator.py), not the sandbox our templates use (promptkit/templates.py), so
this small parser covers the syntax above and nothing that runs code. Its rules are the
templates' sandbox rules: caps on the number of expansions (MAX_VARIANTS), on each expansion's
length (MAX_CHARS), on nesting (MAX_DEPTH), on a wildcard file's size; a wildcard file outside
the folder, a wildcard that includes itself, and an expansion past a cap are refused in one line
before anything is written.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .errors import PromptkitError

MAX_VARIANTS = 64
MAX_CHARS = 1000
MAX_DEPTH = 8
MAX_FILE_BYTES = 1_000_000
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-. ]*(/[A-Za-z0-9][A-Za-z0-9_\-. ]*)*$")
_COUNT_RE = re.compile(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*\$\$(?:([^|{}]*?)\$\$)?", re.S)


class WildcardProblem(PromptkitError):
    """A wildcard text that cannot be expanded as asked."""


@dataclass
class Choice:
    options: list["Seq"]
    low: int = 1
    high: int = 1
    sep: str = ", "
    source: str = ""


@dataclass
class Wildcard:
    name: str


Part = Union[str, Choice, Wildcard]
Seq = list  # list[Part]


@dataclass
class Expansion:
    text: str
    choices: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "choices": self.choices}


# -- parsing ---------------------------------------------------------------------------------


def parse(text: str, flag: str = "--prompt") -> Seq:
    """TEXT as a sequence of literal text, {choices} and __wildcards__."""
    seq, pos = _parse_seq(text, 0, flag, top=True)
    return seq


def _parse_seq(text: str, pos: int, flag: str, top: bool) -> tuple[Seq, int]:
    seq: Seq = []
    literal = []
    while pos < len(text):
        char = text[pos]
        if char == "{":
            seq.append("".join(literal))
            literal = []
            choice, pos = _parse_choice(text, pos, flag)
            seq.append(choice)
            continue
        if not top and char in "|}":
            break
        if char == "}":
            raise WildcardProblem(f"{flag}: unmatched '}}' at position {pos + 1}")
        if text.startswith("__", pos):
            end = text.find("__", pos + 2)
            if end > pos + 2:
                seq.append("".join(literal))
                literal = []
                seq.append(Wildcard(text[pos + 2:end]))
                pos = end + 2
                continue
        literal.append(char)
        pos += 1
    seq.append("".join(literal))
    return [p for p in seq if p != ""], pos


def _parse_choice(text: str, start: int, flag: str) -> tuple[Choice, int]:
    pos = start + 1
    low = high = 1
    sep = ", "
    count = _COUNT_RE.match(text, pos)
    if count:
        low = int(count.group(1))
        high = int(count.group(2) or count.group(1))
        sep = count.group(3) if count.group(3) is not None else sep
        pos = count.end()
    options = []
    while True:
        option, pos = _parse_seq(text, pos, flag, top=False)
        options.append(option)
        if pos >= len(text):
            raise WildcardProblem(f"{flag}: '{{' at position {start + 1} is never closed")
        if text[pos] == "}":
            pos += 1
            break
        pos += 1  # '|'
    if not 0 <= low <= high or high > len(options):
        raise WildcardProblem(f"{flag}: {text[start:pos]!r} asks for {low}-{high} of {len(options)} options")
    return Choice(options, low, high, sep, text[start:pos]), pos


# -- wildcard files --------------------------------------------------------------------------


class _Files:
    """Reads __name__ files from one folder, refusing any name that would leave it."""

    def __init__(self, folder: str | Path | None, flag: str) -> None:
        self.folder = Path(folder).expanduser().resolve() if folder else None
        self.flag = flag
        self.cache: dict[str, list[Seq]] = {}
        if self.folder is not None and not self.folder.is_dir():
            raise WildcardProblem(f"--wildcards {str(folder)!r} is not a folder")

    def options(self, name: str) -> list[Seq]:
        if name in self.cache:
            return self.cache[name]
        if self.folder is None:
            raise WildcardProblem(f"{self.flag}: __{name}__ needs a wildcard folder (--wildcards DIR)")
        path = (self.folder / f"{name}.txt").resolve()
        if (not _NAME_RE.match(name) or ".." in name.split("/") or not path.is_relative_to(self.folder)):
            raise WildcardProblem(f"{self.flag}: wildcard __{name}__ is outside the wildcard folder; refused")
        if not path.is_file():
            raise WildcardProblem(f"{self.flag}: no wildcard file {name}.txt in {self.folder}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise WildcardProblem(f"{self.flag}: wildcard file {name}.txt is over {MAX_FILE_BYTES} bytes; refused")
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        options = [parse(line, f"{self.flag} (__{name}__)") for line in lines if line and not line.startswith("#")]
        if not options:
            raise WildcardProblem(f"{self.flag}: wildcard file {name}.txt has no lines")
        self.cache[name] = options
        return options


# -- expansion -------------------------------------------------------------------------------


@dataclass
class _Context:
    files: _Files
    flag: str
    stack: tuple[str, ...] = ()

    def enter(self, name: str) -> "_Context":
        if name in self.stack:
            loop = " → ".join(f"__{n}__" for n in (*self.stack, name))
            raise WildcardProblem(f"{self.flag}: wildcard loop {loop}; refused")
        if len(self.stack) >= MAX_DEPTH:
            raise WildcardProblem(f"{self.flag}: wildcards nest deeper than {MAX_DEPTH}; refused")
        return _Context(self.files, self.flag, (*self.stack, name))


def _all_seq(seq: Seq, ctx: _Context) -> Iterator[Expansion]:
    if not seq:
        yield Expansion("")
        return
    for head in _all_part(seq[0], ctx):
        for rest in _all_seq(seq[1:], ctx):
            yield Expansion(head.text + rest.text, head.choices + rest.choices)


def _all_part(part: Part, ctx: _Context) -> Iterator[Expansion]:
    if isinstance(part, str):
        yield Expansion(part)
    elif isinstance(part, Wildcard):
        inner = ctx.enter(part.name)
        for option in ctx.files.options(part.name):
            for exp in _all_seq(option, inner):
                yield Expansion(exp.text, [{"from": f"__{part.name}__", "chose": exp.text}, *exp.choices])
    else:
        for n in range(part.low, part.high + 1):
            for combo in itertools.combinations(part.options, n):
                for picks in itertools.product(*(list(_all_seq(o, ctx)) for o in combo)):
                    text = part.sep.join(p.text for p in picks)
                    yield Expansion(text, [{"from": part.source, "chose": text},
                                           *[c for p in picks for c in p.choices]])


def _one_seq(seq: Seq, ctx: _Context, rng: random.Random) -> Expansion:
    out = Expansion("")
    for part in seq:
        if isinstance(part, str):
            exp = Expansion(part)
        elif isinstance(part, Wildcard):
            inner = ctx.enter(part.name)
            exp = _one_seq(rng.choice(ctx.files.options(part.name)), inner, rng)
            exp.choices.insert(0, {"from": f"__{part.name}__", "chose": exp.text})
        else:
            picks = [_one_seq(o, ctx, rng) for o in rng.sample(part.options, rng.randint(part.low, part.high))]
            text = part.sep.join(p.text for p in picks)
            exp = Expansion(text, [{"from": part.source, "chose": text}, *[c for p in picks for c in p.choices]])
        out = Expansion(out.text + exp.text, out.choices + exp.choices)
    return out


def _checked(exp: Expansion, flag: str, max_chars: int) -> Expansion:
    exp.text = " ".join(exp.text.split())
    if len(exp.text) > max_chars:
        raise WildcardProblem(f"{flag}: an expansion is longer than {max_chars} characters; refused")
    return exp


def expand(text: str, *, wildcards: str | Path | None = None, mode: str = "combinatorial", count: int | None = None,
           seed: int = 0, max_variants: int = MAX_VARIANTS, max_chars: int = MAX_CHARS,
           flag: str = "--prompt") -> list[Expansion]:
    """Every expansion of TEXT (combinatorial), or COUNT different ones drawn with SEED (random).

    Refused in one line, before anything is written: more than MAX_VARIANTS expansions, one longer
    than MAX_CHARS, a __wildcard__ outside the folder or including itself, a syntax error.
    """
    ctx = _Context(_Files(wildcards, flag), flag)
    seq = parse(text, flag)
    if mode == "combinatorial":
        out, seen = [], set()
        for exp in _all_seq(seq, ctx):
            exp = _checked(exp, flag, max_chars)
            if exp.text in seen:
                continue
            seen.add(exp.text)
            out.append(exp)
            if len(out) > max_variants:
                raise WildcardProblem(f"{flag}: {text!r} expands to more than {max_variants} variants; refused "
                                      "(use random mode with a count, or fewer options)")
        return out
    if mode != "random":
        raise WildcardProblem(f"--mode must be combinatorial or random, not {mode!r}")
    count = count or 1
    if not 1 <= count <= max_variants:
        raise WildcardProblem(f"--count must be 1 to {max_variants}; got {count}")
    rng = random.Random(seed)
    out, seen = [], set()
    for _attempt in range(count * 20):
        exp = _checked(_one_seq(seq, ctx, rng), flag, max_chars)
        if exp.text not in seen:
            seen.add(exp.text)
            out.append(exp)
            if len(out) == count:
                break
    return out


def has_wildcards(text: str) -> bool:
    """True when TEXT uses {…|…} or __name__."""
    return any(not isinstance(p, str) for p in parse(text))
