"""`promptkit ab …`, `promptkit iterate` and `promptkit history`: parse, call abtest/stats/lineage, print."""

from __future__ import annotations

import sys
from typing import Any

import click

from .cli import (emit, engine_options, engine_options_dict, json_option, no_engine_option,
                  open_library, params_from, report_outcome, resolve_model, run_generation_spec, sampling_options,
                  templates_option)
from .cli_inputs import input_options, lora_dir_option, pop_input_request
from .inputs import prepare_inputs


@click.group()
def ab() -> None:
    """A/B experiments: variants on the same seeds, blind votes, verdicts with statistics."""


@ab.command("new")
@click.argument("name")
@click.option("--variant", "variants", multiple=True, required=True, metavar="LABEL=PROMPT[:k=v,…]",
              help="A variant: a saved prompt (id or name) with optional overrides, e.g. B=fox:cfg=9 or "
                   "B=fox:refiner=off (repeat).")
@click.option("--seeds", default="1-8", show_default=True, help="List 1,2,3, range 1-8, or random:N.")
@sampling_options
@input_options
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL", help="Default model for `ab run`.")
@json_option
@click.pass_context
def ab_new(ctx, name, variants, seeds, steps, cfg, sampler, width, height, noise_device, model, as_json,
           **input_flags) -> None:
    """Create experiment NAME with two or more variants on one seed list."""
    from .experiments import check_new_experiment, check_overrides, create_experiment, get_experiment, parse_variant
    from .params import parse_seeds

    specs = [parse_variant(v) for v in variants]
    params = params_from(steps, cfg, sampler, width, height, noise_device)
    seed_list = parse_seeds(seeds)
    request = pop_input_request(input_flags)
    prepared = prepare_inputs(request)
    params.extra = prepared.extra
    for spec in specs:  # before any input image is stored
        check_overrides(params, spec.overrides, model)
    with open_library(ctx) as lib:
        check_new_experiment(lib, name, specs, seed_list, params, model)  # before any input image is stored
        params.extra = prepared.store(lib)
        create_experiment(lib, name, specs, seed_list, params, model, extra=_lora_dir_record(request.lora_dir))
        experiment = get_experiment(lib, name)
    emit(_experiment_json(experiment), as_json,
         f"experiment {name!r}: {len(specs)} variants × {len(seed_list)} seeds; run it with `promptkit ab run {name}`")


@ab.command("xy")
@click.argument("name")
@click.option("--prompt", "prompt_ref", required=True, help="The saved prompt to vary (id or name).")
@click.option("--x", "x_axis", required=True, help="X axis: cfg=3,7,11 · steps=10,20 · sampler=Euler,DDIM · "
                                                  "seed=1-4 · refiner=off,on · refiner_switch=0.6,0.8 · "
                                                  "style=watercolor,sketch · subject=a fox,a cat")
@click.option("--y", "y_axis", required=True, help="Y axis, as --x.")
@click.option("--seeds", default="1", show_default=True, help="Seeds when neither axis is seed.")
@sampling_options
@input_options
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL", help="Default model for `ab run`.")
@templates_option
@json_option
@click.pass_context
def ab_xy(ctx, name, prompt_ref, x_axis, y_axis, seeds, steps, cfg, sampler, width, height, noise_device, model,
          templates_dir, as_json, **input_flags) -> None:
    """Create an X/Y plot over two of cfg, steps, sampler, seed or a prompt field (stored as an experiment)."""
    from .experiments import VariantSpec, check_axes, check_new_experiment, create_xy_experiment, get_experiment, parse_axis
    from .params import parse_seeds

    x, y = parse_axis(x_axis), parse_axis(y_axis)
    params = params_from(steps, cfg, sampler, width, height, noise_device)
    request = pop_input_request(input_flags)
    prepared = prepare_inputs(request)
    params.extra = prepared.extra
    check_axes(params, x, y, model)  # before any input image is stored
    with open_library(ctx) as lib:
        # A missing prompt or a taken name is refused before any input image is stored.
        check_new_experiment(lib, name, [VariantSpec("A", prompt_ref), VariantSpec("B", prompt_ref)], [0], params, model)
        params.extra = prepared.store(lib)
        create_xy_experiment(lib, name, prompt_ref, x, y, parse_seeds(seeds), params, model, templates_dir,
                             extra=_lora_dir_record(request.lora_dir))
        experiment = get_experiment(lib, name)
    emit(_experiment_json(experiment), as_json,
         f"X/Y experiment {name!r}: {len(experiment['variants'])} cells × {len(experiment['seeds'])} seeds; "
         f"`promptkit ab run {name}` then `promptkit ab sheet {name} -o {name}.png`")


