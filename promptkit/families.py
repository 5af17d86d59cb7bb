"""Model families: the table every part of promptkit reads (builder, lint, engine, studio, README), and how to
tell the families apart from a folder's JSON configs (no torch).

The table is data: one `Family` per family. The facts in it were checked against each pipeline's `__call__`
signature in diffusers 0.42.1 (defaults for steps, guidance and `max_sequence_length`) and the families' model
cards (distilled variants' steps and guidance). `FAMILIES` keeps the older dict view ("label", "size",
"context_dim") that existing callers read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


_RESERVED = {"clip-bpe": 2, "t5-unigram": 1, "qwen-bpe": 3}


@dataclass(frozen=True)
class Encoder:
    """One text encoder: its role, tokenizer kind and the tokens it reads (past them, the text is cut)."""

    name: str            # "clip-l", "clip-g", "t5", "qwen3", "qwen2.5-vl", "clip"
    tokenizer: str       # "clip-bpe", "t5-unigram", "qwen-bpe"
    max_tokens: int
    note: str = ""       # e.g. "pooled vector only" for FLUX.1's CLIP
    # Tokens of the window the pipeline itself takes before or after the prompt: CLIP's start and end
    # markers (2), T5's end marker (1), Qwen3's chat-template opening `<|im_start|>user\n` (3);
    # None: by tokenizer kind. Qwen-Image drops its template's opening before cutting (0).
    reserved: int | None = None

    @property
    def window(self) -> int:
        """The prompt's own tokens that fit: max_tokens less what the pipeline adds."""
        reserved = self.reserved if self.reserved is not None else _RESERVED.get(self.tokenizer, 0)
        return self.max_tokens - reserved


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    pipelines: dict[str, str]          # mode ("txt2img", "img2img", "inpaint", "fill") -> diffusers class name
    encoders: tuple[Encoder, ...]
    guidance: str                      # "cfg" | "embedded" | "true_cfg" | "distilled"
    guidance_arg: str                  # the __call__ argument an X/Y guidance axis sets
    default_guidance: float
    default_steps: int
    default_size: int
    negative_prompt: str               # "always" | "never" | "true_cfg" (only when true_cfg_scale > 1) | "cfg" (only when guidance > 1)
    a1111_weights: bool                # whether (word:1.2) means anything to the encoder
    prompt_style: str                  # "tags" | "sentences": which packaged template is the default
    schedulers: tuple[str, ...]        # scheduler classes a person may choose
    lora: bool
    controlnet: bool                   # promptkit runs ControlNets on it (`generate --controlnet`)
    context_dim: int | None = None     # cross-attention width (UNet families only)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. schnell / turbo / distilled defaults

    @property
    def max_tokens(self) -> int:
        """The longest window among the encoders (what the family reads at most)."""
        return max(encoder.max_tokens for encoder in self.encoders)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["encoders"] = [asdict(encoder) for encoder in self.encoders]
        data["schedulers"] = list(self.schedulers)
        return data


_CLIP_L = Encoder("clip-l", "clip-bpe", 77)
_SD_SAMPLERS = ("euler", "euler_a", "dpm++_2m", "dpm++_2m_karras", "ddim", "pndm", "lms", "heun", "unipc")
_FLOW = ("FlowMatchEulerDiscreteScheduler",)

