"""CLIP's BPE tokenizer built with the `tokenizers` package alone (no transformers, no torch).

Lint counts tokens on every `build`, on each keystroke of the studio and in `search`; importing
transformers to load the same vocabulary costs about 1.6 s. This builds, in memory, the tokenizer
transformers' `CLIPTokenizerFast` converts to (normalise NFC, collapse whitespace, lower-case;
split with CLIP's pattern; byte-level BPE with `</w>` word ends), from the bundled
`bpe_simple_vocab_16e6.txt.gz` or a model's own `tokenizer/vocab.json` + `merges.txt`.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

BUNDLED_BPE = Path(__file__).resolve().parent / "data" / "bpe_simple_vocab_16e6.txt.gz"
START, END = "<|startoftext|>", "<|endoftext|>"
# OpenAI's CLIP simple_tokenizer reads this many merges from the BPE file.
_MERGES = 49152 - 256 - 2
_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level mapping (as in OpenAI's CLIP simple_tokenizer)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def bundled_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The bundled BPE file as (vocabulary, merges), in the order CLIP numbers them."""
    lines = gzip.open(BUNDLED_BPE).read().decode("utf-8").split("\n", _MERGES + 1)  # the rest is unused
    merges = [tuple(line.split(" ", 1)) for line in lines[1 : _MERGES + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += [START, END]
    return dict(zip(vocab, range(len(vocab)))), merges


def _folder_vocab_and_merges(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    return vocab, [(m[0], m[1]) for m in merges if len(m) == 2]


def build_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]):
    """A `tokenizers.Tokenizer` that encodes as transformers' CLIPTokenizerFast (without the markers)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                              end_of_word_suffix="</w>", fuse_unk=False, unk_token=END))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


@lru_cache(maxsize=1)
def bundled_tokenizer():
    """The bundled CLIP ViT-L/14 vocabulary (SD 1.x/2.x/SDXL) as a `tokenizers.Tokenizer`."""
    return build_tokenizer(*bundled_vocab_and_merges())


@lru_cache(maxsize=8)
def folder_tokenizer(folder: str):
    """A model's own `tokenizer/` folder (vocab.json + merges.txt) as a `tokenizers.Tokenizer`."""
    path = Path(folder)
    if (path / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.post_processor = None  # counts without the start/end markers
        return tokenizer
    return build_tokenizer(*_folder_vocab_and_merges(path))


def encode(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """TEXT's token ids and their (start, end) character offsets, without start/end markers."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return list(encoding.ids), [tuple(o) for o in encoding.offsets]
