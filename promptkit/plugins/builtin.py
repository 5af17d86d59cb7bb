"""promptkit's own backends, registered through the same hooks as a plugin's."""

from __future__ import annotations

from ..families import TABLE
from .hookspecs import BackendSpec, hookimpl

DEFAULT_SCHEME = "diffusers"


@hookimpl
def promptkit_backends() -> list[BackendSpec]:
    return [BackendSpec(DEFAULT_SCHEME, "promptkit.engine.stable_diffusion:Engine",
                        "diffusers: Stable Diffusion 1.x, 2.x and SDXL, and the flow-matching families (SD 3.5, FLUX.1, "
                        "FLUX.2 klein, Z-Image, Qwen-Image, Chroma; promptkit.engine.flow); a folder, a .safetensors "
                        "file or a hub id (the default: a model reference with no scheme). `track` adopts a pipeline "
                        "of any of them",
                        families=tuple(family.key for family in TABLE))]
