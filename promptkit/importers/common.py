"""Helpers every reader shares: JSON read safely, numbers read leniently, sampler names mapped."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from . import UnreadableImage

# ComfyUI / InvokeAI / NovelAI sampler names (and a scheduler) -> promptkit's (A1111's) names.
_SAMPLERS = {
    "euler": "Euler", "euler_a": "Euler a", "euler_ancestral": "Euler a", "k_euler": "Euler",
    "k_euler_ancestral": "Euler a", "k_euler_a": "Euler a", "ddim": "DDIM", "ddpm": "DDPM", "lms": "LMS",
    "k_lms": "LMS", "heun": "Heun", "k_heun": "Heun", "uni_pc": "UniPC", "unipc": "UniPC",
    "dpmpp_2m": "DPM++ 2M", "k_dpmpp_2m": "DPM++ 2M", "dpmpp_2m_k": "DPM++ 2M Karras",
    "dpmpp_sde_k": "DPM++ SDE Karras",
}
_KARRAS = {"DPM++ 2M": "DPM++ 2M Karras"}
_SDE = {"dpmpp_sde", "k_dpmpp_sde", "dpmpp_sde_gpu"}


def load_json(text: str, what: str) -> Any:
    """TEXT as JSON; a one-line UnreadableImage when it is not, or is nested too deep to read."""
    try:
        return json.loads(text)
    except RecursionError:
        raise UnreadableImage(f"its {what} JSON is nested too deep to read") from None
    except ValueError as exc:
        raise UnreadableImage(f"its {what} is not valid JSON ({exc})") from None


def maybe_json(text: str) -> Any:
    """TEXT as JSON when it looks like a JSON object, else None (deep nesting is still refused)."""
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return None
    try:
        return json.loads(stripped)
    except RecursionError:
        raise UnreadableImage("its metadata JSON is nested too deep to read") from None
    except ValueError:
        return None


def number(value: Any, kind=float) -> Any:
    """VALUE as KIND (int or float) when it reads as one, else None."""
    if value is None or isinstance(value, bool):
        return None
    if kind is int and isinstance(value, int):
        return value  # exact, however large (ComfyUI seeds reach 2**64 - 1)
    text = str(value).strip()
    if kind is int and re.fullmatch(r"[+-]?\d{1,40}", text):
        return int(text)
    try:
        as_float = float(text)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(as_float):
        return None
    if kind is int:
        return int(as_float) if as_float.is_integer() else None
    return as_float


def mapped_sampler(sampler: Any, scheduler: Any = None) -> str | None:
    """The promptkit sampler for a tool's SAMPLER (and SCHEDULER), or None when it has none."""
    from ..errors import PromptkitError
    from ..params import canonical_sampler

    if not sampler:
        return None
    name, schedule = str(sampler).strip(), str(scheduler or "").strip().lower()
    key = name.lower()
    if key in _SDE and schedule == "karras":
        return "DPM++ SDE Karras"
    found = _SAMPLERS.get(key)
    if found is None:
        try:
            found = canonical_sampler(name)
        except PromptkitError:
            return None
    if schedule == "karras":
        found = _KARRAS.get(found, found if found.endswith("Karras") else None)
    elif schedule not in ("", "normal", "automatic", "native", "default", "simple") and not found.endswith("Karras"):
        return None  # exponential, sgm_uniform, ...: a schedule promptkit does not have
    return found


def split_size(text: Any) -> tuple[int, int] | None:
    match = re.fullmatch(r"\s*\(?\s*'?(\d+)'?\s*[x,*×]\s*'?(\d+)'?\s*\)?\s*", str(text or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))
