"""The Stable Diffusion backend (SD 1.x, 2.x and SDXL) on diffusers: one loaded pipeline, every mode."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, ImageFilter

from .. import __version__
from ..errors import BadParameter, ModelProblem
from ..families import FAMILIES, family_for_context_dim, family_from_config, family_label
from ..inputs.loras import LoraProblem
from ..inputs.models import model_fingerprint
from ..inputs.request import RunInputs
from ..params import SAMPLERS, GenerationParams
from ..weighting import parse_attention, strip_lora_tags
from .backend import BatchResult, EngineOptions
from .encoding import PromptEncoder
from .loading import DeviceMemory, _load, load_controlnet, load_refiner, pick_device, pick_dtype, prepare_pipeline
from .lora import LoraAdapters

if TYPE_CHECKING:
    from .cache import PipelineCache

MODES = ("txt2img", "img2img", "inpaint")
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 1.0}
EMBEDS_KEPT = 32  # prompt embeddings kept per engine


def generation_mode(extra: dict[str, Any]) -> str:
    """txt2img, img2img (an init image) or inpaint (an init image and a mask)."""
    if extra.get("init_image"):
        return "inpaint" if extra.get("mask") else "img2img"
    return "txt2img"


class Engine(DeviceMemory):
    """A loaded diffusers pipeline and the way promptkit runs batches on it (a `Backend`).

    One set of weights serves every mode: img2img, inpainting and ControlNet pipelines are made
    from the loaded one with `from_pipe` (shared components), LoRAs are named adapters switched
    with `set_adapters`, and ControlNets load once each.
    """

    def __init__(self, model: str, options: EngineOptions | None = None, pipe: Any = None) -> None:
        self.model = model
        self.options = options or EngineOptions()
        self.device = pick_device(self.options.device)
        self.dtype = pick_dtype(self.device, self.options.dtype)
        started = time.perf_counter()
        if pipe is None:  # else a pipeline someone already holds (`promptkit.track`), used as it is
            pipe = prepare_pipeline(_load(model, self.options, self.device, self.dtype), self.options, self.device)
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
        self.loras = LoraAdapters(pipe)
        self.encoder = PromptEncoder(pipe, self.family, self.device, self.dtype)
        self._sampler = None
        self._scheduler = pipe.scheduler
        self._embeds: dict[tuple, dict[str, Any]] = {}

    @classmethod
    def load(cls, model: str, options: EngineOptions | None = None) -> "Engine":
        """Load MODEL now (no cache): what a `PipelineCache` calls on a miss."""
        return cls(model, options)

    @classmethod
    def from_pipe(cls, pipe: Any, model: str) -> "Engine":
        """An engine on PIPE, a loaded diffusers pipeline (on its device and dtype), recorded as MODEL; a
        flow-matching family's pipeline gets its own engine (`engine.flow`), as `cache.load_diffusers_backend`
        loads one."""
        from ..families import PIPELINE_FAMILY, UNET_FAMILIES

        if PIPELINE_FAMILY.get(type(pipe).__name__) not in (None, *UNET_FAMILIES):
            from .flow import FlowEngine

            return FlowEngine.from_pipe(pipe, model)
        options = EngineOptions(device=pipe.device.type, dtype=str(pipe.dtype).replace("torch.", ""))
        return cls(model, options, pipe=pipe)

    @classmethod
    def get(cls, model: str, options: EngineOptions | None = None, cache: "PipelineCache | None" = None) -> "Engine":
        """The engine for MODEL from CACHE (the process's default cache when none is given)."""
        from .cache import default_cache

        return (cache if cache is not None else default_cache()).get(model, options or EngineOptions(),
                                                                     loader=cls.load)

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
            self._check_lora(lora, mine)
        for unit in extra.get("controlnets") or []:
            self._check_controlnet(unit, mine)

    def _check_lora(self, lora: dict[str, Any], mine: str) -> None:
        dim = lora.get("context_dim")
        if lora.get("text_encoder_2") and self.family != "sdxl":
            raise LoraProblem(f"LoRA {lora['name']!r} was made for SDXL (it has text_encoder_2 weights), "
                              f"but model {self.model!r} is {mine}")
        if dim is not None and dim != self.context_dim:
            theirs = family_label(family_for_context_dim(dim) or f"a model with {dim}-wide text features")
            raise LoraProblem(f"LoRA {lora['name']!r} was made for {theirs} (cross-attention width {dim}), "
                              f"but model {self.model!r} is {mine} (width {self.context_dim})")

    def _check_controlnet(self, unit: dict[str, Any], mine: str) -> None:
        from ..families import UNET_FAMILIES, controlnet_family

        flow = controlnet_family(unit)
        if flow is not None and flow not in UNET_FAMILIES:  # a FLUX.1 ControlNet, say: no cross-attention width
            raise ModelProblem(f"--controlnet: ControlNet {unit['model']!r} was made for {family_label(flow)}, "
                               f"but model {self.model!r} is {mine}")
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
        """A ControlNet, loaded once per engine."""
        if model not in self._controlnets:
            self._controlnets[model] = load_controlnet(model, self.dtype, self.device)
        return self._controlnets[model]

    def refiner(self, model: str):
        """An SDXL refiner, loaded once, sharing the base's second text encoder and VAE."""
        if model not in self._refiners:
            self._refiners[model] = load_refiner(model, self.pipe, self.options, self.dtype, self.device)
        return self._refiners[model]

    @property
    def _lora_state(self) -> tuple:
        return self.loras.state

    def apply_loras(self, loras: list[dict[str, Any]], files: dict[str, str] | None = None) -> None:
        """Make exactly LORAS active at their scales; each file loads once as a named adapter.

        FILES maps a LoRA's sha256 to the library's copy, which is loaded instead of its path.
        """
        self.loras.apply(loras, files)

    def unload_loras(self) -> None:
        """Remove every LoRA from the weights (the base model's outputs come back exactly)."""
        self.loras.unload()
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
        return self.encoder.prompt_mode(text)

    def encode(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        """Prompt embeddings (keyword arguments of the pipeline), computed once per prompt and LoRA state."""
        key = (positive, negative, guidance, self.loras.state)
        if key not in self._embeds:
            embeds = self.encoder.encode(positive, negative, guidance)
            if len(self._embeds) >= EMBEDS_KEPT:
                self._embeds.pop(next(iter(self._embeds)))
            self._embeds[key] = embeds
        return self._embeds[key]

    # -- one batch --------------------------------------------------------------------
    def run_batch(
        self, positive: str, negative: str, seeds: list[int], params: GenerationParams, profile: bool = False,
        inputs: RunInputs | None = None,
    ) -> BatchResult:
        """Generate one image per seed, in one pipeline call."""
        extra = params.extra or {}
        inputs = inputs or RunInputs()
        # 1. Check the request against the model, pick the mode and the size
        mode, width, height = self._check_batch(extra, params, inputs)
        # 2. Pipeline for the mode (shared weights), ControlNets, LoRA adapters and the sampler
        pipe = self._prepare(mode, extra, params, inputs)
        # 3. Encode the prompt once; every image of the batch shares the embeddings
        started = time.perf_counter()
        text_args = self._text_args(positive, negative, params.cfg > 1, len(seeds))
        self._sync(profile)
        encoded = time.perf_counter()
        # 4. Mode arguments: init image, mask, control images
        call = self._mode_args(mode, width, height, extra, inputs)
        # 5. Denoise and decode (then refine); a step callback marks where denoising ends and the VAE begins
        images, denoised = self._denoise(pipe, text_args, call, positive, negative, seeds, params, profile)
        self._sync(True)
        finished = time.perf_counter()
        # 6. Inpainting keeps what lies outside the mask; report size, mode and timings
        if mode == "inpaint":
            # As A1111 does: outside the (blurred) mask the init image is pasted back, so the VAE's
            # round trip does not touch what was meant to stay.
            images = [pipe.image_processor.apply_overlay(call["mask_image"], call["image"], im) for im in images]
        timings = {"text_encoding": encoded - started}
        if profile and denoised is not None:
            timings.update(denoising=denoised - encoded, vae_decode=finished - denoised)
        else:
            timings["denoising"] = finished - encoded
        width, height = images[0].size
        return BatchResult(images=images, seconds=finished - started,
                           info={"width": width, "height": height, "timings": timings, "mode": mode,
                                 "prompt_mode": self.encoder.pair_mode(positive, negative)})

    def _check_batch(self, extra: dict[str, Any], params: GenerationParams, inputs: RunInputs) -> tuple[str, int, int]:
        """The mode and the size of the batch, after checking the request against the model and the inputs."""
        self.check_request(extra)
        mode = generation_mode(extra)
        if mode != "txt2img" and inputs.init_image is None:
            raise BadParameter("`init_image` is recorded in the parameters but no image was given")
        units = extra.get("controlnets") or []
        if len(inputs.control_images) != len(units):
            raise BadParameter(f"{len(units)} ControlNet(s) but {len(inputs.control_images)} control image(s)")
        width, height = params.width, params.height
        if mode != "txt2img":
            width = width or inputs.init_image.width
            height = height or inputs.init_image.height
            width, height = width - width % 8, height - height % 8
        elif width is None or height is None:
            native_w, native_h = self.native_size()
            width, height = width or native_w, height or native_h
        return mode, width, height

    def _prepare(self, mode: str, extra: dict[str, Any], params: GenerationParams, inputs: RunInputs):
        """The pipeline for MODE with its ControlNets, the LoRAs active and the sampler set."""
        pipe = self.pipeline_for(mode, [self.controlnet(unit["model"]) for unit in extra.get("controlnets") or []])
        self.apply_loras(extra.get("loras") or [], inputs.lora_files)
        self._set_sampler(params.sampler)
        pipe.scheduler = self._scheduler
        return pipe

    def _text_args(self, positive: str, negative: str, guidance: bool, n: int) -> dict[str, Any]:
        """The prompt embeddings, repeated for N images."""
        return {key: value.repeat(n, *[1] * (value.dim() - 1))
                for key, value in self.encode(positive, negative, guidance).items() if value is not None}

    @staticmethod
    def _mode_args(mode: str, width: int, height: int, extra: dict[str, Any], inputs: RunInputs) -> dict[str, Any]:
        """The pipeline arguments of MODE: size, init image and strength, mask, control images and their scales."""
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
        units = extra.get("controlnets") or []
        if units:
            one = len(units) == 1
            images = [im.convert("RGB") for im in inputs.control_images]
            call["control_image" if mode != "txt2img" else "image"] = images[0] if one else images
            for arg, key, default in (("controlnet_conditioning_scale", "scale", 1.0),
                                      ("control_guidance_start", "start", 0.0),
                                      ("control_guidance_end", "end", 1.0)):
                values = [float(unit.get(key, default)) for unit in units]
                call[arg] = values[0] if one else values
        return call

    def _denoise(self, pipe, text_args: dict[str, Any], call: dict[str, Any], positive: str, negative: str,
                 seeds: list[int], params: GenerationParams, profile: bool) -> tuple[list[Any], float | None]:
        """The images of one pipeline call (handed to the refiner when there is one), and when denoising ended."""
        marks: dict[str, float] = {}

        def on_step_end(pipe, step, timestep, callback_kwargs):
            self._sync(profile)
            marks["denoised"] = time.perf_counter()
            return callback_kwargs

        refiner_spec = (params.extra or {}).get("refiner")
        generators = self.generators(seeds, params.noise_device)
        if refiner_spec:
            # Ensemble of experts: the base denoises up to the switch and hands its latents over.
            call = {**call, "denoising_end": float(refiner_spec["switch"]), "output_type": "latent"}
        with torch.inference_mode():
            output = pipe(**text_args, **{"output_type": "pil", **call}, num_inference_steps=params.steps,
                          guidance_scale=params.cfg, generator=generators,
                          callback_on_step_end=on_step_end if profile else None)
            if refiner_spec:
                output = self._refine(refiner_spec, output.images, positive, negative, generators, params)
        return list(output.images), marks.get("denoised")

    def _refine(self, spec: dict[str, Any], latents, positive: str, negative: str, generators, params):
        """The SDXL refiner's pass from the switch point on, with the prompt's plain text (no weights or tags)."""
        plain = lambda text: "".join(t for t, w in parse_attention(strip_lora_tags(text)) if w != -1)  # noqa: E731
        refiner = self.refiner(spec["model"])
        refiner.scheduler = type(self._scheduler).from_config(self._scheduler.config)
        n = len(generators)
        return refiner(prompt=[plain(positive)] * n, negative_prompt=[plain(negative)] * n, image=latents,
                       num_inference_steps=params.steps, denoising_start=float(spec["switch"]),
                       guidance_scale=params.cfg, generator=generators, output_type="pil")

    def _sync(self, wanted: bool) -> None:
        if wanted and self.device.startswith("cuda"):
            torch.cuda.synchronize()

