"""Prompt commands: init, presets, templates, build, rate, search, prompts, show, delete, history."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..library import SEARCH_RANK_LIMIT
from ..service import prompts as service
from .options import emit, json_option, open_library, templates_option

family_option = click.option(
    "--family", default=None, metavar="KEY",
    help="The model family to lint for when no --model says it: sd1, sd2, sdxl, sd3, flux, flux2-klein, zimage, "
         "qwenimage, chroma (see `promptkit families`).")


@click.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create the library (safe to run again)."""
    with open_library(ctx) as lib:
        data = service.library_info(lib)
    emit(data, as_json, f"library ready: {data['db']} (images in {data['images']}, schema {data['schema']})")


@click.group(invoke_without_command=True)
@click.option("--kind", type=click.Choice(["style", "quality", "negative"]), help="Only this kind of preset.")
@templates_option
@json_option
@click.pass_context
def presets(ctx, kind: str | None, templates_dir: str | None, as_json: bool) -> None:
    """List style, quality and negative presets with their descriptions.

    `promptkit presets import FILE` adds the styles of an A1111 styles.csv, a Fooocus style JSON or
    InvokeAI style presets. Names match leniently: --style "oil painting" finds oil-painting."""
    if ctx.invoked_subcommand is not None:
        return
    data = service.presets(kind, templates_dir)
    emit(data, as_json, "\n".join(f"{p['kind']:<9} {p['name']:<16} {p['description']}" for p in data))


@click.command("templates")
@templates_option
@json_option
def list_templates(templates_dir: str | None, as_json: bool) -> None:
    """List the templates you can pass to --template."""
    data = service.templates(templates_dir)
    emit(data, as_json, "\n".join(f"{d['name']:<16} {d['file']}" for d in data))


def _guided_fields(templates_dir, template, model, extras, weights):
    """Ask for each field on the terminal; returns the fields and the name to save under ("" for none)."""
    from ..guided import guided_fields
    from ..templates import PromptBuilder, parse_extras, parse_weights

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise click.ClickException("--guided needs a terminal; without one pass the fields as flags "
                                   "(--subject, --style, ...)")
    fields = guided_fields(lambda q, d: click.prompt(q, default=d, show_default=bool(d)), click.echo,
                           PromptBuilder(templates_dir), template, model)
    fields.extras = parse_extras(extras)
    fields.weights = parse_weights(weights)
    return fields


def _print_tokens(tokens: dict[str, Any]) -> None:
    """One line per encoder of the family: tokens of each prompt against its window."""
    for side in ("positive", "negative"):
        for window in tokens["encoders"].get(side, []):
            about = "" if window["exact"] else "~"
            past = f", past from {window['first_cut']!r}" if window["first_cut"] else ""
            click.echo(f"tokens:   {side} {window['label']}: {about}{window['count']}/{window['limit']}{past} "
                       f"({window['tokenizer']})")


def _print_built(built: service.BuiltPrompt, save_name: str | None) -> None:
    click.echo(f"positive: {built.positive}")
    click.echo(f"negative: {built.negative}")
    tokens = built.tokens
    if tokens.get("encoders"):
        _print_tokens(tokens)
    elif built.tokenizer:
        click.echo(f"tokens:   {tokens['positive']} positive, {tokens['negative']} negative "
                   f"(window {tokens['limit']}; {built.tokenizer})")
    else:
        click.echo("tokens:   no tokenizer available; counts skipped")
    for finding in built.findings:
        click.echo(f"{finding.level + ':':<9} {finding.message}")
    if built.id is not None:
        click.echo(f"saved as prompt {built.id}" + (f" ({save_name})" if save_name else ""))


