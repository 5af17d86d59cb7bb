"""The generation engine: everything that touches torch and diffusers lives here.

A backend takes a batch (prompt, negative, seeds, parameters) and returns PIL images and
the seconds spent. Pipelines load once per process and stay loaded.
"""

from __future__ import annotations

import os

# transformers warns at import that torchvision is absent and falls back to PIL: expected here.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re

import torch
from PIL import Image, ImageFilter

from . import __version__
from .errors import BadParameter, ModelProblem
from .families import FAMILIES, family_for_context_dim, family_from_config, family_label
from .inputs import LoraProblem, RunInputs
from .params import SAMPLERS, GenerationParams, check_model_ref, model_fingerprint
from .weighting import CHUNK_TOKENS, is_weighted, parse_attention, strip_lora_tags, to_compel_segments

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
    config: str | None = None  # a diffusers folder with the configs of a single .safetensors file (offline)

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
            return _from_source(model, kind, dtype, options.config)
    except ModelProblem:
        raise
    except (OSError, ValueError, EnvironmentError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelProblem(f"could not load model {model!r}: {first}") from None


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
        from .inputs import LoraProblem, safetensors_header

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


MODES = ("txt2img", "img2img", "inpaint")
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 1.0}


def generation_mode(extra: dict[str, Any]) -> str:
    """txt2img, img2img (an init image) or inpaint (an init image and a mask)."""
    if extra.get("init_image"):
        return "inpaint" if extra.get("mask") else "img2img"
    return "txt2img"


def _peft_load_adapter(self, adapter_name=None, adapter_state_dict=None, peft_config=None, **_ignored) -> None:
    """A text encoder's `load_adapter`, done with peft's own functions.

    transformers 5 refuses to load an adapter unless peft >= 0.22 is installed, so a LoRA with
    text-encoder weights (most LoRAs trained with kohya's scripts) would fail to load on peft
    0.21. diffusers hands this method the converted state dict and LoraConfig; injecting the
    layers and loading the weights with peft gives the same layers transformers would make, and
    diffusers' set_adapters, disable/enable and unload work on them as usual.
    """
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    inject_adapter_in_model(peft_config, self, adapter_name=adapter_name)
    result = set_peft_model_state_dict(self, adapter_state_dict, adapter_name=adapter_name)
    unexpected = [k for k in getattr(result, "unexpected_keys", None) or [] if "lora_" in k]
    if unexpected:
        raise ValueError(f"text-encoder LoRA weights match no layer of the model, e.g. {unexpected[0]}")
    if not hasattr(self, "peft_config"):
        self.peft_config = {}
    self.peft_config[adapter_name] = peft_config
    self._hf_peft_config_loaded = True


def _text_encoder_loras_through_peft(pipe) -> None:
    """Where transformers' adapter loading needs a newer peft than the installed one, let the
    pipeline's text encoders load LoRA weights with peft directly (see _peft_load_adapter)."""
    import types
    from importlib.metadata import version

    from packaging.version import Version

    try:
        from transformers.integrations import peft as transformers_peft

        needed = getattr(transformers_peft, "MIN_PEFT_VERSION", None)
        if needed is None or Version(version("peft")) >= Version(str(needed)):
            return
    except Exception:  # no peft integration to work around
        return
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None and "load_adapter" not in vars(encoder):
            encoder.load_adapter = types.MethodType(_peft_load_adapter, encoder)


