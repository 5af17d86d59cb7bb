"""Generation parameters, seed lists and sampler names, checked before any work (no torch here)."""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import BadParameter

# A1111 names -> (diffusers scheduler class, extra config). The engine builds them.
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDPM": ("DDPMScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
}
DEFAULT_SAMPLER = "DPM++ 2M Karras"
MAX_SEED = 2**32 - 1


def canonical_sampler(name: str) -> str:
    """Match a sampler name leniently: case, spaces, `_`/`-`, `++`/`pp` and an old `k_` prefix aside
    (`euler_a`, `Euler A` -> `Euler a`; `dpm++2m`, `dpmpp_2m_karras` -> `DPM++ 2M`, `DPM++ 2M Karras`);
    with no match, say the closest names."""
    import difflib

    def key(text: str) -> str:
        text = re.sub(r"^k[\s_\-]+", "", text.strip().lower())
        return re.sub(r"[\s_\-]+", "", text.replace("++", "pp").replace("+", "p"))

    keys = {key(known): known for known in SAMPLERS}
    if key(name) in keys:
        return keys[key(name)]
    close = [keys[k] for k in difflib.get_close_matches(key(name), keys, n=3, cutoff=0.5)]
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise BadParameter(f"unknown sampler {name!r}; {hint}choose one of: {', '.join(SAMPLERS)}")


def parse_seeds(spec: str) -> list[int]:
    """Seeds from `1,2,3`, a range `1-8`, a mix `1-4,10`, or `random:N` (drawn once, then recorded)."""
    spec = spec.strip()
    if not spec:
        raise BadParameter("--seeds is empty; give a list (1,2,3), a range (1-8) or random:N")
    if spec.startswith("random:"):
        count = _int(spec[7:], spec)
        if count <= 0:
            raise BadParameter(f"--seeds {spec!r}: the count must be at least 1")
        rng = random.SystemRandom()
        return [rng.randint(0, MAX_SEED) for _ in range(count)]
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if match:
            start, end = int(match.group(1)), int(match.group(2))
            if end < start:
                raise BadParameter(f"--seeds range {part!r} runs backwards; write {end}-{start}")
            if end - start >= 100_000:
                raise BadParameter(f"--seeds range {part!r} is longer than 100000 seeds")
            seeds.extend(range(start, end + 1))
        else:
            seeds.append(_int(part, spec))
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise BadParameter(f"seed {seed} is outside 0..{MAX_SEED}")
    return seeds


def _int(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise BadParameter(f"--seeds {spec!r}: {text.strip()!r} is not a whole number") from None


@dataclass
class GenerationParams:
    """Everything besides the prompt and the seed that decides an image."""

    sampler: str = DEFAULT_SAMPLER
    steps: int = 25
    cfg: float = 7.0
    width: int | None = None  # None: the model's native size
    height: int | None = None
    noise_device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sampler = canonical_sampler(self.sampler)
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise BadParameter(f"`steps` must be a whole number above 0 but is {self.steps}")
        if self.steps > 1000:
            raise BadParameter(f"`steps` must be at most 1000 but is {self.steps}")
        if self.cfg < 0:
            raise BadParameter(f"`cfg` must be 0 or more but is {self.cfg}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (value <= 0 or value % 8 != 0):
                raise BadParameter(f"`{name}` has to be a positive multiple of 8 but is {value}")
        if self.noise_device not in ("cpu", "gpu"):
            raise BadParameter(f"`noise_device` must be cpu or gpu but is {self.noise_device!r}")
        check_extra(self.extra)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_extra(extra: dict[str, Any]) -> None:
    """Range checks for the settings beyond text-to-image: records.GenerationInputs.check, the one place."""
    from .records import check_extra as check_inputs

    check_inputs(extra)


def check_batch_size(batch_size: int | None) -> int | None:
    """None means "auto": the engine picks from free memory."""
    if batch_size is not None and batch_size <= 0:
        raise BadParameter(f"`batch_size` must be at least 1 but is {batch_size}")
    return batch_size


def parse_batch_size(text: str | int | None) -> int | None:
    """`auto` (or nothing) -> None; else a whole number of at least 1."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        raise BadParameter(f"`batch_size` must be a whole number or 'auto' but is {text!r}") from None
    return check_batch_size(value)


# The model helpers live in inputs/models.py; re-exported for the callers that import them from here.
from .inputs.models import PICKLE_SUFFIXES, check_model_ref, model_fingerprint, resolve_model  # noqa: E402,F401
