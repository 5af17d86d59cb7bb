"""`promptkit model …`: write a tiny offline model, describe a local one."""

from __future__ import annotations

import click

from ..errors import PromptkitError
from .options import emit, json_option

FAMILY_KINDS = ("sd3", "flux", "flux2-klein", "zimage", "qwenimage", "chroma")  # promptkit.tinyfamilies (torch)


@click.group()
def model() -> None:
    """Model helpers."""


@model.command("tiny")
@click.argument("path", type=click.Path(), required=False)
@click.option("--out", "out", type=click.Path(), default=None, help="Where to write it (instead of PATH).")
@click.option("--kind", type=click.Choice(["sd", "sd2", "sdxl", "sdxl-refiner", "inpaint", "controlnet", "lora", "sd3",
                                           "flux", "flux2-klein", "zimage", "qwenimage", "chroma", "clip"]), default="sd",
              show_default=True, help="SD 1.x, SD 2.x (v-prediction), SDXL, SDXL refiner, 9-channel inpainting, ControlNet, "
                                      "LoRA, or a flow-matching family: SD 3.5, FLUX.1, FLUX.2 klein, Z-Image, Qwen-Image, "
                                      "Chroma; or a CLIP model for the judges (`promptkit score --model PATH`).")
@click.option("--for", "base", type=click.Choice(["sd", "sdxl", "flux"]), default="sd", show_default=True,
              help="The tiny pipeline a ControlNet or LoRA is made for (flux: a FLUX.1 ControlNet).")
@json_option
def model_tiny(path: str | None, out: str | None, kind: str, base: str, as_json: bool) -> None:
    """Write a tiny random-weight model to PATH or --out (offline; it draws noise, not pictures).

    A LoRA is one .safetensors file; everything else is a diffusers folder.
    """
    from ..tinymodel import tiny_note, write_tiny_pipeline

    path = out or path
    if not path:
        raise PromptkitError("`model tiny` needs a folder: give PATH or --out DIR")
    if kind == "clip":
        from ..judges.tiny import TINY_CLIP_NOTE, write_tiny_clip

        folder = write_tiny_clip(path)
        emit({"path": str(folder), "kind": kind}, as_json, f"wrote {folder} (clip): {TINY_CLIP_NOTE}")
        return
    if kind in FAMILY_KINDS:
        from ..tinyfamilies import family_note, write_tiny_family

        folder = write_tiny_family(path, kind)
        emit({"path": str(folder), "kind": kind}, as_json, f"wrote {folder} ({kind}): {family_note(kind)}")
        return
    folder = write_tiny_pipeline(path, kind=kind, base=base)
    data = {"path": str(folder), "kind": kind}
    if kind in ("lora", "controlnet"):
        data["for"] = base
    emit(data, as_json, f"wrote {folder} ({kind}): {tiny_note(kind, base)}")


@model.command("info")
@click.argument("model_ref")
@json_option
def model_info(model_ref: str, as_json: bool) -> None:
    """Family (SD 1.x, SD 2.x, SDXL), pipeline class and native size of a local diffusers folder
    (a pipeline or a ControlNet)."""
    from ..families import FAMILIES, detect_controlnet, detect_family, family_label
    from ..inputs.models import check_model_ref, is_controlnet_folder

    if is_controlnet_folder(model_ref):
        data = detect_controlnet(model_ref)
        family = (f"for {family_label(data['family'])}" if data["family"]
                  else f"family unknown (cross-attention width {data['cross_attention_dim']})")
        emit(data, as_json, f"{model_ref}: ControlNet ({data['pipeline']}), {family}")
        return
    if check_model_ref(model_ref, allow_pickle=True) != "folder":
        raise PromptkitError(f"`model info` reads a local diffusers folder; {model_ref!r} is not one")
    data = {"kind": "pipeline", **detect_family(model_ref)}
    data["default_size"] = FAMILIES[data["family"]]["size"]
    size = data["native_size"] or data["default_size"]
    note = "" if size == data["default_size"] else f" (family default {data['default_size']})"
    emit(data, as_json, f"{model_ref}: {FAMILIES[data['family']]['label']} ({data['pipeline']}), "
                        f"{data['prediction_type']}, inpainting: {'yes' if data['inpainting'] else 'no'}, "
                        f"generates {size}×{size}{note}")


COMMANDS = [model]