class Engine:
    """A loaded diffusers pipeline and the way promptkit runs batches on it.

    One set of weights serves every mode: img2img, inpainting and ControlNet pipelines are made
    from the loaded one with `from_pipe` (shared components), LoRAs are named adapters switched
    with `set_adapters`, and ControlNets load once each.
    """

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
        unet_config = pipe.unet.config
        self.context_dim = unet_config.cross_attention_dim
        self.family = family_from_config(type(pipe).__name__, self.context_dim,
                                         self.base_scheduler_config.get("prediction_type"),
                                         getattr(pipe, "text_encoder_2", None) is not None)
        self.inpainting = unet_config.in_channels == 9
        self._pipes: dict[tuple, Any] = {("inpaint" if self.inpainting else "txt2img", ()): pipe}
        self._controlnets: dict[str, Any] = {}
        self._refiners: dict[str, Any] = {}
        self._adapters: dict[str, str] = {}  # LoRA sha256 -> adapter name
        self._lora_state: tuple = ()
        self._compel: Any = None
        self._sampler = None
        self._scheduler = pipe.scheduler
        self._embeds: dict[tuple, dict[str, Any]] = {}

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
        if not unet:
            size = FAMILIES[self.family]["size"]
            return size, size
        size = int(unet) * int(getattr(self.pipe, "vae_scale_factor", 8))
        return size, size

    def suggest_batch_size(self, params: GenerationParams, count: int) -> int:
        """Images per pipeline call when the user says `auto`: as many as free GPU memory allows.

        The estimate is deliberately rough (activation memory grows with pixels, doubled by CFG);
        an out-of-memory batch is retried in halves anyway, so erring high costs one retry.
        """
        if not self.device.startswith("cuda"):
            return max(1, min(count, 4 if self.device == "cpu" else 2))
        free, _total = torch.cuda.mem_get_info()
        width, height = params.width or self.native_size()[0], params.height or self.native_size()[1]
        bytes_per_pixel = {"sdxl": 4096}.get(self.family, 2048) * (2 if self.dtype == torch.float32 else 1)
        per_image = width * height * bytes_per_pixel * (2 if params.cfg > 1 else 1)
        return max(1, min(count, 16, int(free * 0.8 // per_image)))

    def describe(self) -> dict[str, Any]:
        import diffusers

        return {
            "model": self.model,
            "model_hash": self.model_hash,
            "family": self.family,
            "device": self.device.split(":")[0],
            "dtype": str(self.dtype).replace("torch.", ""),
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "promptkit": __version__},
        }

    # -- checks before any work ---------------------------------------------------------
    def check_request(self, extra: dict[str, Any]) -> None:
        """Refuse, in one line, what this model cannot do: before anything is loaded or written."""
        mode = generation_mode(extra)
        if self.inpainting and mode != "inpaint":
            raise BadParameter(f"model {self.model!r} is an inpainting checkpoint (9-channel UNet): "
                               "give --init-image and --mask")
        mine = family_label(self.family)
        if extra.get("refiner"):
            if self.family != "sdxl":
                raise ModelProblem(f"`refiner` needs an SDXL base model, but model {self.model!r} is {mine}")
            if mode != "txt2img" or extra.get("controlnets"):
                raise BadParameter("`refiner` applies to SDXL text-to-image without ControlNet; "
                                   f"this request is {mode}" + (" with ControlNet" if extra.get("controlnets") else ""))
        for lora in extra.get("loras") or []:
            dim = lora.get("context_dim")
            if lora.get("text_encoder_2") and self.family != "sdxl":
                raise LoraProblem(f"LoRA {lora['name']!r} was made for SDXL (it has text_encoder_2 weights), "
                                  f"but model {self.model!r} is {mine}")
            if dim is not None and dim != self.context_dim:
                theirs = family_label(family_for_context_dim(dim) or f"a model with {dim}-wide text features")
                raise LoraProblem(f"LoRA {lora['name']!r} was made for {theirs} (cross-attention width {dim}), "
                                  f"but model {self.model!r} is {mine} (width {self.context_dim})")
        for unit in extra.get("controlnets") or []:
            config = unit.get("config") or {}
            dim = config.get("cross_attention_dim")
            xl = config.get("addition_embed_type") == "text_time"
            if (dim is not None and dim != self.context_dim) or (config and xl != (self.family == "sdxl")):
                theirs = "SDXL" if xl else family_label(family_for_context_dim(dim) or f"width {dim}")
                raise ModelProblem(f"ControlNet {unit['model']!r} was made for {theirs} (cross-attention width "
                                   f"{dim}), but model {self.model!r} is {mine} (width {self.context_dim})")

    # -- pipelines, ControlNets and LoRAs on the one set of weights ------------------------
    def pipeline_for(self, mode: str, controlnets: list[Any] | None = None):
        """The pipeline for MODE (and ControlNets), made once from the loaded one: no weights load again."""
        controlnets = controlnets or []
        key = (mode, tuple(id(c) for c in controlnets))
        if key not in self._pipes:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

            auto = {"txt2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image,
                    "inpaint": AutoPipelineForInpainting}[mode]
            kwargs: dict[str, Any] = {}
            if controlnets:
                kwargs["controlnet"] = controlnets[0] if len(controlnets) == 1 else list(controlnets)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipe = auto.from_pipe(self.pipe, **kwargs)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    def controlnet(self, model: str):
        """A ControlNet, loaded once per process."""
        if model not in self._controlnets:
            from diffusers import ControlNetModel

            local = Path(model).expanduser().is_dir()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    net = ControlNetModel.from_pretrained(str(Path(model).expanduser()) if local else model,
                                                          torch_dtype=self.dtype, use_safetensors=True,
                                                          local_files_only=local)
            except (OSError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelProblem(f"could not load ControlNet {model!r}: {first}") from None
            self._controlnets[model] = net.to(self.device)
        return self._controlnets[model]

    def refiner(self, model: str):
        """An SDXL refiner, loaded once, sharing the base's second text encoder and VAE."""
        if model not in self._refiners:
            from diffusers import StableDiffusionXLImg2ImgPipeline

            kind = check_model_ref(model, self.options.allow_pickle)
            if kind not in ("folder", "hub"):
                raise ModelProblem(f"`refiner` must be a diffusers folder or hub id, not {model!r}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
                        str(Path(model).expanduser()) if kind == "folder" else model, torch_dtype=self.dtype,
                        use_safetensors=True, local_files_only=kind == "folder",
                        text_encoder_2=self.pipe.text_encoder_2, vae=self.pipe.vae)
            except (OSError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelProblem(f"could not load refiner {model!r}: {first}") from None
            refiner.to(self.device)
            refiner.set_progress_bar_config(disable=True)
            self._refiners[model] = refiner
        return self._refiners[model]

    def apply_loras(self, loras: list[dict[str, Any]], files: dict[str, str] | None = None) -> None:
        """Make exactly LORAS active at their scales; each file loads once as a named adapter.

        FILES maps a LoRA's sha256 to the library's copy, which is loaded instead of its path.
        """
        wanted = []
        for lora in loras:
            sha = lora["sha256"]
            if sha not in self._adapters:
                file = Path((files or {}).get(sha) or lora["path"])
                if not file.is_file():
                    raise LoraProblem(f"`lora` {str(file)!r} does not exist")
                name = re.sub(r"\W", "_", f"{lora['name']}_{sha[:8]}")
                _text_encoder_loras_through_peft(self.pipe)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        self.pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=name)
                except (ValueError, RuntimeError, KeyError, OSError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise LoraProblem(f"could not load LoRA {lora['path']!r}: {first}") from None
                self._adapters[sha] = name
            wanted.append((self._adapters[sha], float(lora["scale"])))
        state = tuple(wanted)
        if state == self._lora_state:
            return
        if wanted:
            self.pipe.enable_lora()
            self.pipe.set_adapters([name for name, _ in wanted], [scale for _, scale in wanted])
        elif self._adapters:
            self.pipe.disable_lora()
        self._lora_state = state

    def unload_loras(self) -> None:
        """Remove every LoRA from the weights (the base model's outputs come back exactly)."""
        if self._adapters:
            self.pipe.unload_lora_weights()
        self._adapters.clear()
        self._lora_state = ()
        self._embeds.clear()

    def _set_sampler(self, name: str) -> None:
        if self._sampler == name:
            return
        import diffusers

        class_name, extra = SAMPLERS[name]
        scheduler_cls = getattr(diffusers, class_name)
        self._scheduler = scheduler_cls.from_config(self.base_scheduler_config, **extra)
        self.pipe.scheduler = self._scheduler
        self._sampler = name

    def generators(self, seeds: list[int], noise_device: str) -> list[torch.Generator]:
        # One generator per image: seed S starts from the same noise alone or in any batch.
        device = "cpu" if noise_device == "cpu" or self.device == "cpu" else self.device
        return [torch.Generator(device).manual_seed(int(seed)) for seed in seeds]

    # -- prompts ----------------------------------------------------------------------
    def prompt_mode(self, text: str) -> str:
        """plain (diffusers' own encoding), weighted (A1111 weights or BREAK) or long (past 75 tokens)."""
        if is_weighted(text):
            return "weighted"
        ids = self.pipe.tokenizer(strip_lora_tags(text), add_special_tokens=False)["input_ids"]
        return "long" if len(ids) > CHUNK_TOKENS else "plain"

    def encode(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        """Prompt embeddings (keyword arguments of the pipeline), computed once per prompt and LoRA state."""
        key = (positive, negative, guidance, self._lora_state)
        if key not in self._embeds:
            modes = {self.prompt_mode(positive), self.prompt_mode(negative)}
            with torch.inference_mode():
                if modes == {"plain"}:
                    embeds = self._encode_plain(strip_lora_tags(positive), strip_lora_tags(negative), guidance)
                else:
                    embeds = self._encode_compel(positive, negative, guidance)
            if len(self._embeds) >= 32:
                self._embeds.pop(next(iter(self._embeds)))
            self._embeds[key] = embeds
        return self._embeds[key]

    def _encode_plain(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        negative_prompt = negative if guidance else None
        if self.family == "sdxl":
            pos, neg, pooled, neg_pooled = self.pipe.encode_prompt(
                positive, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=guidance,
                negative_prompt=negative_prompt)
            return {"prompt_embeds": pos, "negative_prompt_embeds": neg, "pooled_prompt_embeds": pooled,
                    "negative_pooled_prompt_embeds": neg_pooled}
        pos, neg = self.pipe.encode_prompt(positive, self.device, 1, guidance, negative_prompt=negative_prompt)
        return {"prompt_embeds": pos, "negative_prompt_embeds": neg}

    def _compel_encoders(self):
        if self._compel is None:
            from compel import Compel, ReturnedEmbeddingsType
            from compel.embeddings_provider import SplitLongTextMode

            common = {"truncate_long_prompts": False, "device": self.device,
                      "split_long_text_mode": SplitLongTextMode.WORDS}
            if self.family == "sdxl":
                penultimate = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
                self._compel = [
                    Compel(tokenizer=self.pipe.tokenizer, text_encoder=self.pipe.text_encoder,
                           returned_embeddings_type=penultimate, **common),
                    Compel(tokenizer=self.pipe.tokenizer_2, text_encoder=self.pipe.text_encoder_2,
                           returned_embeddings_type=penultimate, requires_pooled=True, **common),
                ]
            else:
                self._compel = [Compel(tokenizer=self.pipe.tokenizer, text_encoder=self.pipe.text_encoder, **common)]
        return self._compel

    def _compel_segment(self, text: str) -> tuple[Any, Any]:
        encoders = self._compel_encoders()
        if len(encoders) == 1:
            return encoders[0](text), None
        left = encoders[0](text)
        right, pooled = encoders[1](text)
        return torch.cat([left, right], dim=-1), pooled

    def _compel_embeds(self, text: str) -> tuple[Any, Any]:
        # Each BREAK segment starts a fresh 77-token window, as in A1111.
        parts = [self._compel_segment(segment) for segment in to_compel_segments(text)]
        return torch.cat([p[0] for p in parts], dim=1).to(self.dtype), parts[0][1]

    def _encode_compel(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        pos, pooled = self._compel_embeds(positive)
        embeds: dict[str, Any] = {"prompt_embeds": pos}
        if self.family == "sdxl":
            embeds["pooled_prompt_embeds"] = pooled.to(self.dtype)
        if not guidance:
            return embeds
        zeros = self.family == "sdxl" and not negative and getattr(self.pipe.config, "force_zeros_for_empty_prompt",
                                                                   False)
        neg, neg_pooled = self._compel_embeds(negative)
        # Pad the shorter with empty-prompt windows so both have the same number of 77-token chunks.
        empty, _ = self._compel_embeds("")
        while neg.shape[1] < pos.shape[1]:
            neg = torch.cat([neg, empty], dim=1)
        while pos.shape[1] < neg.shape[1]:
            pos = torch.cat([pos, empty], dim=1)
        embeds["prompt_embeds"] = pos
        embeds["negative_prompt_embeds"] = torch.zeros_like(neg) if zeros else neg
        if self.family == "sdxl":
            embeds["negative_pooled_prompt_embeds"] = (torch.zeros_like(neg_pooled) if zeros else neg_pooled).to(
                self.dtype)
        return embeds

    # -- one batch --------------------------------------------------------------------
    def run_batch(
        self, positive: str, negative: str, seeds: list[int], params: GenerationParams, profile: bool = False,
        inputs: RunInputs | None = None,
    ) -> BatchResult:
        """Generate one image per seed, in one pipeline call."""
        # 1. Check the request against the model, pick the mode and the size
        extra = params.extra or {}
        inputs = inputs or RunInputs()
        self.check_request(extra)
        mode = generation_mode(extra)
        if mode != "txt2img" and inputs.init_image is None:
            raise BadParameter("`init_image` is recorded in the parameters but no image was given")
        width, height = params.width, params.height
        if mode != "txt2img":
            width = width or inputs.init_image.width
            height = height or inputs.init_image.height
            width, height = width - width % 8, height - height % 8
        elif width is None or height is None:
            native_w, native_h = self.native_size()
            width, height = width or native_w, height or native_h
        # 2. Pipeline for the mode (shared weights), ControlNets, LoRA adapters and the sampler
        units = extra.get("controlnets") or []
        if len(inputs.control_images) != len(units):
            raise BadParameter(f"{len(units)} ControlNet(s) but {len(inputs.control_images)} control image(s)")
        pipe = self.pipeline_for(mode, [self.controlnet(unit["model"]) for unit in units])
        self.apply_loras(extra.get("loras") or [], inputs.lora_files)
        self._set_sampler(params.sampler)
        pipe.scheduler = self._scheduler
        # 3. Encode the prompt once; every image of the batch shares the embeddings
        started = time.perf_counter()
        n = len(seeds)
        text_args = {key: value.repeat(n, *[1] * (value.dim() - 1))
                     for key, value in self.encode(positive, negative, params.cfg > 1).items() if value is not None}
        self._sync(profile)
        encoded = time.perf_counter()
        # 4. Mode arguments: init image, mask, control images
        call: dict[str, Any] = {}
        if mode == "txt2img":
            call.update(width=width, height=height)
        else:
            init = inputs.init_image
            if init.size != (width, height):
                init = init.resize((width, height), Image.LANCZOS)
            call.update(image=init, strength=float(extra.get("strength", DEFAULT_STRENGTH[mode])))
        if mode == "inpaint":
            mask = inputs.mask.convert("L")
            if mask.size != (width, height):
                mask = mask.resize((width, height), Image.LANCZOS)
            if extra.get("mask_blur"):
                mask = mask.filter(ImageFilter.GaussianBlur(int(extra["mask_blur"])))
            call.update(mask_image=mask, width=width, height=height)
        if units:
            one = len(units) == 1
            images = [im.convert("RGB") for im in inputs.control_images]
            call["control_image" if mode != "txt2img" else "image"] = images[0] if one else images
            for arg, key, default in (("controlnet_conditioning_scale", "scale", 1.0),
                                      ("control_guidance_start", "start", 0.0),
                                      ("control_guidance_end", "end", 1.0)):
                values = [float(unit.get(key, default)) for unit in units]
                call[arg] = values[0] if one else values
        # 5. Denoise and decode; a step callback marks where denoising ends and the VAE begins
        marks: dict[str, float] = {}

        def on_step_end(pipe, step, timestep, callback_kwargs):
            self._sync(profile)
            marks["denoised"] = time.perf_counter()
            return callback_kwargs

        refiner_spec = extra.get("refiner")
        generators = self.generators(seeds, params.noise_device)
        if refiner_spec:
            # Ensemble of experts: the base denoises up to the switch and hands its latents over.
            call.update(denoising_end=float(refiner_spec["switch"]), output_type="latent")
        with torch.inference_mode():
            output = pipe(
                **text_args,
                **{"output_type": "pil", **call},
                num_inference_steps=params.steps,
                guidance_scale=params.cfg,
                generator=generators,
                callback_on_step_end=on_step_end if profile else None,
            )
            if refiner_spec:
                plain = lambda text: "".join(t for t, w in parse_attention(strip_lora_tags(text)) if w != -1)  # noqa: E731
                refiner = self.refiner(refiner_spec["model"])
                refiner.scheduler = type(self._scheduler).from_config(self._scheduler.config)
                output = refiner(prompt=[plain(positive)] * n, negative_prompt=[plain(negative)] * n,
                                 image=output.images, num_inference_steps=params.steps,
                                 denoising_start=float(refiner_spec["switch"]), guidance_scale=params.cfg,
                                 generator=generators, output_type="pil")
        self._sync(True)
        finished = time.perf_counter()
        timings = {"text_encoding": encoded - started}
        if profile and "denoised" in marks:
            timings["denoising"] = marks["denoised"] - encoded
            timings["vae_decode"] = finished - marks["denoised"]
        else:
            timings["denoising"] = finished - encoded
        images = list(output.images)
        if mode == "inpaint":
            # As A1111 does: outside the (blurred) mask the init image is pasted back, so the VAE's
            # round trip does not touch what was meant to stay.
            images = [pipe.image_processor.apply_overlay(call["mask_image"], call["image"], im) for im in images]
        width, height = images[0].size
        prompt_mode = "plain" if {self.prompt_mode(positive), self.prompt_mode(negative)} == {"plain"} else (
            "weighted" if "weighted" in {self.prompt_mode(positive), self.prompt_mode(negative)} else "long")
        return BatchResult(images=images, seconds=finished - started,
                           info={"width": width, "height": height, "timings": timings, "mode": mode,
                                 "prompt_mode": prompt_mode})

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
