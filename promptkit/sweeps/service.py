"""The one entry the command line calls: `ab run` on Ray or under accelerate (the CLI stays thin)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import BadParameter


def wanted(ray_address: str | None, use_accelerate: bool, workers: int | None) -> str | None:
    """"ray", "accelerate" or None (a local run), from `ab run`'s flags and the launcher's environment."""
    from .accelerate_runner import launched

    if ray_address is not None and use_accelerate:
        raise BadParameter("--ray and --accelerate cannot be combined: Ray spans machines, accelerate one machine")
    if workers is not None and ray_address is None:
        raise BadParameter("--workers needs --ray (under accelerate, `accelerate launch --num_processes N` sets it)")
    if workers is not None and workers < 1:
        raise BadParameter(f"--workers must be at least 1 but is {workers}")
    if ray_address is not None:
        return "ray"
    return "accelerate" if use_accelerate or launched() else None


def main_process() -> bool:
    """Whether this process prints: the only one, or rank 0 of a launched group."""
    return os.environ.get("RANK", "0") in ("", "0")


def run_sweep(library, name: str, how: str, *, ray_address: str | None = None, workers: int | None = None,
              model: str | None = None, lora_dir: str | None = None, batch_size: int | None = None,
              engine_options: dict[str, Any] | None = None, profile: bool = False,
              progress=None) -> tuple[dict[str, Any], bool]:
    """Run experiment NAME's missing cells HOW ("ray" or "accelerate"); (outcome, whether to print it)."""
    if how == "ray":
        from .ray_runner import run_on_ray

        return run_on_ray(library, name, address=None if ray_address == "local" else ray_address, workers=workers,
                          model=model, lora_dir=lora_dir, batch_size=batch_size, engine_options=engine_options,
                          profile=profile, progress=progress), True
    from .accelerate_runner import run_with_accelerate

    return run_with_accelerate(library, name, model=model, lora_dir=lora_dir, batch_size=batch_size,
                               engine_options=engine_options, profile=profile, progress=progress)
