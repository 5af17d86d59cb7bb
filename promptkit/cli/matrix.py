"""`promptkit ab matrix` and `ab wildcards`: which words helped; parse, call `promptkit.service.matrix`, print."""

from __future__ import annotations

from typing import Any

import click

from .options import (emit, input_options, json_option, lazy_module, open_library, params_from, pop_input_request,
                      sampling_options, templates_option)

service = lazy_module("promptkit.service.matrix")

wildcards_option = click.option(
    "--wildcards", "wildcards_dir", type=click.Path(file_okay=False), default=None,
    help="Wildcard folder: __name__ reads one line of NAME.txt there (never a file outside it).")


def _print_matrix(data: dict[str, Any], stored: bool = True) -> None:
    click.echo(f"matrix {data['name']!r}: {len(data['variants'])} variants"
               + (f" × {len(data['seeds'])} seeds" if stored else " (dry run: nothing stored)"))
    click.echo(f"  design: {data['design']['text']}")
    for term in data["terms"]:
        cut = (f"; PAST THE {term['limit']}-TOKEN WINDOW in {', '.join(term['cut_off_in'])} — a term that is cut "
               "off cannot help" if term["cut_off_in"] else "")
        click.echo(f"  {term['letter']}: {term['term']} ({term['tokens']} tokens{cut})")
    if not stored:
        return
    click.echo(f"run it with `promptkit ab run {data['name']}`, vote with `promptkit ab vote {data['name']}`, "
               f"read the effects with `promptkit ab stats {data['name']}`")


def _print_plan(planned: dict[str, Any], name: str, as_json: bool) -> None:
    variants = [{"label": v["label"], "positive": v["prompt"].positive if v["prompt"] else planned["base"]["positive"]}
                for v in planned["variants"]]
    data = {"name": name, "design": {k: v for k, v in planned["design"].items() if k != "runs"},
            "terms": planned["tokens"], "variants": variants,
            "seeds": []}
    if as_json:
        emit(data, True)
        return
    _print_matrix({**data, "seeds": ["—"]}, stored=False)
    for v in variants:
        click.echo(f"  {v['label']}: {v['positive']}")


@click.command("matrix")
@click.argument("name")
@click.option("--prompt", "prompt_ref", required=True, help="The saved base prompt (id or name).")
@click.option("--term", "terms", multiple=True, required=True, metavar="[FIELD=]TEXT",
              help="A term to switch on and off (repeat): `golden hour` goes at the end of the prompt, "
                   "`environment=golden hour` or `style=cinematic` into that template field. "
                   "`{a|b}` or `__name__` makes one term per option.")
@click.option("--seeds", default="1-8", show_default=True, help="List 1,2,3, range 1-8, or random:N.")
@click.option("--pairs-only", is_flag=True,
              help="The base and each term alone (one at a time) instead of the combinations.")
@wildcards_option
@click.option("--dry-run", is_flag=True, help="Print the design, the variants' prompts and each term's tokens; "
                                              "store nothing.")
@sampling_options
@input_options
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL", help="Default model for `ab run`.")
@templates_option
@json_option
@click.pass_context
def ab_matrix(ctx, name, prompt_ref, terms, seeds, pairs_only, wildcards_dir, dry_run, steps, cfg, sampler, width, height,
              noise_device, model, templates_dir, as_json, **input_flags) -> None:
    """Create a prompt matrix NAME: the base prompt with each --term on and off, all on the same seeds.

    Up to 4 terms: all 2^k combinations. 5 to 15 terms: a 16-variant fractional factorial
    (resolution V, IV or III; the generators and what it confounds are printed) that still
    estimates every term's effect. --pairs-only: the base and each term alone. After `ab run`
    and blind votes, `ab stats NAME` ranks the terms: the win probability each gives against
    its absence, with a 95% interval, the votes it rests on and a verdict (helps, hurts, no
    effect that matters, keep voting).
    """
    if dry_run:
        with open_library(ctx, create=False) as lib:
            _print_plan(service.plan_matrix(lib, prompt_ref, list(terms), pairs_only=pairs_only,
                                            templates_dir=templates_dir, model=model, wildcards=wildcards_dir),
                        name, as_json)
        return
    params = params_from(steps, cfg, sampler, width, height, noise_device, model)
    with open_library(ctx) as lib:
        data = service.new_matrix_experiment(lib, name, prompt_ref, list(terms), seeds, pairs_only=pairs_only,
                                             params=params, inputs=pop_input_request(input_flags), model=model,
                                             templates_dir=templates_dir, wildcards=wildcards_dir)
    if as_json:
        emit(data, True)
    else:
        _print_matrix(data)


@click.command("wildcards")
@click.argument("name")
@click.option("--prompt", "prompt_ref", required=True, help="The saved base prompt (id or name).")
@click.option("--text", required=True, metavar="[FIELD=]TEXT",
              help="Wildcard text added to the base: {red|green|blue} · {2$$a|b|c} · {1-2$$ and $$a|b} · __colors__.")
@wildcards_option
@click.option("--mode", type=click.Choice(["combinatorial", "random"]), default="combinatorial", show_default=True,
              help="Every expansion (at most 64), or --count drawn at random with --random-seed.")
@click.option("--count", type=int, default=None, help="How many variants to draw in random mode.")
@click.option("--random-seed", "random_seed", type=int, default=0, show_default=True,
              help="The seed of the random draw (the same seed draws the same variants).")
@click.option("--seeds", default="1-8", show_default=True, help="List 1,2,3, range 1-8, or random:N.")
@click.option("--dry-run", is_flag=True, help="Print the expansions and their choices; store nothing.")
@sampling_options
@input_options
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL", help="Default model for `ab run`.")
@templates_option
@json_option
@click.pass_context
def ab_wildcards(ctx, name, prompt_ref, text, wildcards_dir, mode, count, random_seed, seeds, dry_run, steps, cfg,
                 sampler, width, height, noise_device, model, templates_dir, as_json, **input_flags) -> None:
    """Create experiment NAME with one variant per expansion of wildcard --text added to the base prompt.

    Each variant records the choices it made. A wildcard file outside the --wildcards folder, a
    wildcard that includes itself, or more than 64 expansions is refused and nothing is stored.
    """
    if dry_run:
        rows = service.expand_wildcards(text, wildcards=wildcards_dir, mode=mode, count=count, seed=random_seed)
        emit(rows, as_json, "\n".join(f"{r['text']}   ({'; '.join(c['chose'] for c in r['choices'])})" for r in rows))
        return
    params = params_from(steps, cfg, sampler, width, height, noise_device, model)
    with open_library(ctx) as lib:
        data = service.new_wildcard_experiment(lib, name, prompt_ref, text, seeds, wildcards=wildcards_dir, mode=mode,
                                               count=count, seed=random_seed, params=params,
                                               inputs=pop_input_request(input_flags), model=model,
                                               templates_dir=templates_dir)
    emit(data, as_json, "\n".join([f"experiment {name!r}: {len(data['variants'])} wildcard variants × "
                                   f"{len(data['seeds'])} seeds; run it with `promptkit ab run {name}`",
                                   *(f"  {v['label']}: {v['positive']}" for v in data["variants"])]))


AB_COMMANDS = [ab_matrix, ab_wildcards]
COMMANDS: list = []