TABLE: tuple[Family, ...] = (
    Family("sd1", "SD 1.x", {"txt2img": "StableDiffusionPipeline", "img2img": "StableDiffusionImg2ImgPipeline",
                             "inpaint": "StableDiffusionInpaintPipeline"},
           (_CLIP_L,), "cfg", "guidance_scale", 7.5, 30, 512, "cfg", True, "tags", _SD_SAMPLERS, True, True,
           context_dim=768),
    Family("sd2", "SD 2.x", {"txt2img": "StableDiffusionPipeline", "img2img": "StableDiffusionImg2ImgPipeline",
                             "inpaint": "StableDiffusionInpaintPipeline"},
           (Encoder("openclip-h", "clip-bpe", 77),), "cfg", "guidance_scale", 7.5, 30, 768, "cfg", True, "tags",
           _SD_SAMPLERS, True, True, context_dim=1024),
    Family("sdxl", "SDXL", {"txt2img": "StableDiffusionXLPipeline", "img2img": "StableDiffusionXLImg2ImgPipeline",
                            "inpaint": "StableDiffusionXLInpaintPipeline"},
           (_CLIP_L, Encoder("clip-g", "clip-bpe", 77)), "cfg", "guidance_scale", 7.0, 30, 1024, "cfg", True, "tags",
           _SD_SAMPLERS, True, True, context_dim=2048),
    Family("sd3", "SD 3.5", {"txt2img": "StableDiffusion3Pipeline", "img2img": "StableDiffusion3Img2ImgPipeline",
                             "inpaint": "StableDiffusion3InpaintPipeline"},
           (_CLIP_L, Encoder("clip-g", "clip-bpe", 77), Encoder("t5", "t5-unigram", 256)),
           "cfg", "guidance_scale", 7.0, 28, 1024, "cfg", False, "sentences", _FLOW, True, False),
    Family("flux", "FLUX.1", {"txt2img": "FluxPipeline", "img2img": "FluxImg2ImgPipeline",
                              "inpaint": "FluxInpaintPipeline", "fill": "FluxFillPipeline"},
           (Encoder("clip-l", "clip-bpe", 77, "pooled vector only"), Encoder("t5", "t5-unigram", 512)),
           "embedded", "guidance_scale", 3.5, 28, 1024, "true_cfg", False, "sentences", _FLOW, True, True,
           variants={"schnell": {"guidance": 0.0, "steps": 4, "max_tokens": 256}}),
    Family("flux2-klein", "FLUX.2 klein", {"txt2img": "Flux2KleinPipeline", "inpaint": "Flux2KleinInpaintPipeline"},
           (Encoder("qwen3", "qwen-bpe", 512),), "distilled", "guidance_scale", 1.0, 4, 1024, "never", False,
           "sentences", _FLOW, True, False,
           variants={"base": {"guidance": 4.0, "steps": 50}, "distilled": {"guidance": 1.0, "steps": 4}}),
    Family("zimage", "Z-Image", {"txt2img": "ZImagePipeline", "img2img": "ZImageImg2ImgPipeline",
                                 "inpaint": "ZImageInpaintPipeline"},
           (Encoder("qwen3", "qwen-bpe", 512),), "cfg", "guidance_scale", 5.0, 50, 1024, "cfg", False, "sentences",
           _FLOW, True, False, variants={"turbo": {"guidance": 0.0, "steps": 8}}),
    Family("qwenimage", "Qwen-Image", {"txt2img": "QwenImagePipeline", "img2img": "QwenImageImg2ImgPipeline",
                                       "inpaint": "QwenImageInpaintPipeline"},
           (Encoder("qwen2.5-vl", "qwen-bpe", 512, reserved=0),), "true_cfg", "true_cfg_scale", 4.0, 50, 1024, "true_cfg",
           False, "sentences", _FLOW, True, False),
    Family("chroma", "Chroma", {"txt2img": "ChromaPipeline", "img2img": "ChromaImg2ImgPipeline",
                                "inpaint": "ChromaInpaintPipeline"},
           (Encoder("t5", "t5-unigram", 512),), "cfg", "guidance_scale", 5.0, 35, 1024, "cfg", False, "sentences",
           _FLOW, True, False),
)

BY_KEY: dict[str, Family] = {family.key: family for family in TABLE}
UNET_FAMILIES = ("sd1", "sd2", "sdxl")

#: The older dict view: family -> {"label", "size", "context_dim"}.
FAMILIES: dict[str, dict[str, Any]] = {
    family.key: {"label": family.label, "size": family.default_size, "context_dim": family.context_dim}
    for family in TABLE
}

#: model_index.json `_class_name` (any mode) -> family key, for detection.
PIPELINE_FAMILY: dict[str, str] = {
    cls: family.key for family in TABLE if family.key not in UNET_FAMILIES for cls in family.pipelines.values()
}


#: Family-specific request keys (GenerationParams.extra), the flag a person types, and the families taking them.
FAMILY_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "true_cfg_scale": ("--true-cfg", ("flux", "qwenimage")),
    "max_sequence_length": ("--max-sequence-length", tuple(f.key for f in TABLE if f.key not in UNET_FAMILIES)),
    "shift": ("--shift", tuple(f.key for f in TABLE if f.key not in UNET_FAMILIES)),
}


