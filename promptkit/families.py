"""Model families (SD 1.x, SD 2.x, SDXL): how to tell them apart and their native sizes (no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAMILIES: dict[str, dict[str, Any]] = {
    "sd1": {"label": "SD 1.x", "size": 512, "context_dim": 768},
    "sd2": {"label": "SD 2.x", "size": 768, "context_dim": 1024},
    "sdxl": {"label": "SDXL", "size": 1024, "context_dim": 2048},
}


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
    return next((name for name, info in FAMILIES.items() if info["context_dim"] == dim), None)


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


def detect_controlnet(folder: str | Path) -> dict[str, Any]:
    """Kind and family of a diffusers ControlNet folder: the family by its cross-attention width
    (SDXL's added text-time embedding when the width is not a known family's)."""
    config = _reader(folder)("config.json")
    width = config.get("cross_attention_dim")
    family = family_for_context_dim(width)
    if family is None and config.get("addition_embed_type") == "text_time":
        family = "sdxl"
    return {"kind": "controlnet", "family": family, "pipeline": config.get("_class_name", "ControlNetModel"),
            "cross_attention_dim": width}


def detect_family(folder: str | Path) -> dict[str, Any]:
    """Family, pipeline class, inpainting flag and native size of a diffusers folder, from its JSON configs alone."""
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
