"""Prompt lint: token counts per text encoder, words past each encoder's window, duplicates, contradictions,
and what a model family does with weights and the negative prompt.

Findings have a level: an error, a warning (the prompt may not do what was meant) or a note
(how the prompt will be encoded). Token counts use `tokenizers` directly (`cliptoken`), never
transformers, so `build`, the studio's live lint and `search` start quickly.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .cliptoken import BUNDLED_BPE, bundled_tokenizer, bundled_vocab_and_merges, encode, folder_tokenizer

__all__ = ["BUNDLED_BPE", "CLIP_WINDOW", "Finding", "LintReport", "TokenReport", "contradictions",
           "lint_prompt", "lint_tokenizer", "load_tokenizer", "token_report"]
UNET_KEYS = ("sd1", "sd2", "sdxl")  # CLIP-only families: A1111's long and weighted modes apply

CLIP_WINDOW = 77  # tokens, including the start and end markers
BUNDLED_NAME = "bundled CLIP ViT-L/14 BPE vocabulary (SD 1.x/2.x/SDXL)"
LEVELS = ("error", "warning", "note")  # a finding's level, most serious first


@dataclass
class Finding:
    level: str  # one of LEVELS
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message}


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
    findings: list[Finding] = field(default_factory=list)
    family: str | None = None  # the family key followed (None: SD 1.x rules, no family known)
    encoders: dict[str, list[Any]] = field(default_factory=dict)  # "positive"/"negative" -> EncoderWindow list

    def messages(self, level: str) -> list[str]:
        return [f.message for f in self.findings if f.level == level]

    @property
    def errors(self) -> list[str]:
        return self.messages("error")

    @property
    def warnings(self) -> list[str]:
        return self.messages("warning")

    @property
    def notes(self) -> list[str]:
        return self.messages("note")

    def to_dict(self) -> dict[str, Any]:
        def tok(r: TokenReport | None) -> dict[str, Any] | None:
            return None if r is None else {"count": r.count, "limit": r.limit, "overflow": r.overflow_text}

        data = {
            "tokenizer": self.tokenizer,
            "positive": tok(self.positive),
            "negative": tok(self.negative),
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.family is not None:
            data["family"] = self.family
            data["encoders"] = {side: [w.to_dict() for w in windows] for side, windows in self.encoders.items()}
        return data


def _bundled_tokenizer_files() -> Path:
    """Convert the bundled CLIP BPE file to vocab.json + merges.txt once, in a cache folder."""
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promptkit" / "clip-tokenizer"
    vocab_path, merges_path = cache_root / "vocab.json", cache_root / "merges.txt"
    if vocab_path.is_file() and merges_path.is_file():
        return cache_root
    vocab, merges = bundled_vocab_and_merges()
    cache_root.mkdir(parents=True, exist_ok=True)
    # Write to temporary names, then rename, so a concurrent reader never sees half a file.
    for path, text in (
        (vocab_path, json.dumps(vocab)),
        (merges_path, "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"),
    ):
        fd, tmp = tempfile.mkstemp(dir=cache_root)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return cache_root


@lru_cache(maxsize=8)
def load_tokenizer(model: str | None = None):
    """transformers' CLIP tokenizer, for pipelines (the tiny models): the model's own when MODEL is a
    local diffusers folder, else the bundled vocabulary. Lint does not use it (see `lint_tokenizer`).

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


def lint_tokenizer(model: str | None = None):
    """The `tokenizers` tokenizer lint counts with: MODEL's own `tokenizer/` folder when it is a
    local diffusers folder, else the bundled CLIP vocabulary. Returns (tokenizer, description)."""
    if model:
        folder = Path(model).expanduser() / "tokenizer"
        if folder.is_dir():
            return folder_tokenizer(str(folder)), f"tokenizer of {model}"
    name = BUNDLED_NAME if not model else f"{BUNDLED_NAME}; {model} has no local tokenizer folder"
    return bundled_tokenizer(), name


def token_report(tokenizer, text: str) -> TokenReport:
    """Count TEXT's tokens and find the text that falls past the 77-token window."""
    limit = CLIP_WINDOW - 2
    ids, offsets = encode(tokenizer, text)
    overflow = ""
    if len(ids) > limit:
        start = offsets[limit][0]
        # Back up to the start of the word the first dropped token belongs to.
        while start > 0 and not text[start - 1].isspace() and text[start - 1] != ",":
            start -= 1
        overflow = text[start:].strip()
    return TokenReport(count=len(ids), limit=limit, overflow_text=overflow)


