"""Prompt lint: CLIP token counts, words past the 77-token window, duplicates, contradictions."""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

CLIP_WINDOW = 77  # tokens, including the start and end markers
BUNDLED_BPE = Path(__file__).resolve().parent / "data" / "bpe_simple_vocab_16e6.txt.gz"
BUNDLED_NAME = "bundled CLIP ViT-L/14 BPE vocabulary (SD 1.x/2.x/SDXL)"
_WORD_RE = re.compile(r"[a-z0-9]+")
_STOPWORDS = {"a", "an", "the", "of", "in", "on", "at", "and", "with", "to", "by", "for", "from", "or", "no"}


@dataclass
class TokenReport:
    count: int  # tokens without the start/end markers
    limit: int  # tokens that fit: window minus the two markers
    overflow_text: str  # the text that falls past the window ("" if none)


@dataclass
class LintReport:
    tokenizer: str | None
    positive: TokenReport | None
    negative: TokenReport | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def tok(r: TokenReport | None) -> dict[str, Any] | None:
            return None if r is None else {"count": r.count, "limit": r.limit, "overflow": r.overflow_text}

        return {
            "tokenizer": self.tokenizer,
            "positive": tok(self.positive),
            "negative": tok(self.negative),
            "warnings": list(self.warnings),
        }


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level mapping (as in OpenAI's CLIP simple_tokenizer).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _bundled_tokenizer_files() -> Path:
    """Convert the bundled CLIP BPE file to vocab.json + merges.txt once, in a cache folder."""
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promptkit" / "clip-tokenizer"
    vocab_path, merges_path = cache_root / "vocab.json", cache_root / "merges.txt"
    if vocab_path.is_file() and merges_path.is_file():
        return cache_root
    lines = gzip.open(BUNDLED_BPE).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    cache_root.mkdir(parents=True, exist_ok=True)
    # Write to temporary names, then rename, so a concurrent reader never sees half a file.
    for path, text in (
        (vocab_path, json.dumps({tok: i for i, tok in enumerate(vocab)})),
        (merges_path, "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"),
    ):
        fd, tmp = tempfile.mkstemp(dir=cache_root)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return cache_root


@lru_cache(maxsize=8)
def load_tokenizer(model: str | None = None):
    """The CLIP tokenizer: the model's own when MODEL is a local diffusers folder, else the bundled one.

    Returns (tokenizer, description). Hub ids are not downloaded here: lint must work offline.
    """
    try:  # offsets (for the words past the window) need the fast tokenizer
        from transformers import CLIPTokenizerFast as CLIPTokenizer
    except ImportError:  # pragma: no cover
        from transformers import CLIPTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # we report the 77-token overflow ourselves

    if model:
        folder = Path(model).expanduser() / "tokenizer"
        if folder.is_dir():
            return CLIPTokenizer.from_pretrained(str(folder), model_max_length=CLIP_WINDOW), f"tokenizer of {model}"
    files = _bundled_tokenizer_files()
    # from_pretrained reads vocab.json + merges.txt the same way in transformers 4 and 5.
    tokenizer = CLIPTokenizer.from_pretrained(str(files), model_max_length=CLIP_WINDOW)
    name = BUNDLED_NAME if not model else f"{BUNDLED_NAME}; {model} has no local tokenizer folder"
    return tokenizer, name


def token_report(tokenizer, text: str) -> TokenReport:
    """Count TEXT's tokens and find the text that falls past the 77-token window."""
    limit = CLIP_WINDOW - 2
    encoded = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    overflow = ""
    if len(ids) > limit:
        start = offsets[limit][0]
        # Back up to the start of the word the first dropped token belongs to.
        while start > 0 and not text[start - 1].isspace() and text[start - 1] != ",":
            start -= 1
        overflow = text[start:].strip()
    return TokenReport(count=len(ids), limit=limit, overflow_text=overflow)


def lint_prompt(positive: str, negative: str, model: str | None = None, notes: list[str] | None = None) -> LintReport:
    """Token counts, overflow, duplicate terms (from NOTES) and words in both prompts."""
    warnings = list(notes or [])
    try:
        tokenizer, tokenizer_name = load_tokenizer(model)
    except Exception as exc:  # a broken or missing tokenizer must not stop authoring
        tokenizer, tokenizer_name = None, None
        warnings.append(f"no tokenizer available ({exc}); token counts skipped")
    from .weighting import encoder_text, is_weighted

    pos_report = neg_report = None
    if tokenizer is not None:
        # Count what the encoder reads: weight syntax, BREAK and LoRA tags are not tokens.
        pos_report = token_report(tokenizer, encoder_text(positive))
        neg_report = token_report(tokenizer, encoder_text(negative))
        for label, report in (("positive", pos_report), ("negative", neg_report)):
            if report.overflow_text:
                chunks = -(-report.count // report.limit)
                warnings.append(
                    f"{label} prompt has {report.count} tokens, past the {report.limit}-token window: long mode, "
                    f"encoded in {chunks} 77-token chunks as A1111 does (a plain diffusers pipeline would cut "
                    f"{report.overflow_text!r})"
                )
    for label, text in (("positive", positive), ("negative", negative)):
        if is_weighted(text):
            warnings.append(f"{label} prompt uses A1111 weights or BREAK: weighted mode, encoded through compel")
    pos_words = {w for w in _WORD_RE.findall(positive.lower()) if w not in _STOPWORDS}
    neg_words = {w for w in _WORD_RE.findall(negative.lower()) if w not in _STOPWORDS}
    for word in sorted(pos_words & neg_words):
        warnings.append(f"{word!r} is in both the positive and the negative prompt")
    return LintReport(tokenizer_name, pos_report, neg_report, warnings)