@click.command()
@click.option("--subject", default="", help="What the image is of.")
@click.option("--action", default="", help="What the subject is doing.")
@click.option("--environment", default="", help="Where: setting, background, light.")
@click.option("--style", multiple=True, help="Style preset name (repeatable); see `promptkit presets`.")
@click.option("--quality", multiple=True, help="Quality preset name (repeatable).")
@click.option("--negative", multiple=True, help="Your own negative terms (repeatable).")
@click.option("--negative-preset", default="standard", show_default=True, help="Negative preset ('none' for none).")
@click.option("--template", default=None,
              help="Template NAME (the file NAME.j2); default: `sentence` for families that read sentences "
                   "(SD 3.5, FLUX, Z-Image, Qwen-Image, Chroma), else `default`.")
@click.option("--set", "extras", multiple=True, metavar="KEY=VALUE", help="Extra field for the template.")
@click.option("--weight", "weights", multiple=True, metavar="FIELD=WEIGHT",
              help="Weight a field A1111-style, e.g. subject=1.3 -> (a fox:1.3) (repeatable; 0 < WEIGHT <= 2).")
@click.option("--save", "save_name", default=None, help="Store the prompt in the library under this name.")
@click.option("--parent", default=None, help="Prompt id or name this one was iterated from.")
@click.option("--tag", "tags", multiple=True, help="Tag to store with --save (repeatable).")
@click.option("--model", default=None, help="Use this model's own tokenizer for token counts "
                                             "(with --guided: also generate with it after saving).")
@family_option
@click.option("--guided", is_flag=True, help="Ask for each field in turn on the terminal.")
@templates_option
@json_option
@click.pass_context
def build(ctx, subject, action, environment, style, quality, negative, negative_preset, template, extras,
          weights, save_name, parent, tags, model, family, guided, templates_dir, as_json) -> None:
    """Render a prompt from fields and check it (tokens, overflow, duplicates, contradictions)."""
    from ..templates import check_fields_given, parse_extras, parse_weights

    if guided:
        template = template or service.template_for(model, family)
        fields = _guided_fields(templates_dir, template, model, extras, weights)
        if save_name is None:
            save_name = click.prompt("Save as (a name; Enter for none)", default="", show_default=False) or ""
    else:
        fields = service.make_fields(subject, action, environment, style, quality, negative, negative_preset,
                                     parse_extras(extras), parse_weights(weights))
        check_fields_given(fields)
    built = service.render_prompt(fields, template, model=model, templates_dir=templates_dir, family=family)
    if save_name is not None or parent is not None:  # else no library is opened, or created
        with open_library(ctx) as lib:
            service.save_prompt(lib, built, save_name, parent, tags)
    if as_json:
        emit(built.to_dict(), True)
        return
    _print_built(built, save_name)
    if guided and model and built.id is not None:
        ctx.invoke(ctx.parent.command.get_command(ctx, "generate"), prompt=str(built.id), model=model)


@click.command("lint")
@click.argument("positive")
@click.option("--negative", default="", help="The negative prompt, as written.")
@click.option("--model", default=None, help="Follow this model's family; a local folder's own tokenizers count.")
@family_option
@click.option("--cfg", "guidance", type=float, default=None,
              help="The guidance you will generate with (default: the family's), for whether the negative is read.")
@click.option("--true-cfg", "true_cfg", type=float, default=None, help="true_cfg_scale (FLUX.1, Qwen-Image).")
@click.option("--max-sequence-length", type=int, default=None, help="The T5/LLM window (default: the family's).")
@json_option
def lint(positive, negative, model, family, guidance, true_cfg, max_sequence_length, as_json) -> None:
    """Check a prompt as written: tokens per text encoder of the family and the words past each window,
    A1111 weights the family cannot use, a negative prompt it ignores, terms in both prompts."""
    data = service.lint_text(positive, negative, model=model, family=family, guidance=guidance, true_cfg=true_cfg,
                             max_sequence_length=max_sequence_length)
    if as_json:
        emit(data, True)
        return
    tokens = data["tokens"]
    click.echo(f"family:   {data['family'] or 'unknown (SD 1.x rules; give --family or --model)'}")
    if tokens.get("encoders"):
        _print_tokens(tokens)
    elif tokens["tokenizer"]:
        click.echo(f"tokens:   {tokens['positive']} positive, {tokens['negative']} negative "
                   f"(window {tokens['limit']}; {tokens['tokenizer']})")
    for finding in data["findings"]:
        click.echo(f"{finding['level'] + ':':<9} {finding['message']}")