def _terms(text: str) -> dict[str, str]:
    """TEXT's comma-separated terms as the encoder reads them (weights, BREAK and LoRA tags
    removed), keyed by their lower-case, whitespace-collapsed form."""
    from .weighting import encoder_text

    found: dict[str, str] = {}
    for raw in encoder_text(text).replace("\n", ",").split(","):
        term = " ".join(raw.split())
        if term:
            found.setdefault(term.lower(), term)
    return found


def contradictions(positive: str, negative: str) -> list[str]:
    """The terms that stand whole in both prompts ("blurry" in both), in the positive's order.

    A shared word is not a contradiction: "best quality" against "low quality" asks for quality
    and avoids its lack; only the same term on both sides pulls the image two ways.
    """
    negative_terms = _terms(negative)
    return [term for key, term in _terms(positive).items() if key in negative_terms]


def _token_findings(tokenizer, positive: str, negative: str):
    from .weighting import encoder_text

    # Count what the encoder reads: weight syntax, BREAK and LoRA tags are not tokens.
    reports = token_report(tokenizer, encoder_text(positive)), token_report(tokenizer, encoder_text(negative))
    findings = []
    for label, report in zip(("positive", "negative"), reports):
        if report.overflow_text:
            chunks = -(-report.count // report.limit)
            findings.append(Finding("warning",
                f"{label} prompt has {report.count} tokens, past the {report.limit}-token window: long mode, "
                f"encoded in {chunks} 77-token chunks as A1111 does (a plain diffusers pipeline would cut "
                f"{report.overflow_text!r})"))
    return reports, findings


def lint_prompt(positive: str, negative: str, model: str | None = None, notes: list[str] | None = None, *,
                family: str | None = None, guidance: float | None = None, true_cfg: float | None = None,
                max_sequence_length: int | None = None) -> LintReport:
    """Token counts, overflow, terms in both prompts, the encoding mode, and NOTES (the builder's:
    duplicate terms dropped), each finding once and with its level.

    :param family: the family key (`--family`) when MODEL does not say it; SD 1.x rules when neither does.
    :param guidance: the guidance value (`--cfg`), for whether the negative prompt is read; None: the default.
    :param true_cfg: `true_cfg_scale` (`--true-cfg`), for FLUX.1 and Qwen-Image.
    :param max_sequence_length: the T5/LLM window asked for, else the family's.
    """
    from .family_rules import family_for

    fam = family_for(model, family)
    if fam is not None:  # a variant named by the model (FLUX.1 schnell, Z-Image Turbo) has its own defaults
        from .family_rules import variant_for

        defaults = variant_for(fam, model)[1]
        guidance = guidance if guidance is not None else defaults.get("guidance")
        max_sequence_length = max_sequence_length or defaults.get("max_tokens")
    if fam is not None and fam.key not in UNET_KEYS:
        from .lint_families import lint_family_prompt

        report = lint_family_prompt(fam, positive, negative, model, guidance, true_cfg, max_sequence_length)
        report.findings[:0] = [Finding("note", message) for message in dict.fromkeys(notes or [])]
        report.findings += [Finding("warning", f"{term!r} is in both the positive and the negative prompt")
                            for term in contradictions(positive, negative)]
        return report
    report = _lint_clip_prompt(positive, negative, model, notes)
    if fam is not None:
        report.family = fam.key
        _negative_finding(report, fam, negative, guidance, true_cfg)
    return report


def _negative_finding(report: LintReport, fam, negative: str, guidance, true_cfg) -> None:
    from .family_rules import negative_ignored

    reason = negative_ignored(fam, guidance, true_cfg) if negative.strip() else None
    if reason:
        report.findings.append(Finding("warning", f"the negative prompt is ignored: {reason}"))


def _lint_clip_prompt(positive: str, negative: str, model: str | None, notes: list[str] | None) -> LintReport:
    """SD 1.x, 2.x and SDXL: one 77-token CLIP window, A1111's long and weighted modes."""
    from .weighting import is_weighted

    findings = [Finding("note", message) for message in dict.fromkeys(notes or [])]
    pos_report = neg_report = None
    try:
        tokenizer, tokenizer_name = lint_tokenizer(model)
    except Exception as exc:  # a broken or missing tokenizer must not stop authoring
        tokenizer, tokenizer_name = None, None
        findings.append(Finding("warning", f"no tokenizer available ({exc}); token counts skipped"))
    if tokenizer is not None:
        (pos_report, neg_report), found = _token_findings(tokenizer, positive, negative)
        findings += found
    for term in contradictions(positive, negative):
        findings.append(Finding("warning", f"{term!r} is in both the positive and the negative prompt"))
    for label, text in (("positive", positive), ("negative", negative)):
        if is_weighted(text):
            findings.append(Finding("note", f"{label} prompt uses A1111 weights or BREAK: weighted mode, "
                                            "encoded through compel"))
    return LintReport(tokenizer_name, pos_report, neg_report, findings)
