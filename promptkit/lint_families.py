"""Lint for the transformer families (SD 3.5, FLUX.1, FLUX.2 klein, Z-Image, Qwen-Image, Chroma): tokens per
encoder and the first word past each window, A1111 weights the encoder cannot use, an ignored negative prompt.

`lint.lint_prompt` calls this for a family that is not SD 1.x/2.x/SDXL; those keep A1111's long and
weighted modes there. No torch here.
"""

from __future__ import annotations

from .families import Family
from .lint import Finding, LintReport, TokenReport, _negative_finding
from .tokenwindows import EncoderWindow, family_windows
from .weighting import strip_lora_tags, strip_weights


def _token_report(window: EncoderWindow) -> TokenReport:
    return TokenReport(count=window.count, limit=window.window, overflow_text=window.overflow_text)


def _clip_finding(side: str, fam: Family, clips: list[EncoderWindow], reader: EncoderWindow) -> Finding:
    """CLIP's 77 tokens are past: the words after it reach only the long encoder (FLUX.1: CLIP is pooled only)."""
    first = clips[0]
    names = " and ".join(w.label for w in clips)
    pooled = any("pooled" in w.note for w in clips)
    why = (f"{fam.label} takes only {names}'s pooled vector, a summary of the first {first.max_tokens} tokens"
           if pooled else f"{names} stop at {first.max_tokens} tokens")
    return Finding("note", f"{side} prompt has {first.count} CLIP tokens, past {names}'s {first.window}-token "
                           f"window: from {first.first_cut!r} on only {reader.label} reads it ({why})")


def _cut_finding(side: str, fam: Family, window: EncoderWindow) -> Finding:
    about = "" if window.exact else "about "
    how = "" if window.exact else " (an approximate count: give --model a local folder for the exact one)"
    return Finding("warning", f"{side} prompt has {about}{window.count} {window.label} tokens, past {fam.label}'s "
                              f"{window.window}-token {window.label} window (max_sequence_length "
                              f"{window.max_tokens}): the words from {window.first_cut!r} on are cut and never reach "
                              f"the model: {window.overflow_text!r}{how}")


def _window_findings(side: str, fam: Family, windows: list[EncoderWindow]) -> list[Finding]:
    long = [w for w in windows if not w.encoder.startswith(("clip", "openclip"))]
    clips = [w for w in windows if w not in long]
    found = []
    if clips and long and clips[0].overflow_text:
        found.append(_clip_finding(side, fam, clips, long[0]))
    found += [_cut_finding(side, fam, w) for w in long if w.overflow_text]
    return found


def _weights_finding(side: str, fam: Family, text: str) -> Finding | None:
    plain = strip_weights(text)
    if plain == strip_lora_tags(text):
        return None
    readers = " and ".join(dict.fromkeys(w for w in _reader_labels(fam)))
    return Finding("warning", f"{side} prompt uses A1111 weight syntax ((word:1.2), [word], BREAK), which "
                              f"{fam.label}'s {readers} encoder cannot use: the markup is removed before encoding, "
                              f"so the weights do nothing (sent as {plain[:80]!r})")


def _reader_labels(fam: Family) -> list[str]:
    from .tokenwindows import ENCODER_LABELS

    return [ENCODER_LABELS.get(e.name, e.name) for e in fam.encoders if e.tokenizer != "clip-bpe"]


def lint_family_prompt(fam: Family, positive: str, negative: str, model: str | None = None,
                       guidance: float | None = None, true_cfg: float | None = None,
                       max_sequence_length: int | None = None) -> LintReport:
    """FAMILY's lint of a prompt pair: the text is counted as the engine sends it (weights stripped)."""
    from .family_rules import negative_ignored

    findings: list[Finding] = []
    windows: dict[str, list[EncoderWindow]] = {}
    negative_read = not negative_ignored(fam, guidance, true_cfg)
    for side, text in (("positive", positive), ("negative", negative)):
        weights = _weights_finding(side, fam, text)
        if weights is not None and (side == "positive" or negative_read):
            findings.append(weights)
        windows[side] = family_windows(fam, strip_weights(text), model, max_sequence_length)
        if side == "positive" or negative_read:
            findings += _window_findings(side, fam, windows[side])
    longest = max(range(len(fam.encoders)), key=lambda i: fam.encoders[i].max_tokens)
    report = LintReport(windows["positive"][longest].tokenizer, _token_report(windows["positive"][longest]),
                        _token_report(windows["negative"][longest]), findings, family=fam.key, encoders=windows)
    _negative_finding(report, fam, negative, guidance, true_cfg)
    return report