@click.command()
@click.argument("generation_id", type=int)
@click.argument("stars", type=int)
@click.option("--note", default="", help="A short note on the image.")
@json_option
@click.pass_context
def rate(ctx, generation_id: int, stars: int, note: str, as_json: bool) -> None:
    """Rate a generated image 1 to 5 stars."""
    with open_library(ctx, create=False) as lib:
        data = service.rate(lib, generation_id, stars, note)
    emit(data, as_json, f"rated generation {generation_id}: {'*' * stars}")


def _prompt_line(p: dict[str, Any]) -> str:
    name = f" [{p['name']}]" if p.get("name") else ""
    return f"{p['id']:>6}{name}  {p['positive']}"


@click.command(help=f"""Full-text search over saved prompts (name, text, tags, notes), best match first.

    Every word must match. A query matching more than {SEARCH_RANK_LIMIT:,} prompts ranks only the newest
    {SEARCH_RANK_LIMIT:,} of them, which keeps a search fast in a large library.
    """)
@click.argument("query")
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
@click.pass_context
def search(ctx, query: str, limit: int, as_json: bool) -> None:
    with open_library(ctx, create=False) as lib:
        rows = service.search(lib, query, limit)
    emit(rows, as_json, "\n".join(_prompt_line(r) for r in rows) or "no matches")


@click.command("prompts")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def list_prompts(ctx, limit: int, as_json: bool) -> None:
    """List saved prompts, newest first."""
    with open_library(ctx, create=False) as lib:
        rows = service.list_prompts(lib, limit)
    emit(rows, as_json, "\n".join(_prompt_line(r) for r in rows) or "no prompts yet")


@click.command()
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
        result = service.delete_prompt(lib, prompt, with_images=with_images)
    label = result["name"] or result["id"]
    emit(result, as_json, f"deleted prompt {label!r}" + (
        f" with {result['generations_deleted']} generation rows and {result['ratings_deleted']} ratings; image "
        "files no row uses are quarantined by `promptkit doctor --fix`" if result["generations_deleted"] else ""))


@click.command()
@click.argument("prompt")
@json_option
@click.pass_context
def show(ctx, prompt: str, as_json: bool) -> None:
    """Show a prompt (id or name) with its generations and ratings."""
    with open_library(ctx, create=False) as lib:
        data = service.show_prompt(lib, prompt)
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
        if gen.get("note"):
            click.echo(f"            note: {gen['note']}")
        if gen.get("scores"):
            click.echo("            scores: " + ", ".join(f"{s['judge']} {s['value']:.4g} ({s['judge_model']})"
                                                       for s in gen["scores"]))


def _node_line(node: dict[str, Any]) -> str:
    """A lineage entry: its id, its name beside it when it has one, and its positive prompt."""
    return f"{node['id']}{' [' + node['name'] + ']' if node.get('name') else ''}  {node['positive']}"


@click.command("history")
@click.argument("prompt")
@json_option
@click.pass_context
def history_command(ctx, prompt, as_json) -> None:
    """Print a prompt's lineage: its ancestors and every prompt iterated from it."""
    with open_library(ctx, create=False) as lib:
        tree = service.history(lib, prompt)
    if as_json:
        emit(tree, True)
        return
    for depth, node in enumerate(tree["ancestors"]):
        click.echo(f"{'  ' * depth}{_node_line(node)}")
    base = len(tree["ancestors"])
    click.echo(f"{'  ' * base}{_node_line(tree['prompt'])}   ← this prompt")

    def walk(nodes, level):
        for node in nodes:
            click.echo(f"{'  ' * level}{_node_line(node)}")
            walk(node["children"], level + 1)

    walk(tree["descendants"], base + 1)


COMMANDS = [init, presets, list_templates, build, lint, rate, search, list_prompts, delete, show, history_command]
