"""The generation engine: everything that touches torch and diffusers lives here.

A backend takes a batch (prompt, negative, seeds, parameters) and returns PIL images and
the seconds spent. Pipelines load once per process and stay loaded.
"""

from __future__ import annotations

import os

# transformers warns at import that torchvision is absent and falls back to PIL: expected here.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import BadParameter, ModelProblem
from .params import SAMPLERS, GenerationParams, check_model_ref

_PIPELINES: dict[tuple, "Engine"] = {}


@dataclass
class EngineOptions:
    """Device, dtype and the memory/speed switches; all off by default unless the device needs them."""

    device: str | None = None  # cuda, mps, cpu; None picks
    dtype: str | None = None  # float16, bfloat16, float32; None picks
    allow_pickle: bool = False
    cpu_offload: bool = False
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    compile: bool = False

    def key(self) -> tuple:
        return tuple(sorted(self.__dict__.items()))


@dataclass
class BatchResult:
    images: list[Any]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def pick_device(requested: str | None) -> str:
    if requested:
        if requested not in ("cuda", "mps", "cpu") and not requested.startswith("cuda:"):
            raise BadParameter(f"`device` must be cuda, mps or cpu but is {requested!r}")
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise BadParameter("`device` cuda was asked for but torch sees no CUDA GPU")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str | None) -> torch.dtype:
    names = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float32": torch.float32, "fp32": torch.float32}
    if requested:
        if requested not in names:
            raise BadParameter(f"`dtype` must be one of float16, bfloat16, float32 but is {requested!r}")
        return names[requested]
    return torch.float16 if device.startswith("cuda") or device == "mps" else torch.float32


def model_fingerprint(model: str) -> str:
    """A short content fingerprint of a local model (configs, and each weight file's size, head and tail).

    Hashing gigabytes on every load would cost seconds; the head, tail and size of each
    safetensors file change whenever the weights do in practice. Hub ids are recorded as given.
    """
    path = Path(model).expanduser()
    if not path.exists():
        return ""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        if file.suffix not in {".json", ".safetensors", ".txt", ".model"}:
            continue
        size = file.stat().st_size
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + str(size).encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), 2)
                digest.update(handle.read())
    return digest.hexdigest()[:10]


