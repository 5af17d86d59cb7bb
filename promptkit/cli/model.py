"""`promptkit model …`: write a tiny offline model, describe a local one."""

from __future__ import annotations

import click

from ..errors import PromptkitError
from .options import emit, json_option


@click.group()
def model() -> None:
    """Model helpers."""


@model.command("tiny")
@click.argument("path", type=click.Path())
@click.option("--kind", type=click.Choice(["sd", "sd2", "sdxl", "sdxl-refiner", "inpaint", "controlnet", "lora"]), default="sd",
              show_default=True, help="SD 1.x, SD 2.x (v-prediction), SDXL, SDXL refiner, 9-channel inpainting, ControlNet or LoRA.")
@click.option("--for", "base", type=click.Choice(["sd", "sdxl"]), default="sd", show_default=True,
              help="The tiny pipeline a ControlNet or LoRA is made for.")
@json_option
def model_tiny(path: str, kind: str, base: str, as_json: bool) -> None:
    """Write a tiny random-weight model to PATH (offline; it draws noise, not pictures).

    A LoRA is one .safetensors file; everything else is a diffusers folder.
    """
    from ..tinymodel import TINY_NOTE, write_tiny_pipeline

    folder = write_tiny_pipeline(path, kind=kind, base=base)
    emit({"path": str(folder), "kind": kind}, as_json, f"wrote {folder} ({kind}): {TINY_NOTE}")


@model.command("info")
@click.argument("model_ref")
@json_option
def model_info(model_ref: str, as_json: bool) -> None:
    """Family (SD 1.x, SD 2.x, SDXL), pipeline class and native size of a local diffusers folder."""
    from ..families import FAMILIES, detect_family
    from ..params import check_model_ref

    if check_model_ref(model_ref, allow_pickle=True) != "folder":
        raise PromptkitError(f"`model info` reads a local diffusers folder; {model_ref!r} is not one")
    data = detect_family(model_ref)
    data["default_size"] = FAMILIES[data["family"]]["size"]
    emit(data, as_json, f"{model_ref}: {FAMILIES[data['family']]['label']} ({data['pipeline']}), "
                        f"{data['prediction_type']}, inpainting: {'yes' if data['inpainting'] else 'no'}, "
                        f"family default size {data['default_size']}")


COMMANDS = [model]
