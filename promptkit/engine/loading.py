"""Loading diffusers pipelines: device and dtype choice, folders, hub ids and single checkpoint files."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import BadParameter, ModelProblem
from ..inputs.loras import LoraProblem, safetensors_header
from ..inputs.models import check_model_ref
from .backend import EngineOptions


class DeviceMemory:
    """Out-of-memory detection and freeing, shared by the engines (`self.device` names the torch device)."""

    device: str

    @staticmethod
    def is_out_of_memory(exc: BaseException) -> bool:
        return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()

    def free_memory(self) -> None:
        import gc

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


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


_NOT_CACHED = ("not fully cached", "cannot find an appropriate cached", "outgoing traffic has been disabled",
               "offline mode is enabled", "local_files_only")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def offline_message(model: str, exc: BaseException) -> str | None:
    """One line for a hub id missing from the local cache while the hub is offline or out of reach, else None."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(item) for item in chain).lower()
    names = " ".join(type(item).__name__ for item in chain)
    if not (any(phrase in text for phrase in _NOT_CACHED)
            or "LocalEntryNotFound" in names or "OfflineModeIsEnabled" in names):
        return None
    why = "the hub is offline (HF_HUB_OFFLINE=1)" if _hub_offline() else "the hub cannot be reached"
    return (f"model {model!r} is not in the local Hugging Face cache and {why}; download it once with network "
            f"access (e.g. `huggingface-cli download {model}`) or pass a local folder")


def load_problem(what: str, model: str, exc: BaseException, hub: bool) -> ModelProblem:
    """The one-line ModelProblem for a failed load of MODEL (a hub id when HUB)."""
    message = offline_message(model, exc) if hub else None
    return ModelProblem(message or f"could not load {what} {model!r}: {first_line(exc)}")


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
        raise load_problem("model", model, exc, kind == "hub") from None


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
        raise load_problem("ControlNet", model, exc, not local) from None
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
        raise load_problem("refiner", model, exc, kind == "hub") from None
    refiner.to(device)
    refiner.set_progress_bar_config(disable=True)
    return refiner


def prepare_pipeline(pipe, options: EngineOptions, device: str, part: str = "unet"):
    """Move PIPE to DEVICE (or offload it) and switch on the memory/speed options asked for
    (`compile` compiles PART: the UNet, or a flow-matching model's transformer)."""
    if options.cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(device)
    if options.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    if options.compile:
        setattr(pipe, part, torch.compile(getattr(pipe, part)))
    pipe.set_progress_bar_config(disable=True)
    return pipe


# -- flow-matching families: pipelines, and a transformer from one .safetensors or GGUF file ----------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_tensor_names(path: str | Path) -> list[str]:
    """The tensor names of a GGUF file, read from its header (no `gguf` package needed for this)."""
    import struct

    def read(handle, fmt):
        size = struct.calcsize(fmt)
        data = handle.read(size)
        if len(data) != size:
            raise ValueError("file ends inside its header")
        return struct.unpack(fmt, data)[0]

    def string(handle) -> str:
        length = read(handle, "<Q")
        if length > 1 << 20:
            raise ValueError("implausible string length")
        return handle.read(length).decode("utf-8", "replace")

    def skip_value(handle, kind: int) -> None:
        if kind == 8:
            string(handle)
        elif kind == 9:
            item, count = read(handle, "<I"), read(handle, "<Q")
            for _ in range(count):
                skip_value(handle, item)
        elif kind in _GGUF_SCALARS:
            read(handle, _GGUF_SCALARS[kind])
        else:
            raise ValueError(f"unknown metadata type {kind}")

    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"GGUF":
                raise ValueError("no GGUF magic")
            read(handle, "<I")  # version
            tensors, kvs = read(handle, "<Q"), read(handle, "<Q")
            for _ in range(kvs):
                string(handle)
                skip_value(handle, read(handle, "<I"))
            names = []
            for _ in range(tensors):
                names.append(string(handle))
                dims = read(handle, "<I")
                handle.read(8 * dims + 4 + 8)  # shape, type, offset
            return names
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelProblem(f"model file {str(path)!r} is not a readable GGUF file: {exc}") from None


