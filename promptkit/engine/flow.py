"""The backend for the flow-matching families (SD 3.5, FLUX.1, FLUX.2 klein, Z-Image, Qwen-Image, Chroma).

Each family's rules come from the family table (promptkit/families.py): the call argument the guidance goes to
(`guidance_scale` or `true_cfg_scale`), whether and when a negative prompt is used (never passed where the
family ignores it, so changing it cannot change the image), whether A1111 weight markup means anything (if
not, it is stripped before encoding, never sent as literal parentheses), the longest text the encoders read
(`max_sequence_length`) and the schedulers that may be chosen. Seeds run on CPU generators, one per image, as
in the Stable Diffusion engine: seed S starts from the same noise alone or in any batch.

ControlNet runs on FLUX.1 (`CONTROLNET_PIPELINES`): the units in `params.extra["controlnets"]` are those the
Stable Diffusion engine takes (model, control image by sha256, scale, start, end); each `FluxControlNetModel`
loads once per engine, several make a `FluxMultiControlNetModel`, and the ControlNet pipeline is made from the
loaded one with `from_pipe` (shared transformer, VAE and text encoders). A ControlNet of another family, or
ControlNet on a family without a pipeline here, is refused in one line before anything is written.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

import torch

from .. import __version__
from ..errors import BadParameter, ModelProblem
from ..families import BY_KEY, Family, check_family_extra, detect_flow_family, family_label
from ..inputs.loras import LoraProblem
from ..inputs.models import model_fingerprint
from ..inputs.request import RunInputs
from ..params import DEFAULT_SAMPLER, GenerationParams
from .backend import BatchResult, EngineOptions
from .loading import (DeviceMemory, approximate_loading, load_flow_pipeline, pick_device, pick_dtype, prepare_pipeline,
                      transformer_file_family)
from .stable_diffusion import DEFAULT_STRENGTH, Engine, generation_mode

if TYPE_CHECKING:
    from .cache import PipelineCache

#: A1111 sampler name -> the flow-matching scheduler it stands for (ComfyUI and Forge call it "euler").
FLOW_SAMPLERS = {"Euler": "FlowMatchEulerDiscreteScheduler"}

#: Family -> mode -> the diffusers ControlNet pipeline promptkit runs (made with `from_pipe` from the loaded one),
#: and the ControlNet model class it loads. Families the table marks `controlnet` but not here are refused.
CONTROLNET_PIPELINES: dict[str, dict[str, str]] = {
    "flux": {"txt2img": "FluxControlNetPipeline", "img2img": "FluxControlNetImg2ImgPipeline",
             "inpaint": "FluxControlNetInpaintPipeline"},
}
CONTROLNET_MODELS = {"flux": ("FluxControlNetModel", "FluxMultiControlNetModel")}


def strip_weights(text: str) -> str:
    """TEXT without A1111 markup: `(word:1.2)` -> `word`, `[x]` -> `x`, BREAK -> a space, LoRA tags gone."""
    try:  # the prompt side's own (promptkit/weighting.py), when it is there
        from ..weighting import strip_weights as shared
    except ImportError:
        shared = None
    if shared is not None:
        return shared(text)
    from ..weighting import parse_attention, strip_lora_tags

    return " ".join("".join(t if w != -1 else " " for t, w in parse_attention(strip_lora_tags(text))).split())


def negative_ignored(family: Family, guidance: float, true_cfg: float | None, is_distilled: bool = False) -> str | None:
    """Why FAMILY ignores a negative prompt at these settings, or None when it uses one (the prompt side's
    `family_rules.negative_ignored` when it is there, so lint and the engine say the same)."""
    try:
        from ..family_rules import negative_ignored as shared
    except ImportError:
        shared = None
    if shared is not None:
        return shared(family, guidance, true_cfg)
    rule = family.negative_prompt
    if rule == "never":
        return f"{family.label} takes no negative prompt"
    if rule == "true_cfg":
        value = guidance if family.guidance_arg == "true_cfg_scale" else (true_cfg or 1.0)
        if value <= 1:
            return f"{family.label} uses a negative prompt only with true CFG above 1 (true_cfg_scale {value:g})"
        return None
    if rule == "cfg" and guidance <= 1:
        return f"{family.label} uses a negative prompt only with guidance above 1 (guidance {guidance:g})"
    return None


def flow_family(model: str, options: EngineOptions | None = None) -> str | None:
    """The flow-matching family of MODEL (a folder, a transformer file or a cached hub id), else None."""
    from pathlib import Path

    path = Path(model).expanduser()
    if path.is_dir():
        found = detect_flow_family(path)
        return found["family"] if found else None
    if path.is_file():
        if path.suffix.lower() not in (".safetensors", ".gguf"):
            return None
        found = transformer_file_family(path)
        return found["family"] if found["component"] == "transformer" else (
            "unknown" if path.suffix.lower() == ".gguf" else None)
    return _hub_family(model)


def _hub_family(model: str) -> str | None:
    """A hub id's family from its model_index.json in the local cache (or the hub, when online)."""
    import json

    from ..families import PIPELINE_FAMILY

    if model.count("/") != 1:
        return None
    try:
        from huggingface_hub import hf_hub_download

        file = hf_hub_download(model, "model_index.json")
        return PIPELINE_FAMILY.get(json.loads(open(file, encoding="utf-8").read()).get("_class_name", ""))
    except Exception:  # not cached and offline, or not a pipeline: the SD engine says why
        return None


