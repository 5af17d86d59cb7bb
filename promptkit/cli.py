"""The `promptkit` command line: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

import click

from . import __version__
from .cli_inputs import input_options, pop_input_request
from .errors import PromptkitError
from .library import SEARCH_RANK_LIMIT, Library

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class PromptkitGroup(click.Group):
    """Turns every PromptkitError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptkitError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"library error: {exc}") from None


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(func)


def templates_option(func):
    return click.option(
        "--templates", "templates_dir", type=click.Path(file_okay=False), envvar="PROMPTKIT_TEMPLATES",
        help="Your template folder, searched before the packaged one (env: PROMPTKIT_TEMPLATES).",
    )(func)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    elif text is not None:
        click.echo(text)


def open_library(ctx: click.Context, create: bool = True) -> Library:
    return Library(ctx.obj["db"], create=create)


@click.group(cls=PromptkitGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="promptkit")
@click.option("--db", type=click.Path(dir_okay=True), envvar="PROMPTKIT_DB", default=None,
              help="Library file (default ./library.db; env: PROMPTKIT_DB).")
@click.pass_context
def main(ctx: click.Context, db: str | None) -> None:
    """promptkit: author prompts from fields, generate seed-locked images, keep a prompt library.

    Quick start offline: `promptkit model tiny ./tiny-sd`, then
    `promptkit build --subject "a lighthouse" --style watercolor --save first` and
    `promptkit generate first --model ./tiny-sd --seeds 1-4`.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


@main.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create the library (safe to run again)."""
    with open_library(ctx) as lib:
        data = {"db": str(lib.path), "images": str(lib.images_dir), "schema": lib.schema_version()}
    emit(data, as_json, f"library ready: {data['db']} (images in {data['images']}, schema {data['schema']})")


@main.command()
@click.option("--kind", type=click.Choice(["style", "quality", "negative"]), help="Only this kind of preset.")
@templates_option
@json_option
def presets(kind: str | None, templates_dir: str | None, as_json: bool) -> None:
    """List style, quality and negative presets with their descriptions."""
    from .templates import PromptBuilder

    found = PromptBuilder(templates_dir).presets(kind)
    data = [{"kind": p.kind, "name": p.name, "description": p.description, "positive": p.positive,
             "negative": p.negative} for p in found]
    emit(data, as_json, "\n".join(f"{p.kind:<9} {p.name:<16} {p.description}" for p in found))


@main.command("templates")
@templates_option
@json_option
def list_templates(templates_dir: str | None, as_json: bool) -> None:
    """List the templates you can pass to --template."""
    from .templates import PromptBuilder

    builder = PromptBuilder(templates_dir)
    data = []
    for name in builder.template_names():
        _, filename = builder.template_source(name)
        data.append({"name": name, "file": filename, "digest": builder.template_digest(name)})
    emit(data, as_json, "\n".join(f"{d['name']:<16} {d['file']}" for d in data))


@main.command()
@click.option("--subject", default="", help="What the image is of.")
@click.option("--action", default="", help="What the subject is doing.")
@click.option("--environment", default="", help="Where: setting, background, light.")
@click.option("--style", multiple=True, help="Style preset name (repeatable); see `promptkit presets`.")
@click.option("--quality", multiple=True, help="Quality preset name (repeatable).")
@click.option("--negative", multiple=True, help="Your own negative terms (repeatable).")
@click.option("--negative-preset", default="standard", show_default=True, help="Negative preset ('none' for none).")
@click.option("--template", default="default", show_default=True, help="Template NAME (the file NAME.j2).")
@click.option("--set", "extras", multiple=True, metavar="KEY=VALUE", help="Extra field for the template.")
@click.option("--weight", "weights", multiple=True, metavar="FIELD=WEIGHT",
              help="Weight a field A1111-style, e.g. subject=1.3 -> (a fox:1.3) (repeatable; 0 < WEIGHT <= 2).")
