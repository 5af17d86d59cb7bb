"""promptkit's own backends, registered through the same hooks as a plugin's."""

from __future__ import annotations

from ..families import UNET_FAMILIES
from .hookspecs import BackendSpec, hookimpl

DEFAULT_SCHEME = "diffusers"


@hookimpl
def promptkit_backends() -> list[BackendSpec]:
    return [BackendSpec(DEFAULT_SCHEME, "promptkit.engine.stable_diffusion:Engine",
                        "Stable Diffusion 1.x, 2.x and SDXL on diffusers: a folder, a .safetensors file or a hub id "
                        "(the default: a model reference with no scheme)", families=tuple(UNET_FAMILIES))]
