"""The generation engine: everything that touches torch and diffusers lives in this package.

A backend (`backend.Backend`) takes a batch (prompt, negative, seeds, parameters) and returns
PIL images and the seconds spent; `stable_diffusion.Engine` is the one for SD 1.x, 2.x and
SDXL. Loaded backends are kept by a `cache.PipelineCache`, owned by whoever runs jobs. The
engine imports nothing from the library.
"""

from __future__ import annotations

import os

# transformers warns at import that torchvision is absent and falls back to PIL: expected here.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json  # noqa: E402

from ..params import GenerationParams  # noqa: E402
from .backend import Backend, BatchResult, EngineOptions  # noqa: E402
from .cache import PipelineCache, default_cache  # noqa: E402
from .loading import _from_source, _load, pick_device, pick_dtype, single_file_pipeline_class  # noqa: E402
from .lora import _peft_load_adapter, _text_encoder_loras_through_peft  # noqa: E402
from .stable_diffusion import DEFAULT_STRENGTH, MODES, Engine, generation_mode  # noqa: E402


def params_json(params: GenerationParams) -> str:
    return json.dumps(params.to_dict(), sort_keys=True)


__all__ = [
    "Backend", "BatchResult", "DEFAULT_STRENGTH", "Engine", "EngineOptions", "MODES", "PipelineCache",
    "_from_source", "_load", "_peft_load_adapter", "_text_encoder_loras_through_peft", "default_cache",
    "generation_mode", "params_json", "pick_device", "pick_dtype", "single_file_pipeline_class",
]
