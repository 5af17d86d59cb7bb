"""A1111 prompt syntax: attention weights, BREAK and `<lora:NAME:SCALE>` tags, converted for compel (no torch).

AUTOMATIC1111 writes `(word:1.2)`, `(word)` for x1.1, `[word]` for /1.1, nests them, and
escapes literal brackets as `\\(`. compel reads none of that (it reads `(a red:1.3)` as the
literal text "a red:1 . 3"), so promptkit parses A1111's syntax itself, with A1111's own
algorithm, and writes compel's `(text)1.2` form.
"""

from __future__ import annotations

import re
from typing import Any

# A1111 modules/prompt_parser.py: the tokens of its attention syntax.
_ATTENTION_RE = re.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:", re.X)
_BREAK_RE = re.compile(r"\s*\bBREAK\b\s*", re.S)
_LORA_TAG_RE = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.I)
BREAK = "BREAK"
ROUND, SQUARE = 1.1, 1 / 1.1
CHUNK_TOKENS = 75  # per 77-token window, less the start and end markers


def parse_attention(text: str) -> list[tuple[str, float]]:
    """A1111's `parse_prompt_attention`: (text, weight) runs; a BREAK is ("BREAK", -1)."""
    res: list[list[Any]] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for position in range(start, len(res)):
            res[position][1] *= multiplier

    for match in _ATTENTION_RE.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            round_brackets.append(len(res))
        elif token == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif token == ")" and round_brackets:
            multiply_range(round_brackets.pop(), ROUND)
        elif token == "]" and square_brackets:
            multiply_range(square_brackets.pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK_RE.split(token)):
                if i > 0:
                    res.append([BREAK, -1])
                res.append([part, 1.0])
    for position in round_brackets:
        multiply_range(position, ROUND)
    for position in square_brackets:
        multiply_range(position, SQUARE)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):  # merge runs of equal weight
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return [(str(t), float(w)) for t, w in res]


def _compel_text(text: str) -> str:
    # compel's specials: parentheses and quotes (escaped), and a + or - ending a word (a weight to
    # compel): spaced off, which CLIP tokenises the same as before.
    text = text.replace("\\", " ").replace("(", "\\(").replace(")", "\\)").replace('"', '\\"')
    return re.sub(r"(?<=\w)([+\-]+)(?=\s|,|$)", r" \1", text)


def to_compel_segments(text: str) -> list[str]:
    """The prompt in compel's syntax, one string per BREAK-separated segment."""
    segments: list[list[str]] = [[]]
    for fragment, weight in parse_attention(strip_lora_tags(text)):
        if weight == -1 and fragment == BREAK:
            segments.append([])
            continue
        if not fragment.strip():
            continue
        body = _compel_text(fragment).strip()
        segments[-1].append(body if weight == 1.0 else f"({body}){weight:.6g}")
    return [" ".join(parts) for parts in segments]


def encoder_text(text: str) -> str:
    """The words the text encoder reads: `<lora:…>` tags, A1111 weight syntax and BREAK removed
    (what lint counts tokens of: `(a fox:1.3)` is two tokens, not eight)."""
    text = strip_lora_tags(text)
    if not any(weight != 1.0 for _t, weight in parse_attention(text)) and "\\" not in text:
        return text
    return " ".join(" ".join(t for t, w in parse_attention(text) if w != -1).split())


def is_weighted(text: str) -> bool:
    """True when TEXT uses A1111 weights or BREAK (plain text encodes as diffusers does)."""
    return any(weight != 1.0 for _t, weight in parse_attention(strip_lora_tags(text)))


def strip_lora_tags(text: str) -> str:
    """TEXT without `<lora:…>` tags: they choose adapters and are never sent to the text encoder."""
    if not _LORA_TAG_RE.search(text):
        return text
    text = re.sub(r"\s+,", ",", re.sub(r"\s*" + _LORA_TAG_RE.pattern, "", text, flags=re.I))
    return re.sub(r",(\s*,)+", ",", text).strip().strip(",").strip()


def lora_tags(text: str) -> list[tuple[str, float]]:
    """The `<lora:NAME:SCALE>` tags in TEXT (scale 1 when left out)."""
    from .errors import BadParameter

    found = []
    for name, scale in _LORA_TAG_RE.findall(text):
        try:
            found.append((name.strip(), float(scale) if scale.strip() else 1.0))
        except ValueError:
            raise BadParameter(f"<lora:{name}:{scale}> has a scale that is not a number: {scale!r}") from None
    return found


def strip_weights(text: str) -> str:
    """TEXT as a T5 or LLM encoder should read it: A1111 weight markup (`(word:1.2)`, `(word)`, `[word]`,
    nested), `BREAK` and `<lora:…>` tags removed, never sent as literal brackets. Only A1111's escaped
    brackets (`\\(`) stay, as the literal characters they stand for. Plain text comes back unchanged.

    `strip_weights("(a red fox:1.3) in [deep] snow")` is `"a red fox in deep snow"`.
    """
    text = strip_lora_tags(text)
    if not re.search(r"[()\[\]\\]|\bBREAK\b", text):
        return text
    parts: list[str] = []
    for match in _ATTENTION_RE.finditer(text):
        token = match.group(0)
        if token.startswith("\\") and len(token) == 2:
            parts.append(token[1])  # an escaped bracket: the literal character
        elif token in ("(", "[", ")", "]", "\\") or match.group(1) is not None:
            parts.append(" " if token in ("(", "[") else "")
        else:
            parts.append(_BREAK_RE.sub(", ", token))
    stripped = " ".join("".join(parts).split())
    stripped = re.sub(r"\s+([,.;:!?])", r"\1", stripped)  # "(fox:1.2) , snow" -> "fox, snow"
    return re.sub(r",(\s*,)+", ",", stripped).strip().strip(",").strip()
