"""LoRA files: `--lora PATH[:SCALE]` and `<lora:NAME:SCALE>` tags resolved, checked and described (no torch)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from ..errors import BadParameter, PromptkitError
from ..hashing import file_sha256
from .models import PICKLE_SUFFIXES


class LoraProblem(PromptkitError):
    """A LoRA file that is missing, refused or made for another model."""


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file: tensor names, dtypes and shapes, without loading it."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100 << 20:
                raise ValueError("header too large")
            return json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise LoraProblem(f"{str(path)!r} is not a readable .safetensors file: {exc}") from None


def parse_lora_spec(spec: str) -> tuple[str, float]:
    """`PATH[:SCALE]` -> (path, scale)."""
    path, scale = spec, 1.0
    match = re.fullmatch(r"(.+?):([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)", spec)
    if match:
        path, scale = match.group(1), float(match.group(2))
    return path, scale


def lora_tag_record_name(name: str) -> str:
    """The `name` of the LoRA record a `<lora:NAME>` tag resolves to (check_lora's file stem):
    find_lora reads NAME.safetensors, or NAME itself when it already ends so. Not Path(NAME).stem,
    which would cut `v1.5-style` to `v1`."""
    return Path(name).name.removesuffix(".safetensors")


def find_lora(name: str, lora_dir: str | None) -> Path:
    """Resolve a `<lora:NAME>` tag in the LoRA folder."""
    if not lora_dir:
        raise LoraProblem(f"<lora:{name}> in the prompt but no LoRA folder: pass --lora-dir or set PROMPTKIT_LORA_DIR")
    folder = Path(lora_dir).expanduser()
    for candidate in (folder / f"{name}.safetensors", folder / name):
        if candidate.is_file():
            return candidate
    pickles = [folder / f"{name}{suffix}" for suffix in sorted(PICKLE_SUFFIXES)]
    if any(p.is_file() for p in pickles):
        return next(p for p in pickles if p.is_file())  # refused by check_lora with the reason
    raise LoraProblem(f"<lora:{name}> not found: no {name}.safetensors in {str(folder)!r}")


def check_lora(path: str | Path, scale: float) -> dict[str, Any]:
    """A LoRA file's record (name, path, sha256, scale, cross-attention width), or a one-line refusal."""
    file = Path(path).expanduser()
    if file.suffix.lower() in PICKLE_SUFFIXES:
        raise LoraProblem(f"refusing pickle LoRA {str(path)!r}: loading one can run arbitrary code; "
                          "use a .safetensors LoRA")
    if not file.is_file():
        raise LoraProblem(f"`lora` {str(path)!r} does not exist")
    if file.suffix.lower() != ".safetensors":
        raise LoraProblem(f"`lora` {str(path)!r} is not a .safetensors file")
    if not -10 <= scale <= 10:
        raise BadParameter(f"`lora` scale must be between -10 and 10 but is {scale} for {str(path)!r}")
    header = safetensors_header(file)
    return {"name": file.stem, "path": str(file.resolve()), "sha256": file_sha256(file), "scale": float(scale),
            "context_dim": lora_context_dim(header), "text_encoder_2": any(_is_te2(k) for k in header)}


def _is_te2(key: str) -> bool:
    return key.startswith(("text_encoder_2.", "lora_te2_"))


def lora_context_dim(header: dict[str, Any]) -> int | None:
    """The text-feature width the LoRA's cross-attention expects (768 SD 1.x, 1024 SD 2.x, 2048 SDXL)."""
    for key, info in header.items():
        if key == "__metadata__" or "attn2" not in key or "to_k" not in key:
            continue
        if any(part in key for part in ("lora_A.", "lora_down.", "lora.down.")):
            shape = info.get("shape") or []
            if len(shape) >= 2:
                return int(shape[1])
    return None


def prompt_loras(positive: str, lora_dir: str | None) -> list[dict[str, Any]]:
    """The records of the `<lora:NAME:SCALE>` tags in POSITIVE, each resolved in LORA_DIR and checked."""
    from ..weighting import lora_tags

    return [check_lora(find_lora(name, lora_dir), scale) for name, scale in lora_tags(positive)]


def merge_loras(first: list[dict[str, Any]], then: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FIRST then THEN, a file (by sha256) once: the first mention wins."""
    seen: set[str] = set()
    return [r for r in [*first, *then] if not (r["sha256"] in seen or seen.add(r["sha256"]))]