@click.option("--save", "save_name", default=None, help="Store the prompt in the library under this name.")
@click.option("--parent", default=None, help="Prompt id or name this one was iterated from.")
@click.option("--tag", "tags", multiple=True, help="Tag to store with --save (repeatable).")
@click.option("--model", default=None, help="Use this model's own tokenizer for token counts "
                                             "(with --guided: also generate with it after saving).")
@click.option("--guided", is_flag=True, help="Ask for each field in turn on the terminal.")
@templates_option
@json_option
@click.pass_context
def build(ctx, subject, action, environment, style, quality, negative, negative_preset, template, extras,
          weights, save_name, parent, tags, model, guided, templates_dir, as_json) -> None:
    """Render a prompt from fields and check it (tokens, overflow, duplicates, contradictions)."""
    from .lint import lint_prompt
    from .templates import Fields, PromptBuilder, parse_extras, parse_weights

    builder = PromptBuilder(templates_dir)
    if guided:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise click.ClickException("--guided needs a terminal; without one pass the fields as flags "
                                       "(--subject, --style, ...)")
        from .guided import guided_fields

        fields = guided_fields(lambda q, d: click.prompt(q, default=d, show_default=bool(d)), click.echo,
                               builder, template, model)
        fields.extras = parse_extras(extras)
        fields.weights = parse_weights(weights)
        if save_name is None:
            save_name = click.prompt("Save as (a name; Enter for none)", default="", show_default=False) or None
        if save_name is None:
            save_name = ""
    else:
        fields = Fields(subject=subject, action=action, environment=environment, style=list(style),
                        quality=list(quality), negative=list(negative),
                        negative_preset="" if negative_preset == "none" else negative_preset,
                        extras=parse_extras(extras), weights=parse_weights(weights))
    prompt = builder.render(fields, template)
    report = lint_prompt(prompt.positive, prompt.negative, model=model, notes=prompt.notes)
    prompt_id = None
    if save_name is not None or parent is not None:
        with open_library(ctx) as lib:
            parent_id = lib.get_prompt(parent)["id"] if parent else None
            prompt_id = lib.save_prompt(prompt, name=save_name or None, parent_id=parent_id, tags=list(tags))
    tokens = {"positive": report.positive.count if report.positive else None,
              "negative": report.negative.count if report.negative else None,
              "limit": report.positive.limit if report.positive else None, "tokenizer": report.tokenizer}
    data = {"id": prompt_id, "positive": prompt.positive, "negative": prompt.negative, "tokens": tokens,
            "warnings": report.warnings, "template": prompt.template, "template_digest": prompt.template_digest}
    if as_json:
        emit(data, True)
        return
    click.echo(f"positive: {prompt.positive}")
    click.echo(f"negative: {prompt.negative}")
    if report.tokenizer:
        click.echo(f"tokens:   {tokens['positive']} positive, {tokens['negative']} negative "
                   f"(window {tokens['limit']}; {report.tokenizer})")
    else:
        click.echo("tokens:   no tokenizer available; counts skipped")
    for warning in report.warnings:
        click.echo(f"warning:  {warning}")
    if prompt_id is not None:
        click.echo(f"saved as prompt {prompt_id}" + (f" ({save_name})" if save_name else ""))
    if guided and model and prompt_id is not None:
        ctx.invoke(generate, prompt=str(prompt_id), model=model)


def engine_options(func):
    options = [
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
    ]
    for option in reversed(options):
        func = option(func)
    return func


def engine_options_dict(device, dtype, allow_pickle, cpu_offload, attention_slicing, vae_slicing, vae_tiling,
                        compile_unet, config_dir=None) -> dict[str, Any]:
    return {"device": device, "dtype": dtype, "allow_pickle": allow_pickle, "cpu_offload": cpu_offload,
            "attention_slicing": attention_slicing, "vae_slicing": vae_slicing, "vae_tiling": vae_tiling,
            "compile": compile_unet, "config": config_dir}