def transformer_file_family(path: str | Path) -> dict[str, Any]:
    """{"family", "component"} of a single .safetensors or .gguf file, from its tensor names."""
    from ..families import family_from_keys

    file = Path(path).expanduser()
    if file.suffix.lower() == ".gguf":
        return family_from_keys(gguf_tensor_names(file))
    try:
        header = safetensors_header(file)
    except LoraProblem as exc:
        raise ModelProblem(str(exc).replace("LoRA", "model")) from None
    return family_from_keys(k for k in header if k != "__metadata__")


def _transformer_from_file(path: Path, family, folder: str, dtype: torch.dtype):
    """The family's transformer from one file: GGUF through GGUFQuantizationConfig (needs the `gguf` extra),
    a .safetensors through from_single_file with the configs of FOLDER (offline)."""
    import diffusers

    index = json.loads((Path(folder).expanduser() / "model_index.json").read_text(encoding="utf-8"))
    cls = getattr(diffusers, index["transformer"][1])
    extra: dict[str, Any] = {}
    if path.suffix.lower() == ".gguf":
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ModelProblem("loading a GGUF transformer needs the `gguf` package: pip install 'promptkit[gguf]'") \
                from None
        extra["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    try:
        return cls.from_single_file(str(path), config=str(Path(folder).expanduser()), subfolder="transformer",
                                    torch_dtype=dtype, local_files_only=True, **extra)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelProblem(f"could not load transformer {str(path)!r}: {first_line(exc)}") from None


QUANTIZE = ("int8",)


def quantized_transformer(source: str, kind: str, options: EngineOptions, dtype: torch.dtype):
    """The transformer of SOURCE quantized as --quantize asks (torchao int8 weight-only): opt-in, approximate."""
    import diffusers

    if options.quantize not in QUANTIZE:
        raise BadParameter(f"--quantize must be one of {', '.join(QUANTIZE)} but is {options.quantize!r}")
    try:
        from torchao.quantization import Int8WeightOnlyConfig
    except ImportError:
        raise ModelProblem("--quantize int8 needs torchao: pip install 'promptkit[quantize]'") from None
    folder = Path(source).expanduser()
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8")) if kind == "folder" else None
    cls = getattr(diffusers, index["transformer"][1]) if index else diffusers.AutoModel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_pretrained(str(folder) if kind == "folder" else source, subfolder="transformer",
                                   quantization_config=diffusers.TorchAoConfig(Int8WeightOnlyConfig()),
                                   torch_dtype=torch.bfloat16 if dtype == torch.float32 else dtype,
                                   local_files_only=kind == "folder")


def approximate_loading(model: str, options: EngineOptions) -> str | None:
    """What makes MODEL's images approximate (a quantized transformer), for the record; None for exact loading."""
    if Path(model).expanduser().suffix.lower() == ".gguf":
        return f"GGUF-quantized transformer ({Path(model).name})"
    if options.quantize:
        return f"{options.quantize} weight-only quantized transformer (torchao)"
    return None


def load_flow_pipeline(model: str, options: EngineOptions, dtype: torch.dtype):
    """A flow-matching pipeline: a diffusers folder or hub id, or a transformer file (.safetensors or .gguf)
    with --config naming the diffusers folder of the rest (text encoders, VAE, scheduler)."""
    from diffusers import DiffusionPipeline

    from ..families import family_label

    quiet_libraries()
    path = Path(model).expanduser()
    if path.is_file():
        found = transformer_file_family(path)
        if found["component"] != "transformer" or found["family"] is None:
            what = found["component"] or "no known model's weights"
            raise ModelProblem(f"model file {model!r} is not a diffusion transformer (it holds {what}); give "
                               "the transformer's file, with --config naming the pipeline's diffusers folder")
        if not options.config:
            raise ModelProblem(f"model file {model!r} is a {family_label(found['family'])} transformer alone: give "
                               "--config, the diffusers folder of the same model for its text encoders and VAE")
        transformer = _transformer_from_file(path, found["family"], options.config, dtype)
        source, kind, parts = options.config, "folder", {"transformer": transformer}
    else:
        source, kind, parts = model, check_model_ref(model, options.allow_pickle), {}
        if options.quantize:
            parts["transformer"] = quantized_transformer(source, kind, options, dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return DiffusionPipeline.from_pretrained(
                str(Path(source).expanduser()) if kind == "folder" else source, torch_dtype=dtype,
                use_safetensors=True, local_files_only=kind == "folder", **parts)
    except ModelProblem:
        raise
    except (OSError, ValueError, EnvironmentError) as exc:
        raise load_problem("model", model, exc, kind == "hub") from None
