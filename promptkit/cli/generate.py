"""Generating commands: generate, reproduce, iterate and the offline demo."""

from __future__ import annotations

import sys
from typing import Any

import click

from .options import (lazy_module, ProgressBar, batch_size_option, emit, engine_options, engine_options_dict, input_options,
                      json_option, lora_dir_option, no_engine_option, open_library, params_from, pop_input_request,
                      print_generations, quiet_option, report_outcome, sampling_options, saved_on_abort,
                      templates_option)

service = lazy_module("promptkit.service.generation")


@click.command()
@click.argument("prompt")
@click.option("--model", required=True, envvar="PROMPTKIT_MODEL",
              help="Diffusers folder, .safetensors file or hub id (env: PROMPTKIT_MODEL).")
@click.option("--seeds", default="1-4", show_default=True, help="List 1,2,3, range 1-8, or random:N.")
@sampling_options
@click.option("--true-cfg", "true_cfg_scale", type=float, default=None,
              help="FLUX.1 and Qwen-Image: true CFG; above 1 the negative prompt is read (twice the compute).")
@click.option("--max-sequence-length", type=int, default=None,
              help="T5/LLM families: the text encoder's window in tokens (default: the family's; see "
                   "`promptkit families`).")
@batch_size_option
@input_options
@engine_options
@quiet_option
@click.option("--profile", is_flag=True, help="Print where the time went (load, text encoding, denoising, ...).")
@no_engine_option
@json_option
@click.pass_context
def generate(ctx, prompt, model, seeds, steps, cfg, sampler, width, height, true_cfg_scale, max_sequence_length,
             batch_size, noise_device, quiet, profile, no_engine, as_json, **engine_flags) -> None:
    """Generate images of a saved PROMPT (id or name) on fixed seeds; store every image.

    Runs on the warm engine (`promptkit worker start`) when one is up, else in this process.
    """
    from ..family_rules import check_generation_options
    from ..params import parse_batch_size, parse_seeds

    request = pop_input_request(engine_flags)
    request.true_cfg_scale, request.max_sequence_length = true_cfg_scale, max_sequence_length
    chosen = ctx.get_parameter_source("sampler") not in (click.core.ParameterSource.DEFAULT, None)
    check_generation_options(model, inputs=request, sampler=sampler if chosen else None)
    params = params_from(steps, cfg, sampler, width, height, noise_device, model)
    seed_list, batch_size = parse_seeds(seeds), parse_batch_size(batch_size)
    with saved_on_abort(ctx, f"`promptkit show {prompt}` lists them"), open_library(ctx) as lib, \
            ProgressBar(quiet) as bar:
        result = service.generate(lib, prompt, model, seed_list, params=params, inputs=request, batch_size=batch_size,
                                  engine_options=engine_options_dict(**engine_flags), profile=profile,
                                  use_engine=not no_engine, progress=bar)
    if as_json:
        emit(result["generations"], True)
    else:
        print_generations(result["generations"])
    report_outcome(result, profile)
    if result["interrupted"]:
        click.echo(f"interrupted: stopped after saving {len(result['generations'])} of {len(seed_list)} images",
                   err=True)
        sys.exit(130)


@click.command()
@click.argument("generation_id", type=int)
@engine_options
@json_option
@click.pass_context
def reproduce(ctx, generation_id: int, as_json: bool, **engine_flags) -> None:
    """Regenerate an image from the library alone; exit 1 unless its sha256 matches.

    An image imported from another tool is re-run when its model is available locally and its
    settings map onto promptkit's (its pixels will not match that tool's byte for byte); else one
    line says why it cannot be."""
    with open_library(ctx, create=False) as lib:
        result = service.reproduce(lib, generation_id, engine_options_dict(**engine_flags))
    verdict = "match" if result["match"] else "re-ran" if result.get("imported") else "MISMATCH"
    emit(result, as_json, f"generation {generation_id}: {verdict} "
                          f"(stored {result['stored_sha256'][:16]}, new {result['new_sha256'][:16]})")
    if not as_json:
        for note in result["notes"]:
            click.echo(f"note: {note}")
    if not result["match"] and not result.get("imported"):  # another tool's image re-run: never the same bytes
        sys.exit(1)


def _print_iteration(data: dict[str, Any]) -> None:
    click.echo(f"prompt {data['id']} (child of {data['parent_id']}): {data['child']['positive']}")
    for key, change in data["fields"].items():
        click.echo(f"  {key}: {change['from']!r} → {change['to']!r}")
    for kind in ("positive", "negative"):
        diff = data[kind]
        if diff["added"] or diff["removed"]:
            click.echo(f"  {kind}: " + " ".join([f"+[{t}]" for t in diff["added"]] + [f"-[{t}]" for t in diff["removed"]]))
    print_generations(data["generations"])


@click.command()
@click.argument("prompt")
@click.option("--set", "changes", multiple=True, metavar="FIELD=VALUE",
              help="Change a field (subject, action, environment, style, quality, negative, or a template extra); "
                   "list fields take comma-separated preset names.")
@click.option("--subject", default=None)
@click.option("--action", default=None)
@click.option("--environment", default=None)
@click.option("--style", default=None, help="Comma-separated style presets.")
@click.option("--quality", default=None, help="Comma-separated quality presets.")
@click.option("--name", default=None, help="Name for the child prompt.")
@click.option("--model", default=None, help="Model (default: the parent's last one).")
@click.option("--seeds", default=None, help="Seeds (default: the parent's).")
@click.option("--no-generate", is_flag=True, help="Only save the child prompt.")
@lora_dir_option("Folder for <lora:NAME> tags the parent did not have (env: PROMPTKIT_LORA_DIR).")
@engine_options
@templates_option
@quiet_option
@no_engine_option
@json_option
@click.pass_context
def iterate(ctx, prompt, changes, subject, action, environment, style, quality, name, model, seeds, no_generate,
            lora_dir, templates_dir, quiet, no_engine, as_json, **engine_flags) -> None:
    """Make a child of PROMPT that changes one thing; generate it on the parent's seeds and parameters.

    Everything else the parent's last images used comes along: init image, mask, ControlNets,
    LoRAs and refiner. `<lora:NAME:SCALE>` tags in the child use the parent's file for a NAME it
    had and the LoRA folder for a new one.
    """
    from ..templates import parse_extras

    wanted = parse_extras(changes)
    named = {"subject": subject, "action": action, "environment": environment, "style": style, "quality": quality}
    wanted.update({key: value for key, value in named.items() if value is not None})
    with open_library(ctx) as lib, ProgressBar(quiet) as bar:
        data = service.iterate(lib, prompt, wanted, name=name, model=model, seeds=seeds, generate=not no_generate,
                               lora_dir=lora_dir, templates_dir=templates_dir,
                               engine_options=engine_options_dict(**engine_flags), use_engine=not no_engine,
                               progress=bar)
    if as_json:
        emit({key: value for key, value in data.items() if key != "child"}, True)
    else:
        _print_iteration(data)


@click.command()
@click.option("--model-dir", default="tiny-sd", show_default=True, type=click.Path(file_okay=False),
              help="Where to write (or find) the tiny random-weight model.")
@json_option
@click.pass_context
def demo(ctx, model_dir: str, as_json: bool) -> None:
    """Offline quick start: tiny model, an A/B experiment of prompts A and B on the same seeds."""
    with open_library(ctx) as lib:
        summary = service.demo(lib, model_dir, say=(lambda _m: None) if as_json else click.echo)
        path = lib.path
    if as_json:
        emit(summary, True)
    else:
        click.echo(f"library: {path}")


COMMANDS = [generate, reproduce, iterate, demo]