def make_engine(model, **engine_flags):
    from .params import check_model_ref

    check_model_ref(model, engine_flags.get("allow_pickle", False))
    from .engine import Engine, EngineOptions

    return Engine.get(model, EngineOptions(**engine_options_dict(**engine_flags)))


def resolve_model(model: str, allow_pickle: bool = False) -> str:
    """Check MODEL before any heavy import; local paths become absolute so a warm engine finds them."""
    from .params import resolve_model as resolve

    return resolve(model, allow_pickle)


def no_engine_option(func):
    return click.option("--no-engine", is_flag=True,
                        help="Generate in this process even if a warm engine (`promptkit worker start`) is running.")(func)


def run_generation_spec(spec: dict[str, Any], total: int, quiet: bool, no_engine: bool) -> dict[str, Any]:
    """Send the job to the warm engine when one is up, else run it here; with a progress bar."""
    from .worker import run_anywhere

    bar = ProgressBar(total, quiet)
    try:
        return run_anywhere(spec, progress=bar, use_engine=not no_engine)
    finally:
        bar.close()


class ProgressBar:
    """Images done / total with a rate, on a terminal only."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc="generating", file=sys.stderr)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def sampling_options(func):
    """Steps, CFG, sampler, size and noise device: shared by generate, ab new and ab xy."""
    options = [
        click.option("--steps", type=int, default=25, show_default=True, help="Denoising steps."),
        click.option("--cfg", type=float, default=7.0, show_default=True, help="Classifier-free guidance scale."),
        click.option("--sampler", default="DPM++ 2M Karras", show_default=True, help="See the README's sampler table."),
        click.option("--width", type=int, default=None, help="Multiple of 8 (default: the model's native size)."),
        click.option("--height", type=int, default=None, help="Multiple of 8 (default: the model's native size)."),
        click.option("--noise-device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
                     help="Where initial noise is drawn: cpu (same on every machine) or gpu (A1111's default)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def params_from(steps, cfg, sampler, width, height, noise_device):
    from .params import GenerationParams

    return GenerationParams(sampler=sampler, steps=steps, cfg=cfg, width=width, height=height,
                            noise_device=noise_device)


@main.command()
@click.argument("prompt")
@click.option("--model", required=True, envvar="PROMPTKIT_MODEL",
              help="Diffusers folder, .safetensors file or hub id (env: PROMPTKIT_MODEL).")
@click.option("--seeds", default="1-4", show_default=True, help="List 1,2,3, range 1-8, or random:N.")
@sampling_options
@click.option("--batch-size", default="auto", show_default=True,
              help="Images per pipeline call, or 'auto' (from free GPU memory; 4 on CPU).")
@input_options
@engine_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--profile", is_flag=True, help="Print where the time went (load, text encoding, denoising, ...).")
@no_engine_option
@json_option
@click.pass_context
def generate(ctx, prompt, model, seeds, steps, cfg, sampler, width, height, batch_size, noise_device, quiet,
             profile, no_engine, as_json, **engine_flags) -> None:
    """Generate images of a saved PROMPT (id or name) on fixed seeds; store every image.

    Runs on the warm engine (`promptkit worker start`) when one is up, else in this process.
    """
    from .inputs import prepare_inputs
    from .worker import run_anywhere
    from .params import parse_batch_size, parse_seeds

    request = pop_input_request(engine_flags)
    params = params_from(steps, cfg, sampler, width, height, noise_device)
    seed_list = parse_seeds(seeds)
    batch_size = parse_batch_size(batch_size)
    with open_library(ctx) as lib:
        prompt_row = lib.get_prompt(prompt)
        model = resolve_model(model, engine_flags["allow_pickle"])
        # Check every input, then the model's family against LoRAs and ControlNets, before writing anything.
        prepared = prepare_inputs(request, prompt_row["positive"])
        if prepared.extra:
            # The loaded model vets the inputs (its family, its UNet): the warm engine's when one is up.
            check = {"kind": "check", "model": model, "engine_options": engine_options_dict(**engine_flags),
                     "extra": prepared.extra}
            if run_anywhere(check, use_engine=not no_engine)["engine"] is None:
                no_engine = True  # the model is loaded in this process now: generate here, not load it twice
        params.extra = prepared.store(lib)
        db_path = str(lib.path.resolve())
    spec = {"kind": "generate", "db": db_path, "model": model, "engine_options": engine_options_dict(**engine_flags),
            "prompt_id": prompt_row["id"], "params": params.to_dict(), "seeds": seed_list, "batch_size": batch_size,
            "profile": profile}
    result = run_generation_spec(spec, len(seed_list), quiet, no_engine)
    if as_json:
        emit(result["generations"], True)
    else:
        for gen in result["generations"]:
            click.echo(f"{gen['id']:>6}  seed {gen['seed']:<10} {gen['image_path']}")
    report_outcome(result, profile)
    if result["interrupted"]:
        click.echo(f"interrupted: stopped after saving {len(result['generations'])} of {len(seed_list)} images",
                   err=True)
        sys.exit(130)


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


@main.command()
@click.argument("generation_id", type=int)
@click.argument("stars", type=int)
@click.option("--note", default="", help="A short note on the image.")
@json_option
@click.pass_context
def rate(ctx, generation_id: int, stars: int, note: str, as_json: bool) -> None:
    """Rate a generated image 1 to 5 stars."""
    with open_library(ctx, create=False) as lib:
        rating_id = lib.rate(generation_id, stars, note)
    emit({"id": rating_id, "generation_id": generation_id, "stars": stars, "note": note}, as_json,
         f"rated generation {generation_id}: {'*' * stars}")


def _prompt_line(p: dict[str, Any]) -> str:
    name = f" [{p['name']}]" if p.get("name") else ""
    return f"{p['id']:>6}{name}  {p['positive']}"


@main.command(help=f"""Full-text search over saved prompts (name, text, tags, notes), best match first.

    Every word must match. A query matching more than {SEARCH_RANK_LIMIT:,} prompts ranks only the newest
    {SEARCH_RANK_LIMIT:,} of them, which keeps a search fast in a large library.
    """)
@click.argument("query")
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
@click.pass_context
def search(ctx, query: str, limit: int, as_json: bool) -> None:
    with open_library(ctx, create=False) as lib:
        rows = lib.search(query, limit)
    emit(rows, as_json, "\n".join(_prompt_line(r) for r in rows) or "no matches")


@main.command("prompts")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def list_prompts(ctx, limit: int, as_json: bool) -> None:
    """List saved prompts, newest first."""
    with open_library(ctx, create=False) as lib:
        rows = lib.list_prompts(limit)
    emit(rows, as_json, "\n".join(_prompt_line(r) for r in rows) or "no prompts yet")


@main.command()
@click.argument("prompt")
@click.option("--with-images", is_flag=True,
              help="Also delete the prompt's generation rows and their ratings (the image files stay until "
                   "`promptkit doctor --fix` quarantines those no row uses).")
@json_option
@click.pass_context
def delete(ctx, prompt: str, with_images: bool, as_json: bool) -> None:
    """Delete a saved PROMPT (id or name).

    A prompt with images needs --with-images. A prompt that is a variant of an experiment, has
    images voted on, or has iterations is kept, with the reason; nothing is changed then.
    """
    with open_library(ctx, create=False) as lib:
        result = lib.delete_prompt(prompt, with_generations=with_images)
    label = result["name"] or result["id"]
    emit(result, as_json, f"deleted prompt {label!r}" + (
        f" with {result['generations_deleted']} generation rows and {result['ratings_deleted']} ratings; image "
        "files no row uses are quarantined by `promptkit doctor --fix`" if result["generations_deleted"] else ""))


@main.command()
@click.argument("prompt")
@json_option
@click.pass_context
def show(ctx, prompt: str, as_json: bool) -> None:
    """Show a prompt (id or name) with its generations and ratings."""
    with open_library(ctx, create=False) as lib:
        data = lib.show_prompt(prompt)
    if as_json:
        emit(data, True)
        return
    click.echo(_prompt_line(data))
    click.echo(f"  negative: {data['negative']}")
    click.echo(f"  template: {data['template']} ({data['template_digest'][:12]})  created {data['created_at']}")
    for gen in data["generations"]:
        stars = "*" * (gen["stars"] or 0)  # its current rating (the latest)
        click.echo(f"  gen {gen['id']:>5} seed {gen['seed']:<8} {gen['sampler']} {gen['steps']} steps "
                   f"cfg {gen['cfg']:g} {gen['width']}x{gen['height']}  {gen['image_path']}  {stars}")


@main.command()
@click.argument("generation_id", type=int)
@engine_options
@json_option
@click.pass_context
def reproduce(ctx, generation_id: int, as_json: bool, **engine_flags) -> None:
    """Regenerate an image from the library alone; exit 1 unless its sha256 matches."""
    from .generation import reproduce as reproduce_generation

    with open_library(ctx, create=False) as lib:
        gen = lib.get_generation(generation_id)
        engine = make_engine(gen["model"], **engine_flags)
        result = reproduce_generation(lib, engine, generation_id)
    emit(result, as_json, f"generation {generation_id}: {'match' if result['match'] else 'MISMATCH'} "
                          f"(stored {result['stored_sha256'][:16]}, new {result['new_sha256'][:16]})")
    if not as_json:
        for note in result["notes"]:
            click.echo(f"note: {note}")
    if not result["match"]:
        sys.exit(1)


@main.group()
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
    from .tinymodel import TINY_NOTE, write_tiny_pipeline

    folder = write_tiny_pipeline(path, kind=kind, base=base)
    emit({"path": str(folder), "kind": kind}, as_json, f"wrote {folder} ({kind}): {TINY_NOTE}")


@model.command("info")
@click.argument("model_ref")
@json_option
def model_info(model_ref: str, as_json: bool) -> None:
    """Family (SD 1.x, SD 2.x, SDXL), pipeline class and native size of a local diffusers folder."""
    from .families import FAMILIES, detect_family
    from .params import check_model_ref

    if check_model_ref(model_ref, allow_pickle=True) != "folder":
        raise PromptkitError(f"`model info` reads a local diffusers folder; {model_ref!r} is not one")
    data = detect_family(model_ref)
    data["default_size"] = FAMILIES[data["family"]]["size"]
    emit(data, as_json, f"{model_ref}: {FAMILIES[data['family']]['label']} ({data['pipeline']}), "
                        f"{data['prediction_type']}, inpainting: {'yes' if data['inpainting'] else 'no'}, "
                        f"family default size {data['default_size']}")


@main.command()
@click.option("--model-dir", default="tiny-sd", show_default=True, type=click.Path(file_okay=False),
              help="Where to write (or find) the tiny random-weight model.")
@json_option
@click.pass_context
def demo(ctx, model_dir: str, as_json: bool) -> None:
    """Offline quick start: tiny model, an A/B experiment of prompts A and B on the same seeds."""
    from pathlib import Path

    from .demo import run_demo

    with open_library(ctx) as lib:
        summary = run_demo(lib, Path(model_dir), say=(lambda _m: None) if as_json else click.echo)
        path = lib.path
    if as_json:
        emit(summary, True)
    else:
        click.echo(f"library: {path}")


from .cli_ab import register as _register_ab  # noqa: E402
from .cli_web import register as _register_web  # noqa: E402
from .cli_worker import register as _register_worker  # noqa: E402
from .cli_maintenance import register as _register_maintenance  # noqa: E402

_register_ab(main)
_register_web(main)
_register_worker(main)
_register_maintenance(main)