def _lora_dir_record(lora_dir: str | None) -> dict[str, Any] | None:
    """`--lora-dir` at `ab new` / `ab xy`, kept with the experiment for `ab run`'s <lora:…> tags."""
    from pathlib import Path

    return {"lora_dir": str(Path(lora_dir).expanduser().resolve())} if lora_dir else None


@ab.command("run")
@click.argument("name")
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL", help="Model (default: the experiment's).")
@lora_dir_option("Folder for <lora:NAME:SCALE> tags in the variants' prompts (env: PROMPTKIT_LORA_DIR; "
                 "default: the folder given to `ab new`).")
@click.option("--batch-size", default="auto", show_default=True,
              help="Images per pipeline call, or 'auto' (from free GPU memory; 4 on CPU).")
@engine_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--profile", is_flag=True, help="Print where the time went.")
@no_engine_option
@json_option
@click.pass_context
def ab_run(ctx, name, model, lora_dir, batch_size, quiet, profile, no_engine, as_json, **engine_flags) -> None:
    """Generate every missing (variant, seed) cell; safe to re-run after an interruption.

    `<lora:NAME:SCALE>` tags in a variant's prompt are resolved as `generate` resolves them.
    Runs on the warm engine (`promptkit worker start`) when one is up, else in this process.
    """
    from pathlib import Path

    from .experiments import get_experiment, missing_cells, variant_job_params
    from .errors import BadParameter
    from .params import parse_batch_size

    batch_size = parse_batch_size(batch_size)
    lora_dir = str(Path(lora_dir).expanduser().resolve()) if lora_dir else None
    with open_library(ctx) as lib:
        experiment = get_experiment(lib, name)
        model = model or experiment["model"]
        if not model:
            raise BadParameter(f"experiment {name!r} has no model; pass --model")
        missing = missing_cells(lib, experiment)
        todo = sum(len(s) for s in missing.values())
        for variant in experiment["variants"]:
            if missing[variant["label"]]:
                variant_job_params(experiment, variant, lora_dir)  # a LoRA tag that cannot resolve: one line, now
        db_path = str(lib.path.resolve())
    if todo == 0:
        emit([], as_json, f"experiment {name!r} is complete: nothing to generate")
        return
    spec = {"kind": "ab_run", "db": db_path, "model": resolve_model(model, engine_flags["allow_pickle"]),
            "engine_options": engine_options_dict(**engine_flags), "name": experiment["name"],
            "batch_size": batch_size, "profile": profile, "lora_dir": lora_dir}
    result = run_generation_spec(spec, todo, quiet, no_engine)
    emit(result["generations"], as_json, f"generated {len(result['generations'])} of {todo} missing images "
                                         f"for {name!r}")
    report_outcome(result, profile)
    if result["interrupted"]:
        click.echo("interrupted: the images above are saved; run the same command to finish", err=True)
        sys.exit(130)


@ab.command("seeds")
@click.argument("name")
@click.argument("seeds")
@json_option
@click.pass_context
def ab_seeds(ctx, name, seeds, as_json) -> None:
    """Add SEEDS to experiment NAME; the next `ab run` extends every variant."""
    from .experiments import add_seeds
    from .params import parse_seeds

    with open_library(ctx, create=False) as lib:
        new = add_seeds(lib, name, parse_seeds(seeds))
    emit({"added": new}, as_json, f"added {len(new)} seeds to {name!r}")


@ab.command("vote")
@click.argument("name")
@click.option("--seed", type=int, default=None, help="Vote on this seed (for scripts; needs --winner).")
@click.option("--winner", default=None, help="The winning variant's label, or 'tie'.")
@click.option("--left", default=None, help="Label shown on the left (needed with 3+ variants).")
@click.option("--right", default=None, help="Label shown on the right.")
@click.option("--side-by-side", "side_by_side", type=click.Path(dir_okay=False), default=None,
              help="Also write each pair into this PNG, left and right, while voting interactively.")
@json_option
@click.pass_context
def ab_vote(ctx, name, seed, winner, left, right, side_by_side, as_json) -> None:
    """Vote blind on pairs: on a terminal answer 1 / 2 / t(ie) / s(kip) / q(uit); or --seed S --winner LABEL."""
    from .experiments import next_pair, record_vote
    from .errors import BadParameter

    with open_library(ctx, create=False) as lib:
        if seed is not None or winner is not None:
            if seed is None or winner is None:
                raise BadParameter("script voting needs both --seed and --winner")
            vote = record_vote(lib, name, seed, winner, left, right)
            emit(vote, as_json, f"vote recorded: seed {seed}, winner {winner}")
            return
        cast = 0
        skipped: set[tuple] = set()
        while True:
            pair = next_pair(lib, name)
            while pair and (pair["seed"], pair["left"]["label"], pair["right"]["label"]) in skipped:
                pair = None
            if pair is None:
                break
            click.echo(f"\npair {pair['voted'] + 1} of {pair['total']} (seed {pair['seed']})")
            click.echo(f"  1: {lib.path.parent / pair['left']['image_path']}")
            click.echo(f"  2: {lib.path.parent / pair['right']['image_path']}")
            if side_by_side:
                _write_side_by_side(lib, pair, side_by_side)
                click.echo(f"  side by side: {side_by_side}")
            answer = click.prompt("winner", type=click.Choice(["1", "2", "t", "s", "q"]), show_choices=True)
            if answer == "q":
                break
            if answer == "s":
                skipped.add((pair["seed"], pair["left"]["label"], pair["right"]["label"]))
                continue
            chosen = {"1": pair["left"]["label"], "2": pair["right"]["label"], "t": "tie"}[answer]
            record_vote(lib, name, pair["seed"], chosen, pair["left"]["label"], pair["right"]["label"])
            cast += 1
    emit({"votes_cast": cast}, as_json, f"{cast} votes recorded; see `promptkit ab stats {name}`")


def _write_side_by_side(lib, pair: dict[str, Any], path: str) -> None:
    from PIL import Image

    with Image.open(lib.path.parent / pair["left"]["image_path"]) as a, \
            Image.open(lib.path.parent / pair["right"]["image_path"]) as b:
        sheet = Image.new("RGB", (a.width + b.width + 16, max(a.height, b.height)), (24, 26, 31))
        sheet.paste(a.convert("RGB"), (0, 0))
        sheet.paste(b.convert("RGB"), (a.width + 16, 0))
        sheet.save(path, format="PNG")


@ab.command("undo")
@click.argument("name")
@json_option
@click.pass_context
def ab_undo(ctx, name, as_json) -> None:
    """Remove the last vote cast in experiment NAME."""
    from .experiments import undo_last_vote

    with open_library(ctx, create=False) as lib:
        vote = undo_last_vote(lib, name)
    emit(vote, as_json, f"removed vote {vote['id']} (seed {vote['seed']}, winner {vote['winner']})")


@ab.command("stats")
@click.argument("name")
@json_option
@click.pass_context
def ab_stats(ctx, name, as_json) -> None:
    """Wins, ties, win rate with a Wilson 95% interval, sign-test p-value, star ratings, ranking, verdict."""
    from .stats import experiment_stats

    with open_library(ctx, create=False) as lib:
        result = experiment_stats(lib, name)
    if as_json:
        emit(result, True)
        return
    click.echo(f"{result['experiment']}: {result['votes']} votes over {len(result['variants'])} variants")
    for pair in result["pairs"]:
        rate = "—" if pair["win_rate_b"] is None else f"{pair['win_rate_b']:.0%}"
        click.echo(f"  {pair['a']} vs {pair['b']}: {pair['wins_a']}–{pair['wins_b']}, {pair['ties']} ties; "
                   f"{pair['b']} win rate {rate} (95% CI {pair['ci_low']:.0%}–{pair['ci_high']:.0%}), "
                   f"p = {pair['p_value']:.3g}")
        ratings = pair["ratings"]
        if ratings["pairs"]:
            click.echo(f"    stars: {pair['b']} − {pair['a']} = {ratings['mean_difference']:+.2f} over "
                       f"{ratings['pairs']} seeds (Wilcoxon p = {ratings['p_value']:.3g})")
        click.echo(f"    {pair['verdict']}")
    for rank, row in enumerate(result.get("ranking", []), 1):
        click.echo(f"  #{rank} {row['label']}: {row['score']:+.2f} (95% CI {row['ci_low']:+.2f} to "
                   f"{row['ci_high']:+.2f})")


@ab.command("sheet")
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--tile", type=int, default=None, help="Tile size in pixels (default: at least 160).")
@json_option
@click.pass_context
def ab_sheet(ctx, name, output, tile, as_json) -> None:
    """Write a contact sheet (rows = seeds, columns = variants, votes marked), or the X/Y grid."""
    from .sheets import xy_sheet

    with open_library(ctx, create=False) as lib:
        info = xy_sheet(lib, name, output, tile)
    emit(info, as_json, f"wrote {info['path']} ({info['width']}×{info['height']}, {info['tiles']} tiles)")


@ab.command("list")
@json_option
@click.pass_context
def ab_list(ctx, as_json) -> None:
    """List experiments with their variant, image and vote counts."""
    from .experiments import list_experiments

    with open_library(ctx, create=False) as lib:
        rows = list_experiments(lib)
    emit(rows, as_json, "\n".join(f"{r['name']:<24} {r['variants']} variants × {r['seeds']} seeds, "
                                  f"{r['generations']} images, {r['votes']} votes" for r in rows)
         or "no experiments yet")


@ab.command("show")
@click.argument("name")
@json_option
@click.pass_context
def ab_show(ctx, name, as_json) -> None:
    """Show an experiment: variants, prompts, overrides, seeds and progress."""
    from .experiments import cells, get_experiment

    with open_library(ctx, create=False) as lib:
        experiment = get_experiment(lib, name)
        done = cells(lib, experiment)
    data = _experiment_json(experiment)
    data["cells"] = [{"label": k[0], "seed": k[1], **v} for k, v in sorted(done.items())]
    if as_json:
        emit(data, True)
        return
    click.echo(f"{experiment['name']} (created {experiment['created_at']}), seeds {experiment['seeds']}")
    for v in experiment["variants"]:
        made = sum(1 for (label, _), _g in done.items() if label == v["label"])
        overrides = ", ".join(f"{k}={val}" for k, val in v["overrides"].items())
        click.echo(f"  {v['label']}: prompt {v['prompt_id']} {overrides and '[' + overrides + '] '}"
                   f"{made}/{len(experiment['seeds'])} images — {v['prompt']['positive']}")


def _experiment_json(experiment: dict[str, Any]) -> dict[str, Any]:
    return {"id": experiment["id"], "name": experiment["name"], "seeds": experiment["seeds"],
            "params": experiment["params"], "model": experiment["model"],
            "variants": [{"label": v["label"], "prompt_id": v["prompt_id"], "overrides": v["overrides"],
                          "positive": v["prompt"]["positive"]} for v in experiment["variants"]]}


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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
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
    from .errors import PromptkitError
    from .inputs import store_loras
    from .lineage import child_loras, iterate_prompt, parent_settings
    from .params import GenerationParams, parse_seeds
    from .templates import parse_extras

    wanted = parse_extras(changes)
    for key, value in (("subject", subject), ("action", action), ("environment", environment), ("style", style),
                       ("quality", quality)):
        if value is not None:
            wanted[key] = value
    with open_library(ctx) as lib:
        parent = lib.get_prompt(prompt)
        settings = None
        if not no_generate:
            try:
                params, parent_seeds, parent_model, batch_size = parent_settings(lib, parent["id"])
            except PromptkitError:
                if not (seeds and model):
                    raise
                params, parent_seeds, parent_model, batch_size = GenerationParams(), [], None, 4
            settings = (params, parse_seeds(seeds) if seeds else parent_seeds,
                        resolve_model(model or parent_model, engine_flags["allow_pickle"]), batch_size)
        with lib.write():
            result = iterate_prompt(lib, prompt, wanted, name=name, templates_dir=templates_dir)
            if settings is not None:  # a tag that cannot be resolved rolls the child back
                extra = settings[0].extra
                loras = child_loras(extra.get("loras") or [], parent["positive"], result["child"]["positive"],
                                    lora_dir)
                extra.pop("loras", None)
                if loras:
                    store_loras(lib, loras)
                    extra["loras"] = loras
        db_path = str(lib.path.resolve())
    generations: list[dict[str, Any]] = []
    if settings is not None:
        params, seed_list, use_model, batch_size = settings
        spec = {"kind": "generate", "db": db_path, "model": use_model,
                "engine_options": engine_options_dict(**engine_flags), "prompt_id": result["child"]["id"],
                "params": params.to_dict(), "seeds": seed_list, "batch_size": batch_size}
        generations = run_generation_spec(spec, len(seed_list), quiet, no_engine)["generations"]
    data = {"parent_id": result["parent"]["id"], "id": result["child"]["id"], "fields": result["fields"],
            "positive": result["positive"], "negative": result["negative"], "generations": generations}
    if as_json:
        emit(data, True)
        return
    click.echo(f"prompt {data['id']} (child of {data['parent_id']}): {result['child']['positive']}")
    for key, change in result["fields"].items():
        click.echo(f"  {key}: {change['from']!r} → {change['to']!r}")
    for kind in ("positive", "negative"):
        diff = result[kind]
        if diff["added"] or diff["removed"]:
            click.echo(f"  {kind}: " + " ".join([f"+[{t}]" for t in diff["added"]] + [f"-[{t}]" for t in diff["removed"]]))
    for gen in generations:
        click.echo(f"{gen['id']:>6}  seed {gen['seed']:<10} {gen['image_path']}")


@click.command("history")
@click.argument("prompt")
@json_option
@click.pass_context
def history_command(ctx, prompt, as_json) -> None:
    """Print a prompt's lineage: its ancestors and every prompt iterated from it."""
    from .lineage import history

    with open_library(ctx, create=False) as lib:
        tree = history(lib, prompt)
    if as_json:
        emit(tree, True)
        return
    depth = 0
    for depth, node in enumerate(tree["ancestors"]):
        click.echo(f"{'  ' * depth}{node['id']}  {node['positive']}")
    base = len(tree["ancestors"])
    click.echo(f"{'  ' * base}{tree['prompt']['id']}  {tree['prompt']['positive']}   ← this prompt")

    def walk(nodes, level):
        for node in nodes:
            click.echo(f"{'  ' * level}{node['id']}  {node['positive']}")
            walk(node["children"], level + 1)

    walk(tree["descendants"], base + 1)


def register(main: click.Group) -> None:
    main.add_command(ab)
    main.add_command(iterate)
    main.add_command(history_command)