def check_family_extra(family: str | None, extra: dict[str, Any], model: str) -> None:
    """Refuse, in one line, a family-specific option on a model whose family lacks it (`--true-cfg` on SD 1.5)."""
    from .errors import BadParameter

    for key, (flag, families) in FAMILY_OPTIONS.items():
        if key in (extra or {}) and family not in families:
            names = ", ".join(BY_KEY[f].label for f in families)
            raise BadParameter(f"{flag} applies to {names}; model {model!r} is {family_label(family or '?')}")


def get_family(key: str) -> Family:
    """The table's entry for KEY (KeyError for an unknown key: callers name the flag)."""
    return BY_KEY[key]


def family_from_config(pipeline_class: str, context_dim: int | None, prediction_type: str | None,
                       has_text_encoder_2: bool = False) -> str:
    """sdxl for XL pipelines (two text encoders); sd2 for 1024-wide cross-attention or v-prediction; else sd1."""
    if "XL" in (pipeline_class or "") or has_text_encoder_2:
        return "sdxl"
    if context_dim == 1024 or prediction_type == "v_prediction":
        return "sd2"
    return "sd1"


def family_label(family: str) -> str:
    return FAMILIES.get(family, {}).get("label", family)


def family_for_context_dim(dim: int | None) -> str | None:
    """The family whose cross-attention width is DIM (for naming a LoRA's family in messages)."""
    return next((name for name, info in FAMILIES.items() if dim is not None and info["context_dim"] == dim), None)


def _reader(folder: str | Path):
    root = Path(folder).expanduser()

    def read(name: str) -> dict[str, Any]:
        file = root / name
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}

    return read


def native_size(unet: dict[str, Any], vae: dict[str, Any]) -> int | None:
    """The side a pipeline generates by default: the UNet's sample_size times the VAE's scale factor."""
    sample_size = unet.get("sample_size")
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0] if sample_size else None
    if not isinstance(sample_size, int):
        return None
    blocks = vae.get("block_out_channels") or [0, 0, 0, 0]
    return sample_size * 2 ** (len(blocks) - 1)


#: A flow-matching ControlNet's config class name -> the family it was made for.
CONTROLNET_CLASS_FAMILY: dict[str, str] = {"FluxControlNetModel": "flux", "SD3ControlNetModel": "sd3",
                                           "QwenImageControlNetModel": "qwenimage"}


def detect_controlnet(folder: str | Path) -> dict[str, Any]:
    """Kind and family of a diffusers ControlNet folder: a flow-matching one (FLUX.1's `FluxControlNetModel`)
    by its config's class name, a UNet one by its cross-attention width (SDXL's added text-time embedding when
    the width is not a known family's)."""
    config = _reader(folder)("config.json")
    width = config.get("cross_attention_dim")
    family = CONTROLNET_CLASS_FAMILY.get(config.get("_class_name", ""))
    if family is None:
        family = family_for_context_dim(width)
    if family is None and config.get("addition_embed_type") == "text_time":
        family = "sdxl"
    return {"kind": "controlnet", "family": family, "pipeline": config.get("_class_name", "ControlNetModel"),
            "cross_attention_dim": width}


def controlnet_family(unit: dict[str, Any]) -> str | None:
    """The family a ControlNet unit (GenerationParams.extra["controlnets"][i]) was made for: from its local
    folder's config.json (a hub id's, when it is in the local cache), else from the config recorded with it;
    None when neither tells."""
    model = unit.get("model")
    if isinstance(model, str) and model and (Path(model).expanduser() / "config.json").is_file():
        return detect_controlnet(Path(model).expanduser())["family"]
    if isinstance(model, str) and model.count("/") == 1 and not model.startswith((".", "/", "~")):
        try:  # the cache only: a check never goes online
            from huggingface_hub import hf_hub_download

            found = detect_controlnet(Path(hf_hub_download(model, "config.json", local_files_only=True)).parent)
        except Exception:  # not cached, or no hub library: the load says why
            found = {"family": None}
        if found["family"] is not None:
            return found["family"]
    config = unit.get("config") or {}
    family = family_for_context_dim(config.get("cross_attention_dim"))
    if family is None and config.get("addition_embed_type") == "text_time":
        family = "sdxl"
    return family


