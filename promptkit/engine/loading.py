"""Loading diffusers pipelines: device and dtype choice, folders, hub ids and single checkpoint files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import BadParameter, ModelProblem
from ..inputs.loras import LoraProblem, safetensors_header
from ..inputs.models import check_model_ref
from .backend import EngineOptions


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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type when it has none."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def quiet_libraries() -> None:
    """diffusers and transformers report only errors and draw no progress bars."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _load(model: str, options: EngineOptions, device: str, dtype: torch.dtype):
    quiet_libraries()
    kind = check_model_ref(model, options.allow_pickle)
    try:
        with warnings.catch_warnings():
            # diffusers renames torch_dtype to dtype; older releases know only torch_dtype.
            warnings.simplefilter("ignore", FutureWarning)
            return _from_source(model, kind, dtype, options.config)
    except ModelProblem:
        raise
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ModelProblem(f"could not load model {model!r}: {first_line(exc)}") from None


def single_file_pipeline_class(header: dict[str, Any], config: str | None = None) -> str:
    """The diffusers pipeline class for a single checkpoint file: from --config's model_index.json, else its keys."""
    if config:
        index = Path(config).expanduser() / "model_index.json"
        if not index.is_file():
            raise ModelProblem(f"`config` {config!r} has no model_index.json; give a diffusers folder of the same model")
        return json.loads(index.read_text(encoding="utf-8"))["_class_name"]
    xl = any(key.startswith("conditioner.embedders.1.") for key in header)
    first_conv = header.get("model.diffusion_model.input_blocks.0.0.weight", {}).get("shape") or [0, 4]
    inpaint = len(first_conv) > 1 and first_conv[1] == 9
    name = "StableDiffusionXL" if xl else "StableDiffusion"
    return f"{name}{'Inpaint' if inpaint else ''}Pipeline"


def _from_source(model: str, kind: str, dtype: torch.dtype, config: str | None = None):
    import diffusers
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    if kind in ("folder", "hub"):
        return DiffusionPipeline.from_pretrained(
            model if kind == "hub" else str(Path(model).expanduser()),
            torch_dtype=dtype,
            use_safetensors=True,
            local_files_only=kind == "folder",
        )
    path = str(Path(model).expanduser())
    if kind == "safetensors":
        try:
            header = safetensors_header(Path(path))
        except LoraProblem as exc:
            raise ModelProblem(str(exc).replace("LoRA", "model")) from None
        pipeline_cls = getattr(diffusers, single_file_pipeline_class(header, config), StableDiffusionPipeline)
    else:
        pipeline_cls = StableDiffusionPipeline
    # With --config the configs come from that folder and nothing is fetched; without, diffusers fetches them.
    extra = {"config": str(Path(config).expanduser()), "local_files_only": True} if config else {}
    return pipeline_cls.from_single_file(path, torch_dtype=dtype, use_safetensors=kind == "safetensors", **extra)


def load_controlnet(model: str, dtype: torch.dtype, device: str):
    """A ControlNet from a diffusers folder or a hub id, on DEVICE."""
    from diffusers import ControlNetModel

    local = Path(model).expanduser().is_dir()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            net = ControlNetModel.from_pretrained(str(Path(model).expanduser()) if local else model,
                                                  torch_dtype=dtype, use_safetensors=True, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ModelProblem(f"could not load ControlNet {model!r}: {first_line(exc)}") from None
    return net.to(device)


def load_refiner(model: str, base, options: EngineOptions, dtype: torch.dtype, device: str):
    """An SDXL refiner sharing BASE's second text encoder and VAE, on DEVICE."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    kind = check_model_ref(model, options.allow_pickle)
    if kind not in ("folder", "hub"):
        raise ModelProblem(f"`refiner` must be a diffusers folder or hub id, not {model!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
                str(Path(model).expanduser()) if kind == "folder" else model, torch_dtype=dtype,
                use_safetensors=True, local_files_only=kind == "folder",
                text_encoder_2=base.text_encoder_2, vae=base.vae)
    except (OSError, ValueError) as exc:
        raise ModelProblem(f"could not load refiner {model!r}: {first_line(exc)}") from None
    refiner.to(device)
    refiner.set_progress_bar_config(disable=True)
    return refiner


def prepare_pipeline(pipe, options: EngineOptions, device: str):
    """Move PIPE to DEVICE (or offload it) and switch on the memory/speed options asked for."""
    if options.cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(device)
    if options.attention_slicing:
        pipe.enable_attention_slicing()
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    if options.compile:
        pipe.unet = torch.compile(pipe.unet)
    pipe.set_progress_bar_config(disable=True)
    return pipe
