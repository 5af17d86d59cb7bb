"""The shared click options and output helpers of every `promptkit` command module (no torch here).

Command modules import this module and the service layer, never each other or the package.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from ..errors import rename_parameters

if TYPE_CHECKING:
    from ..library import Library


# The Python API's parameter names, as errors name them (`batch_size`), and the flag a person typed.
FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "steps", "cfg", "sampler", "width", "height", "noise_device", "batch_size", "seeds", "model", "init_image",
    "strength", "mask", "mask_blur", "lora_dir", "refiner", "refiner_switch", "control_image", "control_module",
    "control_scale", "control_start", "control_end", "family", "max_sequence_length")}
FLAGS["true_cfg_scale"] = "--true-cfg"


def name_flags(message: str, keep: tuple[str, ...] = ()) -> str:
    """MESSAGE with each internal parameter name (`batch_size`) replaced by its flag (--batch-size):
    the CLI's errors speak of what the person typed; the Python API keeps its names. Names in KEEP
    stay as they are (in `ab` commands a variant's `KEY=VALUE` override uses the parameter's name)."""
    return rename_parameters(message, {name: flag for name, flag in FLAGS.items() if name not in keep})


def lazy_module(name: str) -> ModuleType:
    """Module NAME, executed on its first attribute access (importlib's LazyLoader recipe), so that
    `promptkit --help` and `build` do not import what other commands need (the library, sqlite-utils)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def json_option(func):
    """`--json`: print one JSON document instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(func)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print DATA as JSON with `--json`, else TEXT (when given)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    elif text is not None:
        click.echo(text)


def templates_option(func):
    """`--templates`: the person's template folder (env PROMPTKIT_TEMPLATES)."""
    return click.option(
        "--templates", "templates_dir", type=click.Path(file_okay=False), envvar="PROMPTKIT_TEMPLATES",
        help="Your template folder, searched before the packaged one (env: PROMPTKIT_TEMPLATES).",
    )(func)


def open_library(ctx: click.Context, create: bool = True) -> Library:
    """The library named by the global `--db` (or PROMPTKIT_DB, or ./library.db)."""
    from ..library import Library

    return Library(ctx.obj["db"], create=create)


@contextlib.contextmanager
def saved_on_abort(ctx: click.Context, hint: str):
    """A second Ctrl-C stops a run at once: say how many images were saved before it (not only
    "Aborted!") and HINT (how to finish), then exit 130 as the first Ctrl-C's clean stop does."""
    with open_library(ctx) as lib:
        before = lib.newest_generation_id()
    try:
        yield
    except KeyboardInterrupt:
        with open_library(ctx, create=False) as lib:
            saved = max(0, lib.newest_generation_id() - before)
        click.echo(f"\nstopped at once (second Ctrl-C): {saved} image{'' if saved == 1 else 's'} saved to "
                   f"{lib.path}; {hint}", err=True)
        sys.exit(130)


def _apply(func, options):
    for option in reversed(options):
        func = option(func)
    return func


def engine_options(func):
    """Device, dtype, pickle and memory options of the commands that load a model."""
    return _apply(func, [
        click.option("--device", default=None, help="cuda, mps or cpu (default: the best available)."),
        click.option("--dtype", default=None, help="float16, bfloat16 or float32 (default: fp16 on GPU, fp32 on CPU)."),
        click.option("--allow-pickle", is_flag=True, help="Allow a .ckpt/.bin pickle checkpoint (can run code)."),
        click.option("--cpu-offload", is_flag=True, help="Model CPU offload (saves GPU memory, slower)."),
        click.option("--attention-slicing", is_flag=True, help="Attention slicing (saves memory)."),
        click.option("--vae-slicing", is_flag=True, help="Decode the batch one image at a time."),
        click.option("--vae-tiling", is_flag=True, help="Decode in tiles (large images)."),
        click.option("--compile", "compile_unet", is_flag=True, help="torch.compile the UNet."),
        click.option("--config", "config_dir", type=click.Path(file_okay=False), default=None,
                     help="Diffusers folder whose configs a single .safetensors --model uses (offline)."),
    ])


def engine_options_dict(device, dtype, allow_pickle, cpu_offload, attention_slicing, vae_slicing, vae_tiling,
                        compile_unet, config_dir=None) -> dict[str, Any]:
    """The `engine_options` flags as `EngineOptions` keyword arguments."""
    return {"device": device, "dtype": dtype, "allow_pickle": allow_pickle, "cpu_offload": cpu_offload,
            "attention_slicing": attention_slicing, "vae_slicing": vae_slicing, "vae_tiling": vae_tiling,
            "compile": compile_unet, "config": config_dir}


def no_engine_option(func):
    """`--no-engine`: generate in this process even if a warm engine is up."""
    return click.option("--no-engine", is_flag=True,
                        help="Generate in this process even if a warm engine (`promptkit worker start`) is running.")(func)


def quiet_option(func):
    """`--quiet/-q`: no progress bar."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(func)


def batch_size_option(func):
    """`--batch-size`: images per pipeline call, or auto."""
    return click.option("--batch-size", default="auto", show_default=True,
                        help="Images per pipeline call, or 'auto' (from free GPU memory; 4 on CPU).")(func)


def sampling_options(func):
    """Steps, CFG, sampler, size and noise device: shared by generate, ab new and ab xy."""
    return _apply(func, [
        click.option("--steps", type=int, default=None,
                     help="Denoising steps (default: the model family's: 25 for SD; 28 for FLUX.1 dev, 4 for schnell; "
                          "`promptkit families`)."),
        click.option("--cfg", type=float, default=None,
                     help="Guidance scale, sent to the family's own guidance argument (default: the family's: 7 for "
                          "SD; 3.5 embedded guidance for FLUX.1 dev, 0 for schnell; `promptkit families`)."),
        click.option("--sampler", default="DPM++ 2M Karras", show_default=True, help="See the README's sampler table."),
        click.option("--width", type=int, default=None, help="Multiple of 8 (default: the model's native size)."),
        click.option("--height", type=int, default=None, help="Multiple of 8 (default: the model's native size)."),
        click.option("--noise-device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
                     help="Where initial noise is drawn: cpu (same on every machine) or gpu (A1111's default)."),
    ])


def params_from(steps, cfg, sampler, width, height, noise_device, model=None):
    """The sampling options as `GenerationParams`; `--steps`/`--cfg` not given: MODEL's family defaults."""
    from ..params import GenerationParams

    if steps is None or cfg is None:
        from ..family_rules import family_defaults

        default_steps, default_cfg = family_defaults(model)
        steps = default_steps if steps is None else steps
        cfg = default_cfg if cfg is None else cfg

    return GenerationParams(sampler=sampler, steps=steps, cfg=cfg, width=width, height=height,
                            noise_device=noise_device)


def lora_dir_option(help: str):
    """`--lora-dir` (env PROMPTKIT_LORA_DIR): where `<lora:NAME>` tags resolve; HELP says for what."""
    return click.option("--lora-dir", type=click.Path(file_okay=False), envvar="PROMPTKIT_LORA_DIR", default=None,
                        help=help)


def input_options(func):
    """img2img, inpainting, LoRA and ControlNet options, shared by the commands that generate."""
    return _apply(func, [
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
    ])


INPUT_OPTION_NAMES = ("init_image", "strength", "mask", "mask_blur", "loras", "lora_dir", "controlnets",
                      "control_images", "control_modules", "control_scales", "control_starts", "control_ends", "refiner",
                      "refiner_switch")


def pop_input_request(flags: dict):
    """Take the input options out of a command's keyword arguments as an InputRequest."""
    from ..inputs import InputRequest

    values = {name: flags.pop(name) for name in INPUT_OPTION_NAMES}
    for name in ("loras", "controlnets", "control_images", "control_modules", "control_scales", "control_starts",
                 "control_ends"):
        values[name] = list(values[name] or [])
    return InputRequest(**values)


class ProgressBar:
    """Images done / total with a rate, on a terminal only; the bar appears with the first image."""

    def __init__(self, quiet: bool) -> None:
        self.show = not quiet and sys.stderr.isatty()
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.show and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc="generating", file=sys.stderr)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def print_generations(generations: list[dict[str, Any]]) -> None:
    """One line per stored image: id, seed, file."""
    for gen in generations:
        click.echo(f"{gen['id']:>6}  seed {gen['seed']:<10} {gen['image_path']}")


def report_outcome(result: dict[str, Any], profile: bool) -> None:
    """Warnings (OOM retries, black images) and, with --profile, a table of where the time went; on stderr."""
    for note in result["notes"]:
        click.echo(f"warning: {note}", err=True)
    if not profile:
        return
    if result.get("engine"):
        rows = [("model load (paid once by the warm engine)", result["load_seconds"])]
    else:
        rows = [("model load (this process)", result["load_seconds"])]
    names = {"text_encoding": "text encoding", "denoising": "denoising (UNet)", "vae_decode": "VAE decode",
             "png_encode": "PNG encode + hash (writer thread)", "database": "file + database write (writer thread)"}
    rows += [(label, result["timings"][key]) for key, label in names.items() if key in result["timings"]]
    images = max(1, len(result["generations"]))
    click.echo(f"{'stage':<44}{'seconds':>10}{'ms/image':>10}", err=True)
    for label, seconds in rows:
        click.echo(f"{label:<44}{seconds:>10.3f}{1000 * seconds / images:>10.1f}", err=True)
    click.echo("writer-thread stages overlap the next batch's denoising", err=True)