def detect_family(folder: str | Path) -> dict[str, Any]:
    """Family, pipeline class, inpainting flag and native size of a diffusers folder, from its JSON configs alone."""
    flow = detect_flow_family(folder)
    if flow is not None:
        return flow
    read = _reader(folder)
    index = read("model_index.json")
    unet = read("unet/config.json")
    scheduler = read("scheduler/scheduler_config.json")
    pipeline_class = index.get("_class_name", "")
    family = family_from_config(pipeline_class, unet.get("cross_attention_dim"), scheduler.get("prediction_type"),
                                bool((index.get("text_encoder_2") or [None])[0]))
    return {"family": family, "pipeline": pipeline_class, "inpainting": unet.get("in_channels") == 9,
            "prediction_type": scheduler.get("prediction_type", "epsilon"),
            "native_size": native_size(unet, read("vae/config.json"))}


# -- flow-matching families: a folder's model_index.json, a single file's tensor names --------

#: Marker tensor names (prefix match, after a ComfyUI `model.diffusion_model.` prefix is removed), most specific
#: first: the original (BFL / Stability / Alibaba) layouts and diffusers' own.
FILE_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chroma", ("distilled_guidance_layer.",)),
    ("flux2-klein", ("double_stream_modulation_img.", "single_stream_modulation.")),
    ("flux", ("double_blocks.", "single_transformer_blocks.", "time_text_embed.guidance_embedder.")),
    ("sd3", ("joint_blocks.", "pos_embed.pos_embed")),
    ("zimage", ("noise_refiner.", "context_refiner.", "all_x_embedder.", "cap_embedder.")),
    ("qwenimage", ("txt_norm.", "img_in.")),
)
#: Tensor names that mark a text encoder, a VAE or a LoRA rather than a transformer.
NOT_TRANSFORMER = (("lora", (".lora_A.", ".lora_B.", ".lora_down.", ".lora_up.", "lora_unet_", "lora_te")),
                   ("text encoder", ("encoder.block.", "text_model.", "model.layers.", "shared.weight", "embed_tokens.",
                                     "embeddings.token_embedding.", "input_layernorm.")),
                   ("VAE", ("encoder.down_blocks.", "decoder.up_blocks.", "encoder.conv_in.", "decoder.conv_in.")))
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.")


def family_from_keys(keys) -> dict[str, Any]:
    """What a single weights file holds, from its tensor names alone: {"family", "component"}.

    component: "checkpoint" (an SD-style file with UNet, VAE and text encoders), "transformer", "lora",
    "text encoder", "VAE" or None (unknown); family None when no family's markers are there.
    """
    names = list(keys)
    if any(name.startswith("model.diffusion_model.input_blocks.") for name in names):
        xl = any(name.startswith("conditioner.embedders.1.") for name in names)
        return {"family": "sdxl" if xl else "sd1", "component": "checkpoint"}
    for component, markers in NOT_TRANSFORMER:
        if any(marker in name for name in names for marker in markers):
            return {"family": None, "component": component}
    stripped = [next((n[len(p):] for p in _PREFIXES if n.startswith(p)), n) for n in names]
    for family, markers in FILE_MARKERS:
        if any(name.startswith(marker) for name in stripped for marker in markers):
            return {"family": family, "component": "transformer"}
    return {"family": None, "component": None}


def detect_flow_family(folder: str | Path) -> dict[str, Any] | None:
    """Family, pipeline class and defaults of a flow-matching diffusers folder (by its model_index.json's
    pipeline class, through PIPELINE_FAMILY), or None for any other folder."""
    read = _reader(folder)
    index = read("model_index.json")
    pipeline_class = index.get("_class_name", "")
    family = PIPELINE_FAMILY.get(pipeline_class)
    if family is None:
        return None
    transformer = read("transformer/config.json")
    info: dict[str, Any] = {"family": family, "pipeline": pipeline_class,
                            "inpainting": "Inpaint" in pipeline_class or "Fill" in pipeline_class,
                            "prediction_type": "flow", "native_size": None}
    if family == "flux2-klein":
        info["is_distilled"] = bool(index.get("is_distilled"))
    if family == "flux":
        info["variant"] = "dev" if transformer.get("guidance_embeds", True) else "schnell"
    return info
