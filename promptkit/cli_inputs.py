"""Options of `generate` beyond text-to-image: init image, mask, LoRA, ControlNet (no torch here)."""

from __future__ import annotations

import click


def lora_dir_option(help: str):
    """`--lora-dir` (env PROMPTKIT_LORA_DIR): where `<lora:NAME>` tags resolve; HELP says for what."""
    return click.option("--lora-dir", type=click.Path(file_okay=False), envvar="PROMPTKIT_LORA_DIR", default=None,
                        help=help)


def input_options(func):
    """img2img, inpainting, LoRA and ControlNet options, shared by the commands that generate."""
    options = [
        click.option("--init-image", type=click.Path(dir_okay=False), default=None,
                     help="img2img: start from this image (with --mask: inpaint it)."),
        click.option("--strength", type=float, default=None,
                     help="How much of the init image to repaint, 0 < S <= 1 (default 0.75; 1.0 when inpainting)."),
        click.option("--mask", type=click.Path(dir_okay=False), default=None,
                     help="Inpainting mask, white = repaint; must be the init image's size."),
        click.option("--mask-blur", type=int, default=None, help="Gaussian blur radius for the mask edge (pixels)."),
        click.option("--lora", "loras", multiple=True, metavar="PATH[:SCALE]",
                     help="A .safetensors LoRA and its scale (default 1); repeatable."),
        lora_dir_option("Folder for <lora:NAME:SCALE> tags in the prompt (env: PROMPTKIT_LORA_DIR)."),
        click.option("--controlnet", "controlnets", multiple=True, metavar="MODEL",
                     help="ControlNet folder or hub id; repeatable, each with its --control-image."),
        click.option("--control-image", "control_images", multiple=True, type=click.Path(dir_okay=False),
                     help="Control image for the ControlNet in the same position; repeatable."),
        click.option("--control-module", "control_modules", multiple=True, type=click.Choice(["canny", "none"]),
                     help="Preprocessor: canny (edge map from a photo) or none (default); once, or once each."),
        click.option("--control-scale", "control_scales", multiple=True, type=float,
                     help="ControlNet weight (default 1); once, or once each."),
        click.option("--control-start", "control_starts", multiple=True, type=float,
                     help="Fraction of the steps where the ControlNet starts (default 0)."),
        click.option("--control-end", "control_ends", multiple=True, type=float,
                     help="Fraction of the steps where the ControlNet stops (default 1)."),
        click.option("--refiner", default=None, metavar="MODEL",
                     help="SDXL refiner (folder or hub id): it takes over the denoising at --refiner-switch."),
        click.option("--refiner-switch", type=float, default=None,
                     help="Fraction of the steps done by the base before the refiner (default 0.8)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


INPUT_OPTION_NAMES = ("init_image", "strength", "mask", "mask_blur", "loras", "lora_dir", "controlnets",
                      "control_images", "control_modules", "control_scales", "control_starts", "control_ends", "refiner",
                      "refiner_switch")


def pop_input_request(flags: dict):
    """Take the input options out of a command's keyword arguments as an InputRequest."""
    from .inputs import InputRequest

    values = {name: flags.pop(name) for name in INPUT_OPTION_NAMES}
    for name in ("loras", "controlnets", "control_images", "control_modules", "control_scales", "control_starts",
                 "control_ends"):
        values[name] = list(values[name] or [])
    return InputRequest(**values)
