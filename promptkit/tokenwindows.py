"""Token counts per text encoder of a family, and the words past each encoder's window (no torch).

CLIP is counted exactly (a model folder's own vocabulary or the bundled one). T5 and the Qwen LLM encoders
are counted with the model folder's own tokenizer (`tokenizer.json` read by the `tokenizers` package, or
transformers' AutoTokenizer for a folder without one) when a local model is given; otherwise with a
documented approximation, flagged `exact: False`, since lint never downloads: about one token per word of up
to six letters, one more per further six letters, and one per punctuation mark. That is within a few percent
of T5's and Qwen's real counts on English prompts; the cut word it names may be off by a word or two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .cliptoken import bundled_tokenizer, encode, folder_tokenizer
from .families import Encoder, Family

ENCODER_LABELS = {"clip-l": "CLIP-L", "clip-g": "CLIP-G", "openclip-h": "OpenCLIP-H", "clip": "CLIP", "t5": "T5",
                  "qwen3": "Qwen3", "qwen2.5-vl": "Qwen2.5-VL"}
APPROXIMATION = "approximate: no local tokenizer; about a token per word and one per punctuation mark"
CHAT_OPENING = "<|im_start|>user\n"  # Qwen's chat template before the prompt (FLUX.2 klein, Z-Image)
_PIECE = re.compile(r"\w+|[^\w\s]")


@dataclass
class EncoderWindow:
    """One encoder's view of one prompt: tokens, the window, and what falls past it."""

    encoder: str         # the table's name: "t5", "clip-l"
    label: str           # "T5"
    max_tokens: int      # the encoder's window, the pipeline's own tokens included
    window: int          # the prompt's tokens that fit
    count: int           # the prompt's tokens
    overflow_text: str   # the text past the window ("" if none)
    first_cut: str       # the first word past the window ("" if none)
    exact: bool          # False: an approximation (no local tokenizer)
    tokenizer: str       # what counted: "tokenizer_2 of ./flux", "bundled CLIP …", APPROXIMATION
    note: str = ""       # the table's note, e.g. "pooled vector only"

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "label": self.label, "max_tokens": self.max_tokens, "limit": self.window,
                "count": self.count, "overflow": self.overflow_text, "first_cut": self.first_cut,
                "exact": self.exact, "tokenizer": self.tokenizer, "note": self.note}


def subfolder(index: int) -> str:
    """The diffusers folder holding the INDEX-th encoder's tokenizer: tokenizer, tokenizer_2, tokenizer_3."""
    return "tokenizer" if index == 0 else f"tokenizer_{index + 1}"


@lru_cache(maxsize=16)
def _auto_tokenizer(folder: str):
    """transformers' fast tokenizer for a folder without tokenizer.json; its `tokenizers` backend, or None."""
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        return None
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True, local_files_only=True)
    except Exception:  # noqa: BLE001 - an unreadable folder is counted approximately
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not backend.encode("a photo", add_special_tokens=False).ids:
        return None  # no usable vocabulary (a folder without its files): counted approximately
    backend.post_processor = None  # counts without the markers, as for CLIP
    return backend


def encoder_tokenizer(encoder: Encoder, index: int, model: str | None):
    """(a `tokenizers.Tokenizer` or None for the approximation, its description) for ENCODER of MODEL."""
    folder = Path(model).expanduser() / subfolder(index) if model else None
    if folder is not None and folder.is_dir():
        if (folder / "tokenizer.json").is_file() or encoder.tokenizer == "clip-bpe":
            try:
                return folder_tokenizer(str(folder)), f"{subfolder(index)} of {model}"
            except Exception:  # noqa: BLE001 - fall through to the other readers
                pass
        backend = _auto_tokenizer(str(folder))
        if backend is not None:
            return backend, f"{subfolder(index)} of {model}"
    if encoder.tokenizer == "clip-bpe":
        return bundled_tokenizer(), "bundled CLIP ViT-L/14 BPE vocabulary"
    return None, APPROXIMATION


def _word_start(text: str, start: int) -> int:
    """Back up from START to the start of the word it is in (a token that begins with the space before its
    word, as T5's and Qwen's do, starts at that word)."""
    while start < len(text) and text[start].isspace():
        start += 1
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in ",.;":
        start -= 1
    return start


def _first_word(text: str) -> str:
    match = re.match(r"[^\s,.;]+", text)
    return match.group(0) if match else text.split()[0] if text.split() else ""


def _approximate(text: str, window: int) -> tuple[int, int | None]:
    """(approximate token count, character offset of the first piece past WINDOW or None)."""
    count, cut = 0, None
    for match in _PIECE.finditer(text):
        piece = match.group(0)
        count += 1 + (len(piece) - 1) // 6 if piece[0].isalnum() or piece[0] == "_" else 1
        if cut is None and count > window:
            cut = match.start()
    return count, cut


def count_window(encoder: Encoder, tokenizer, description: str, text: str, window: int | None = None,
                 max_tokens: int | None = None) -> EncoderWindow:
    """TEXT's tokens for ENCODER and what falls past WINDOW (default: the encoder's own) of MAX_TOKENS."""
    limit = window if window is not None else encoder.window
    if tokenizer is None:
        count, cut = _approximate(text, limit)
        exact = False
    else:
        ids, offsets = encode(tokenizer, text)
        count, cut, exact = len(ids), (offsets[limit][0] if len(ids) > limit else None), True
    overflow = first = ""
    if cut is not None:
        overflow = text[_word_start(text, cut):].strip()
        first = _first_word(overflow)
    return EncoderWindow(encoder.name, ENCODER_LABELS.get(encoder.name, encoder.name),
                         max_tokens or encoder.max_tokens, limit,
                         count, overflow, first, exact, description, encoder.note)


def family_windows(family: Family, text: str, model: str | None = None,
                   max_sequence_length: int | None = None) -> list[EncoderWindow]:
    """TEXT counted by each of FAMILY's encoders, in the table's order.

    :param model: a local diffusers folder whose own tokenizers count (else CLIP exactly, T5/Qwen approximately).
    :param max_sequence_length: the T5/LLM window asked for (`--max-sequence-length`), else the table's.
    """
    found = []
    for index, encoder in enumerate(family.encoders):
        tokenizer, description = encoder_tokenizer(encoder, index, model)
        longest = encoder.max_tokens
        if max_sequence_length is not None and encoder.tokenizer != "clip-bpe":
            longest = max_sequence_length
        window = max(1, longest - _reserved(encoder, tokenizer))
        found.append(count_window(encoder, tokenizer, description, text, window, longest))
    return found


def _reserved(encoder: Encoder, tokenizer) -> int:
    """The window's tokens the pipeline takes before the prompt: for a chat-templated LLM encoder, what the
    model's own tokenizer makes of the template's opening (`<|im_start|>user\n`), else the table's count."""
    reserved = encoder.max_tokens - encoder.window
    if tokenizer is None or encoder.tokenizer != "qwen-bpe" or reserved == 0:
        return reserved
    return len(tokenizer.encode(CHAT_OPENING, add_special_tokens=False).ids)