def _load(model: str, options: EngineOptions, device: str, dtype: torch.dtype):
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    kind = check_model_ref(model, options.allow_pickle)
    try:
        with warnings.catch_warnings():
            # diffusers renames torch_dtype to dtype; older releases know only torch_dtype.
            warnings.simplefilter("ignore", FutureWarning)
            return _from_source(model, kind, dtype)
    except ModelProblem:
        raise
    except (OSError, ValueError, EnvironmentError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelProblem(f"could not load model {model!r}: {first}") from None


def _from_source(model: str, kind: str, dtype: torch.dtype):
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    if kind in ("folder", "hub"):
        return DiffusionPipeline.from_pretrained(
            model if kind == "hub" else str(Path(model).expanduser()),
            torch_dtype=dtype,
            use_safetensors=True,
            local_files_only=kind == "folder",
        )
    return StableDiffusionPipeline.from_single_file(
        str(Path(model).expanduser()), torch_dtype=dtype, use_safetensors=kind == "safetensors"
    )


class Engine:
    """A loaded diffusers pipeline and the way promptkit runs batches on it."""

    def __init__(self, model: str, options: EngineOptions | None = None) -> None:
        self.model = model
        self.options = options or EngineOptions()
        self.device = pick_device(self.options.device)
        self.dtype = pick_dtype(self.device, self.options.dtype)
        started = time.perf_counter()
        pipe = _load(model, self.options, self.device, self.dtype)
        if self.options.cpu_offload and self.device.startswith("cuda"):
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(self.device)
        if self.options.attention_slicing:
            pipe.enable_attention_slicing()
        if self.options.vae_slicing:
            pipe.vae.enable_slicing()
        if self.options.vae_tiling:
            pipe.vae.enable_tiling()
        if self.options.compile:
            pipe.unet = torch.compile(pipe.unet)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.base_scheduler_config = dict(pipe.scheduler.config)
        self.load_seconds = time.perf_counter() - started
        self.model_hash = model_fingerprint(model)
        self._sampler = None
        self._embeds: dict[tuple, tuple[Any, Any]] = {}

    @classmethod
    def get(cls, model: str, options: EngineOptions | None = None) -> "Engine":
        """The engine for MODEL, loaded once per process."""
        options = options or EngineOptions()
        key = (model, options.key())
        if key not in _PIPELINES:
            _PIPELINES[key] = cls(model, options)
        return _PIPELINES[key]

    def native_size(self) -> tuple[int, int]:
        unet = self.pipe.unet.config.sample_size
        size = int(unet) * int(getattr(self.pipe, "vae_scale_factor", 8))
        return size, size

    def describe(self) -> dict[str, Any]:
        import diffusers

        return {
            "model": self.model,
            "model_hash": self.model_hash,
            "device": self.device.split(":")[0],
            "dtype": str(self.dtype).replace("torch.", ""),
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "promptkit": __version__},
        }

    def _set_sampler(self, name: str) -> None:
        if self._sampler == name:
            return
        import diffusers

        class_name, extra = SAMPLERS[name]
        scheduler_cls = getattr(diffusers, class_name)
        self.pipe.scheduler = scheduler_cls.from_config(self.base_scheduler_config, **extra)
        self._sampler = name

    def generators(self, seeds: list[int], noise_device: str) -> list[torch.Generator]:
        # One generator per image: seed S starts from the same noise alone or in any batch.
        device = "cpu" if noise_device == "cpu" or self.device == "cpu" else self.device
        return [torch.Generator(device).manual_seed(int(seed)) for seed in seeds]

    def encode(self, positive: str, negative: str, guidance: bool) -> tuple[Any, Any]:
        """Prompt embeddings, computed once per (prompt, negative) and reused for every batch."""
        key = (positive, negative, guidance)
        if key not in self._embeds:
            with torch.inference_mode():
                pos, neg = self.pipe.encode_prompt(
                    positive, self.device, 1, guidance, negative_prompt=negative if guidance else None
                )
            if len(self._embeds) >= 32:
                self._embeds.pop(next(iter(self._embeds)))
            self._embeds[key] = (pos, neg)
        return self._embeds[key]

    def run_batch(
        self, positive: str, negative: str, seeds: list[int], params: GenerationParams, profile: bool = False
    ) -> BatchResult:
        """Generate one image per seed, in one pipeline call."""
        # 1. Resolve parameters against the model
        width, height = params.width, params.height
        if width is None or height is None:
            native_w, native_h = self.native_size()
            width, height = width or native_w, height or native_h
        # 2. Scheduler for the sampler
        self._set_sampler(params.sampler)
        # 3. Encode the prompt once; every image of the batch shares the embeddings
        started = time.perf_counter()
        text_args: dict[str, Any]
        if hasattr(self.pipe, "encode_prompt") and type(self.pipe).__name__ == "StableDiffusionPipeline":
            pos, neg = self.encode(positive, negative, params.cfg > 1)
            n = len(seeds)
            text_args = {"prompt_embeds": pos.repeat(n, 1, 1)}
            if neg is not None:
                text_args["negative_prompt_embeds"] = neg.repeat(n, 1, 1)
        else:
            text_args = {"prompt": [positive] * len(seeds), "negative_prompt": [negative] * len(seeds)}
        self._sync(profile)
        encoded = time.perf_counter()
        # 4. Denoise and decode; a step callback marks where denoising ends and the VAE begins
        marks: dict[str, float] = {}

        def on_step_end(pipe, step, timestep, callback_kwargs):
            if step == params.steps - 1:
                self._sync(profile)
                marks["denoised"] = time.perf_counter()
            return callback_kwargs

        with torch.inference_mode():
            output = self.pipe(
                **text_args,
                num_inference_steps=params.steps,
                guidance_scale=params.cfg,
                width=width,
                height=height,
                generator=self.generators(seeds, params.noise_device),
                output_type="pil",
                callback_on_step_end=on_step_end if profile else None,
            )
        self._sync(True)
        finished = time.perf_counter()
        timings = {"text_encoding": encoded - started}
        if profile and "denoised" in marks:
            timings["denoising"] = marks["denoised"] - encoded
            timings["vae_decode"] = finished - marks["denoised"]
        else:
            timings["denoising"] = finished - encoded
        return BatchResult(images=list(output.images), seconds=finished - started,
                           info={"width": width, "height": height, "timings": timings})

    def _sync(self, wanted: bool) -> None:
        if wanted and self.device.startswith("cuda"):
            torch.cuda.synchronize()

    @staticmethod
    def is_out_of_memory(exc: BaseException) -> bool:
        return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()

    def free_memory(self) -> None:
        import gc

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def params_json(params: GenerationParams) -> str:
    return json.dumps(params.to_dict(), sort_keys=True)