class FlowEngine(DeviceMemory):
    """A loaded flow-matching pipeline and the way promptkit runs batches on it (a `Backend`)."""

    def __init__(self, model: str, options: EngineOptions | None = None, pipe: Any = None) -> None:
        self.model = model
        self.options = options or EngineOptions()
        self.device = pick_device(self.options.device)
        self.dtype = pick_dtype(self.device, self.options.dtype)
        started = time.perf_counter()
        if pipe is None:  # else a pipeline someone already holds (`promptkit.track`), used as it is
            pipe = prepare_pipeline(load_flow_pipeline(model, self.options, self.dtype), self.options, self.device,
                                    part="transformer")
        self.pipe = pipe
        self.load_seconds = time.perf_counter() - started
        self.model_hash = model_fingerprint(model)
        self.family = {cls: key for key, fam in BY_KEY.items() for cls in fam.pipelines.values()
                       }.get(type(pipe).__name__)
        if self.family is None:
            raise ModelProblem(f"model {model!r} is a {type(pipe).__name__}, which promptkit does not run")
        self.spec: Family = BY_KEY[self.family]
        self.is_distilled = bool(getattr(pipe.config, "is_distilled", False))
        self.variant = self._variant()
        self.base_scheduler_config = dict(pipe.scheduler.config)
        self.approximate = approximate_loading(model, self.options)  # never the default; recorded on each image
        # The pipeline serves its own mode (a held FluxImg2ImgPipeline is the img2img one); others come from it.
        mode = next((m for m, cls in self.spec.pipelines.items() if cls == type(pipe).__name__), "txt2img")
        self._pipes: dict[Any, Any] = {mode: pipe}  # mode, or (mode, ControlNet ids) for a ControlNet pipeline
        self._adapters: dict[str, str] = {}
        self._lora_state: tuple = ()
        self._controlnets: dict[str, Any] = {}

    def _variant(self) -> str | None:
        if self.family == "flux":
            return "dev" if getattr(self.pipe.transformer.config, "guidance_embeds", True) else "schnell"
        if self.family == "flux2-klein":
            return "distilled" if self.is_distilled else "base"
        return None

    @classmethod
    def load(cls, model: str, options: EngineOptions | None = None) -> "FlowEngine":
        return cls(model, options)

    @classmethod
    def from_pipe(cls, pipe: Any, model: str) -> "FlowEngine":
        """An engine on PIPE, a loaded diffusers flow-matching pipeline (on its device and dtype), recorded as MODEL."""
        options = EngineOptions(device=pipe.device.type, dtype=str(pipe.dtype).replace("torch.", ""))
        return cls(model, options, pipe=pipe)

    @classmethod
    def get(cls, model: str, options: EngineOptions | None = None, cache: "PipelineCache | None" = None):
        from .cache import get_backend

        return get_backend(model, options, cache)

    def native_size(self) -> tuple[int, int]:
        return self.spec.default_size, self.spec.default_size

    def suggest_batch_size(self, params: GenerationParams, count: int) -> int:
        if not self.device.startswith("cuda"):
            return max(1, min(count, 4 if self.device == "cpu" else 2))
        free, _total = torch.cuda.mem_get_info()
        width, height = params.width or self.spec.default_size, params.height or self.spec.default_size
        per_image = width * height * 4096 * (2 if self.dtype == torch.float32 else 1)
        return max(1, min(count, 8, int(free * 0.7 // per_image)))

    def describe(self) -> dict[str, Any]:
        import diffusers

        return {"model": self.model, "model_hash": self.model_hash, "family": self.family,
                "device": self.device.split(":")[0], "dtype": str(self.dtype).replace("torch.", ""),
                "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                             "promptkit": __version__}}

    # -- checks before any work ---------------------------------------------------------
    def check_request(self, extra: dict[str, Any]) -> None:
        """Refuse, in one line, what this family cannot do: before anything is written."""
        mine = self.spec.label
        mode = generation_mode(extra)
        if mode not in self.spec.pipelines:
            flag = "--mask" if mode == "inpaint" else "--init-image/--strength"
            raise BadParameter(f"{flag}: {mine} has no {mode} pipeline in diffusers (model {self.model!r})")
        if extra.get("refiner"):
            raise ModelProblem(f"`refiner` needs an SDXL base model, but model {self.model!r} is {mine}")
        for unit in extra.get("controlnets") or []:
            self._check_controlnet(unit, mine, mode, extra)
        check_family_extra(self.family, extra, self.model)
        for lora in extra.get("loras") or []:
            self._check_lora(lora, mine)

    def _check_controlnet(self, unit: dict[str, Any], mine: str, mode: str, extra: dict[str, Any]) -> None:
        from ..families import controlnet_family

        if not self.spec.controlnet or self.family not in CONTROLNET_PIPELINES:
            raise ModelProblem(f"--controlnet: promptkit runs ControlNets on SD 1.x, 2.x, SDXL and FLUX.1; model "
                               f"{self.model!r} is {mine}")
        theirs = controlnet_family(unit)
        width = (unit.get("config") or {}).get("cross_attention_dim")
        if theirs is None and width is not None:  # a UNet ControlNet of a width no family has (a tiny one)
            theirs = f"a UNet model (SD 1.x, 2.x or SDXL; cross-attention width {width})"
        if theirs is not None and theirs != self.family:
            raise ModelProblem(f"--controlnet: ControlNet {unit['model']!r} was made for {family_label(theirs)}, "
                               f"but model {self.model!r} is {mine}")
        if mode not in CONTROLNET_PIPELINES[self.family]:
            raise BadParameter(f"--controlnet: {mine} has no {mode} ControlNet pipeline in diffusers")
        if mode != "txt2img" and float(extra.get("true_cfg_scale") or 1.0) > 1:
            raise BadParameter(f"--true-cfg: {mine}'s {mode} ControlNet pipeline has no true CFG; "
                               "leave --true-cfg at 1 with --controlnet")

    def _check_lora(self, lora: dict[str, Any], mine: str) -> None:
        from pathlib import Path

        from ..families import family_for_context_dim, family_from_keys
        from ..inputs.loras import safetensors_header

        if lora.get("context_dim") is not None or lora.get("text_encoder_2"):
            theirs = family_label(family_for_context_dim(lora.get("context_dim")) or "sdxl")
            raise LoraProblem(f"LoRA {lora['name']!r} was made for {theirs} (a UNet LoRA), but model "
                              f"{self.model!r} is {mine}")
        path = lora.get("path")
        if path and Path(path).is_file():
            names = [k for k in safetensors_header(Path(path)) if k != "__metadata__"]
            stripped = [n.replace(".lora_A", "").replace(".lora_B", "").removeprefix("transformer.") for n in names]
            theirs = family_from_keys(stripped)["family"]
            if theirs is not None and theirs != self.family:
                raise LoraProblem(f"LoRA {lora['name']!r} was made for {family_label(theirs)}, but model "
                                  f"{self.model!r} is {mine}")

    # -- what one request runs with ------------------------------------------------------
    def resolve_params(self, params: GenerationParams) -> GenerationParams:
        """PARAMS as this family runs them: the default A1111 sampler becomes `Euler` (the flow-matching Euler
        scheduler); any other sampler the family cannot use is refused in one line."""
        if params.sampler == DEFAULT_SAMPLER:
            from dataclasses import replace

            return replace(params, extra=dict(params.extra), sampler="Euler")
        self._scheduler_class(params.sampler)
        return params

    def _scheduler_class(self, sampler: str) -> str:
        name = FLOW_SAMPLERS.get(sampler)
        if name is None or name not in self.spec.schedulers:
            raise BadParameter(f"--sampler {sampler!r} cannot drive {self.spec.label} (a flow-matching model); "
                               f"use --sampler {' or '.join(k for k, v in FLOW_SAMPLERS.items() if v in self.spec.schedulers)}")
        return name

    def family_values(self, negative: str, params: GenerationParams) -> dict[str, Any]:
        """Every family-specific value of a request, as recorded on the image."""
        extra = params.extra or {}
        spec = self.spec
        true_cfg = (float(extra["true_cfg_scale"]) if extra.get("true_cfg_scale") is not None
                    else (1.0 if self.family == "flux" else None))
        window = max(e.max_tokens for e in spec.encoders if e.tokenizer != "clip-bpe")
        if self.variant == "schnell":
            window = int(spec.variants["schnell"]["max_tokens"])
        values: dict[str, Any] = {
            "family": self.family, "guidance": spec.guidance, "guidance_arg": spec.guidance_arg,
            "max_sequence_length": int(extra.get("max_sequence_length") or window),
            "shift": float(extra.get("shift") or self.base_scheduler_config.get("shift", 1.0)),
            "dynamic_shift": bool(self.base_scheduler_config.get("use_dynamic_shifting", False)),
            "is_distilled": self.is_distilled or self.variant == "schnell", "a1111_weights": spec.a1111_weights,
        }
        if true_cfg is not None:  # FLUX.1's, or an explicit --true-cfg on Qwen-Image (over its cfg)
            values["true_cfg_scale"] = true_cfg
        if self.variant:
            values["variant"] = self.variant
        if self.approximate:
            values["approximate"] = self.approximate
        ignored = negative_ignored(spec, params.cfg, true_cfg, values["is_distilled"])
        if ignored and negative.strip():
            values["negative_ignored"] = ignored
        return values

    def prompt_text(self, text: str) -> tuple[str, bool]:
        """The text the encoders get, and whether weight markup was stripped from it."""
        from ..weighting import strip_lora_tags

        plain = strip_lora_tags(text)
        if self.spec.a1111_weights:
            return plain, False
        stripped = strip_weights(plain)
        return stripped, stripped != " ".join(plain.split())

    # -- one batch --------------------------------------------------------------------
    def run_batch(self, positive: str, negative: str, seeds: list[int], params: GenerationParams,
                  profile: bool = False, inputs: RunInputs | None = None) -> BatchResult:
        """Generate one image per seed, in one pipeline call."""
        extra = params.extra or {}
        inputs = inputs or RunInputs()
        self.check_request(extra)
        mode, width, height = self._size(extra, params, inputs)
        units = extra.get("controlnets") or []
        if len(inputs.control_images) != len(units):
            raise BadParameter(f"{len(units)} ControlNet(s) but {len(inputs.control_images)} control image(s)")
        pipe = self._prepare(mode, extra, params, inputs)
        values = self.family_values(negative, params)
        call = self._call_args(positive, negative, params, values)
        call.update(Engine._mode_args(mode, width, height, {k: v for k, v in extra.items() if k != "controlnets"},
                                      inputs))
        call.update(width=width, height=height)  # every family's img2img pipeline takes the size too
        if units:
            call.update(self._control_args(units, inputs))
            if mode != "txt2img":  # FLUX.1's ControlNet img2img/inpaint pipelines take no true CFG (checked at 1)
                import inspect

                accepted = inspect.signature(type(pipe).__call__).parameters
                call = {k: v for k, v in call.items() if k in accepted}
        generators = [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]
        started = time.perf_counter()
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output = pipe(**call, num_images_per_prompt=len(seeds), generator=generators,
                          num_inference_steps=params.steps, output_type="pil")
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        finished = time.perf_counter()
        images = list(output.images)
        if mode == "inpaint" and hasattr(pipe, "image_processor"):
            images = [pipe.image_processor.apply_overlay(call["mask_image"], call["image"], im) for im in images]
        stripped = self.prompt_text(positive)[1] or (bool(negative) and self.prompt_text(negative)[1])
        width, height = images[0].size
        return BatchResult(images=images, seconds=finished - started,
                           info={"width": width, "height": height, "mode": mode,
                                 "timings": {"denoising": finished - started},
                                 "prompt_mode": "weights stripped" if stripped else "plain", "family_info": values})

    def _size(self, extra: dict[str, Any], params: GenerationParams, inputs: RunInputs) -> tuple[str, int, int]:
        mode = generation_mode(extra)
        if mode != "txt2img" and inputs.init_image is None:
            raise BadParameter("`init_image` is recorded in the parameters but no image was given")
        width, height = params.width, params.height
        if mode != "txt2img":
            width, height = width or inputs.init_image.width, height or inputs.init_image.height
        width, height = width or self.spec.default_size, height or self.spec.default_size
        step = 16  # the VAE's factor times the 2x2 patches of every family here
        return mode, width - width % step or step, height - height % step or step

    def _prepare(self, mode: str, extra: dict[str, Any], params: GenerationParams, inputs: RunInputs):
        import diffusers

        params_sampler = self._scheduler_class(params.sampler)
        units = extra.get("controlnets") or []
        if not units and mode not in self._pipes:
            cls = getattr(diffusers, self.spec.pipelines[mode])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._pipes[mode] = cls.from_pipe(self.pipe)
            self._pipes[mode].set_progress_bar_config(disable=True)
        pipe = (self._controlnet_pipe(mode, [self.controlnet(unit["model"]) for unit in units]) if units
                else self._pipes[mode])
        self._apply_loras(extra.get("loras") or [], inputs.lora_files)
        config = dict(self.base_scheduler_config)
        if extra.get("shift"):
            config.update(shift=float(extra["shift"]), use_dynamic_shifting=False)
        pipe.scheduler = getattr(diffusers, params_sampler).from_config(config)
        return pipe

    def _call_args(self, positive: str, negative: str, params: GenerationParams,
                   values: dict[str, Any]) -> dict[str, Any]:
        call: dict[str, Any] = {"prompt": self.prompt_text(positive)[0],
                                "max_sequence_length": values["max_sequence_length"],
                                self.spec.guidance_arg: float(params.cfg)}
        if self.spec.guidance_arg == "true_cfg_scale":
            call["guidance_scale"] = None
        if "true_cfg_scale" in values:
            call["true_cfg_scale"] = float(values["true_cfg_scale"])
        if negative_ignored(self.spec, params.cfg, values.get("true_cfg_scale")) is None:
            call["negative_prompt"] = self.prompt_text(negative)[0]
        return call

    # -- ControlNets ----------------------------------------------------------------------
    def controlnet(self, model: str):
        """A ControlNet of this family (FLUX.1's `FluxControlNetModel`), loaded once per engine."""
        if model not in self._controlnets:
            from pathlib import Path

            import diffusers

            from .loading import load_problem

            cls = getattr(diffusers, CONTROLNET_MODELS[self.family][0])
            local = Path(model).expanduser().is_dir()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    net = cls.from_pretrained(str(Path(model).expanduser()) if local else model, torch_dtype=self.dtype,
                                              use_safetensors=True, local_files_only=local)
            except (OSError, ValueError) as exc:
                raise load_problem("ControlNet", model, exc, not local) from None
            self._controlnets[model] = net.to(self.device)
        return self._controlnets[model]

    def _controlnet_pipe(self, mode: str, controlnets: list[Any]):
        """The family's ControlNet pipeline for MODE with CONTROLNETS (several: the family's multi-ControlNet
        model), made once from the loaded pipeline: the transformer, VAE and text encoders are shared."""
        import diffusers

        key = (mode, tuple(id(net) for net in controlnets))
        if key not in self._pipes:
            cls = getattr(diffusers, CONTROLNET_PIPELINES[self.family][mode])
            multi = getattr(diffusers, CONTROLNET_MODELS[self.family][1])
            net = controlnets[0] if len(controlnets) == 1 else multi(list(controlnets))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipe = cls.from_pipe(self.pipe, controlnet=net)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    @staticmethod
    def _control_args(units: list[dict[str, Any]], inputs: RunInputs) -> dict[str, Any]:
        """The control image(s) and each unit's scale, start and end, as the ControlNet pipeline takes them."""
        one = len(units) == 1
        images = [im.convert("RGB") for im in inputs.control_images]
        call: dict[str, Any] = {"control_image": images[0] if one else images}
        for arg, key, default in (("controlnet_conditioning_scale", "scale", 1.0),
                                  ("control_guidance_start", "start", 0.0), ("control_guidance_end", "end", 1.0)):
            values = [float(unit.get(key, default)) for unit in units]
            call[arg] = values[0] if one else values
        return call

    # -- LoRAs ------------------------------------------------------------------------
    def _apply_loras(self, loras: list[dict[str, Any]], files: dict[str, str] | None = None) -> None:
        """Make exactly LORAS active (diffusers' load_lora_weights, one named adapter per file)."""
        state = tuple((lora["sha256"], float(lora.get("scale", 1.0))) for lora in loras)
        if state == self._lora_state:
            return
        if not loras:
            self.pipe.disable_lora() if self._adapters else None
            self._lora_state = ()
            return
        names = []
        for lora in loras:
            name = self._adapters.get(lora["sha256"])
            if name is None:
                name = f"lora_{len(self._adapters)}"
                path = (files or {}).get(lora["sha256"]) or lora["path"]
                try:
                    self.pipe.load_lora_weights(path, adapter_name=name)
                except (ValueError, KeyError, RuntimeError, OSError) as exc:
                    raise LoraProblem(f"LoRA {lora['name']!r} does not fit model {self.model!r} "
                                      f"({self.spec.label}): {str(exc).splitlines()[0][:160]}") from None
                self._adapters[lora["sha256"]] = name
            names.append(name)
        self.pipe.enable_lora()
        self.pipe.set_adapters(names, [float(lora.get("scale", 1.0)) for lora in loras])
        self._lora_state = state

    def unload_loras(self) -> None:
        if self._adapters:
            self.pipe.unload_lora_weights()
        self._adapters.clear()
        self._lora_state = ()



__all__ = ["DEFAULT_STRENGTH", "FLOW_SAMPLERS", "FlowEngine", "flow_family", "negative_ignored", "strip_weights"]
