"""`promptkit ab …`: A/B and X/Y experiments; parse, call `promptkit.service.experiments`, print."""

from __future__ import annotations

import sys
from typing import Any

import click

from .options import (lazy_module, ProgressBar, batch_size_option, emit, engine_options, engine_options_dict, input_options,
                      json_option, lora_dir_option, no_engine_option, open_library, params_from, pop_input_request,
                      quiet_option, report_outcome, sampling_options, saved_on_abort,
                      templates_option)

service = lazy_module("promptkit.service.experiments")
scores_service = lazy_module("promptkit.service.scores")
sweeps = lazy_module("promptkit.sweeps.service")


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
    params = params_from(steps, cfg, sampler, width, height, noise_device, model)
    plan = service.plan_experiment(list(variants), seeds, params=params, inputs=pop_input_request(input_flags),
                                   model=model)
    with open_library(ctx) as lib:
        data = service.create_planned(lib, name, plan)
    emit(data, as_json, f"experiment {name!r}: {len(plan.variants)} variants × {len(plan.seeds)} seeds; "
                        f"run it with `promptkit ab run {name}`")


@ab.command("xy")
@click.argument("name")
@click.option("--prompt", "prompt_ref", required=True, help="The saved prompt to vary (id or name).")
@click.option("--x", "x_axis", required=True, help="X axis: cfg=3,7,11 · steps=10,20 · sampler=Euler,DDIM · "
                                                  "seed=1-4 · refiner=off,on · refiner_switch=0.6,0.8 · "
                                                  "style=watercolor,sketch · subject=a fox,a cat")
@click.option("--y", "y_axis", default=None, help="Y axis, as --x (leave it out for a one-axis plot).")
@click.option("--seeds", default="1", show_default=True, help="Seeds when neither axis is seed.")
@sampling_options
@input_options
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL", help="Default model for `ab run`.")
@templates_option
@json_option
@click.pass_context
def ab_xy(ctx, name, prompt_ref, x_axis, y_axis, seeds, steps, cfg, sampler, width, height, noise_device, model,
          templates_dir, as_json, **input_flags) -> None:
    """Create an X/Y plot over one or two of cfg, steps, sampler, seed or a prompt field (stored as an experiment)."""
    plan = service.plan_xy_experiment(prompt_ref, x_axis, y_axis, seeds,
                                      params=params_from(steps, cfg, sampler, width, height, noise_device, model),
                                      inputs=pop_input_request(input_flags), model=model)
    with open_library(ctx) as lib:
        data = service.create_planned(lib, name, plan, templates_dir)
    emit(data, as_json,
         f"X/Y experiment {name!r}: {len(data['variants'])} cells × {len(data['seeds'])} seeds; "
         f"`promptkit ab run {name}` then `promptkit ab sheet {name} -o {name}.png`")


@ab.command("run")
@click.argument("name")
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL", help="Model (default: the experiment's).")
@lora_dir_option("Folder for <lora:NAME:SCALE> tags in the variants' prompts (env: PROMPTKIT_LORA_DIR; "
                 "default: the folder given to `ab new`).")
@batch_size_option
@engine_options
@quiet_option
@click.option("--profile", is_flag=True, help="Print where the time went.")
@no_engine_option
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Make the cells on Ray actors (one GPU each, else one CPU); ADDRESS joins a running cluster "
                   "(auto, HOST:6379, ray://HOST:10001), without it Ray starts here. Needs promptkit[ray].")
@click.option("--workers", type=int, default=None, help="With --ray: actors at once (default: one per GPU, else 1).")
@click.option("--accelerate", "use_accelerate", is_flag=True,
              help="Split the cells between the processes of `accelerate launch -m promptkit ab run NAME` "
                   "(implied under accelerate launch).")
@json_option
@click.pass_context
def ab_run(ctx, name, model, lora_dir, batch_size, quiet, profile, no_engine, ray_address, workers, use_accelerate,
           as_json, **engine_flags) -> None:
    """Generate every missing (variant, seed) cell; safe to re-run after an interruption.

    `<lora:NAME:SCALE>` tags in a variant's prompt are resolved as `generate` resolves them.
    Runs on the warm engine (`promptkit worker start`) when one is up, else in this process;
    with --ray on a Ray cluster, under `accelerate launch` on the GPUs of this machine.
    """
    from ..params import parse_batch_size

    how = sweeps.wanted(ray_address, use_accelerate, workers)
    batch_size = parse_batch_size(batch_size)
    with open_library(ctx) as lib:
        spec, todo = service.run_job_spec(lib, name, model=model, lora_dir=lora_dir, batch_size=batch_size,
                                          engine_options=engine_options_dict(**engine_flags), profile=profile)
    if spec is None:
        if sweeps.main_process():
            emit([], as_json, f"experiment {name!r} is complete: nothing to generate")
        return
    with saved_on_abort(ctx, f"run `promptkit ab run {name}` again to finish"), ProgressBar(quiet) as bar:
        if how:
            with open_library(ctx) as lib:
                result, show = sweeps.run_sweep(lib, name, how, ray_address=ray_address, workers=workers, model=model,
                                                lora_dir=lora_dir, batch_size=batch_size, profile=profile,
                                                engine_options=engine_options_dict(**engine_flags), progress=bar)
            if not show:
                return
        else:
            result = service.run_spec(spec, bar, use_engine=not no_engine)
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
    from ..params import parse_seeds

    seed_list = parse_seeds(seeds)
    with open_library(ctx, create=False) as lib:
        new = service.add_seeds(lib, name, seed_list)
    emit({"added": new}, as_json, f"added {len(new)} seeds to {name!r}")


ANSWERS = {"1": "left", "2": "right", "t": "tie"}
KEYS = ("1", "2", "t", "s", "q")


class PairViewer:
    """Shows each pair where the terminal can: both paths always; when stdout is a terminal (and not under
    --no-view) a side-by-side PNG, labelled 1 and 2, in a temporary folder, opened with the system viewer."""

    def __init__(self, lib, view: bool, side_by_side: str | None) -> None:
        self.lib, self.side_by_side = lib, side_by_side
        self.view = view and sys.stdout.isatty()
        self.folder: str | None = None

    def show(self, pair: dict[str, Any]) -> None:
        root = self.lib.path.parent
        click.echo(f"\npair {pair['voted'] + 1} of {pair['total']} (seed {pair['seed']})")
        click.echo(f"  1: {root / pair['left']['image_path']}")
        click.echo(f"  2: {root / pair['right']['image_path']}")
        file = self.side_by_side
        if file is None and self.view:
            import tempfile
            from pathlib import Path

            self.folder = self.folder or tempfile.mkdtemp(prefix="promptkit-vote-")
            file = str(Path(self.folder) / f"pair-{pair['voted'] + 1}-seed-{pair['seed']}.png")
        if file is not None:
            service.side_by_side(self.lib, pair, file)
            click.echo(f"  side by side: {file}")
            if self.view:
                click.launch(file)


def _answer() -> str:
    """One of KEYS: a single key press on a terminal (no Enter), else a line as a script writes it."""
    if not sys.stdin.isatty():
        return click.prompt("winner", type=click.Choice(list(KEYS)), show_choices=True)
    click.echo(f"winner [{'/'.join(KEYS)}]: ", nl=False)
    while True:
        key = click.getchar().lower()
        if key in KEYS:
            click.echo(key)
            return key
        if key in ("\x03", "\x04"):  # Ctrl-C, Ctrl-D
            raise click.Abort()


def _vote_interactively(lib, name: str, viewer: PairViewer, rater: str) -> int:
    """Offer pairs until every one is voted or the person quits; a skipped pair comes back at the end."""
    session = service.VotingSession(lib, name, rater=rater)
    settled_said = False
    while (pair := session.next()) is not None:
        if pair.get("settled") and not settled_said:
            click.echo(f"every verdict is in (see `promptkit ab stats {name}`): you can stop (q), or go on")
            settled_said = True
        viewer.show(pair)
        answer = _answer()
        if answer == "q":
            break
        if answer == "s":
            session.skip(pair)
        else:
            session.vote(pair, ANSWERS[answer])
    return session.cast


@ab.command("vote")
@click.argument("name")
@click.option("--seed", type=int, default=None, help="Vote on this seed (for scripts; needs --winner).")
@click.option("--winner", default=None, help="The winning variant's label, or 'tie'.")
@click.option("--left", default=None, help="Label shown on the left (needed with 3+ variants).")
@click.option("--right", default=None, help="Label shown on the right.")
@click.option("--rater", default="me", show_default=True, envvar="PROMPTKIT_RATER",
              help="Who is voting (env: PROMPTKIT_RATER). Votes from several raters give their agreement "
                   "(kappa) in `ab stats`; a rater's second vote on the same pair replaces the first.")
@click.option("--side-by-side", "side_by_side", type=click.Path(dir_okay=False), default=None,
              help="Also write each pair into this PNG, left and right, while voting interactively.")
@click.option("--no-view", "no_view", is_flag=True,
              help="Do not write each pair side by side into a temporary PNG nor open it in the image viewer.")
@json_option
@click.pass_context
def ab_vote(ctx, name, seed, winner, left, right, rater, side_by_side, no_view, as_json) -> None:
    """Vote blind on pairs: press 1 / 2 / t(ie) / s(kip) / q(uit) (one key, no Enter, on a terminal); each pair
    opens side by side in the image viewer. For scripts: --seed S --winner LABEL.

    The next pair is the one whose vote should move the verdict most (the same chooser as the review
    page). One vote per rater per pair: a second vote by the same --rater on the same pair (seed and
    two variants, whichever side each was on) replaces the first; it is never counted twice.
    """
    from ..errors import BadParameter, rename_parameters
    from ..experiments.votes import check_rater
    from ..experiments.variants import ExperimentProblem

    try:
        rater = check_rater(rater)
    except ExperimentProblem as exc:
        raise BadParameter(rename_parameters(str(exc), {"rater": "--rater"})) from None
    with open_library(ctx, create=False) as lib:
        if seed is not None or winner is not None:
            if seed is None or winner is None:
                raise BadParameter("script voting needs both --seed and --winner")
            vote = service.vote(lib, name, seed, winner, left, right, rater=rater)
            again = " (it replaces this rater's earlier vote on the pair)" if vote["replaced"] else ""
            emit(vote, as_json, f"vote recorded: seed {seed}, winner {winner}, rater {rater}{again}")
            return
        cast = _vote_interactively(lib, name, PairViewer(lib, not no_view, side_by_side), rater)
    emit({"votes_cast": cast}, as_json, f"{cast} votes recorded; see `promptkit ab stats {name}`")


@ab.command("undo")
@click.argument("name")
@json_option
@click.pass_context
def ab_undo(ctx, name, as_json) -> None:
    """Remove the last vote cast in experiment NAME."""
    with open_library(ctx, create=False) as lib:
        vote = service.undo_vote(lib, name)
    emit(vote, as_json, f"removed vote {vote['id']} (seed {vote['seed']}, winner {vote['winner']})")


def _print_stats(result: dict[str, Any]) -> None:
    click.echo(f"{result['experiment']}: {result['votes']} votes over {len(result['variants'])} variants")
    if result["pairs"]:
        click.echo(f"  verdicts: {result['pairs'][0]['method']}")
    if result.get("ranking"):
        click.echo(f"  ranking: {result['ranking_text']}")
    if "ranking" in result and not result["ranking"]:
        click.echo(f"  ranking: {result['ranking_text']}")
    for rank, row in enumerate(result.get("ranking", []), 1):
        click.echo(f"  #{rank} {row['label']}: {row['score']:+.2f} (95% CI {row['ci_low']:+.2f} to "
                   f"{row['ci_high']:+.2f})")
    for pair in result["pairs"]:
        rate = "—" if pair["win_rate_b"] is None else f"{pair['win_rate_b']:.0%}"
        low, high = pair["confidence_sequence"]
        click.echo(f"  {pair['a']} vs {pair['b']}: {pair['verdict_text']}")
        click.echo(f"    {pair['b']} win rate {low:.0%}–{high:.0%} (confidence sequence), e = {pair['e_value']:.3g}")
        click.echo(f"    {pair['wins_a']}–{pair['wins_b']}, {pair['ties']} ties; "
                   f"{pair['b']} win rate {rate} (95% CI {pair['ci_low']:.0%}–{pair['ci_high']:.0%}), "
                   f"p = {pair['p_value']:.3g}")
        ratings = pair["ratings"]
        if ratings["pairs"]:
            click.echo(f"    stars: {pair['b']} − {pair['a']} = {ratings['mean_difference']:+.2f} over "
                       f"{ratings['pairs']} seeds (Wilcoxon p = {ratings['p_value']:.3g})")
        click.echo(f"    fixed-sample description, not a stopping rule: {pair['verdict']}")
    _print_bias_and_agreement(result)
    if result.get("terms") is not None:  # a prompt matrix: the ranked effect table
        from ..effects import terms_lines

        click.echo("\n".join(terms_lines(result["terms"])))
    for line in scores_service.judges_lines(result.get("judges") or []):
        click.echo(line)


def _print_bias_and_agreement(result: dict[str, Any]) -> None:
    bias = result.get("position_bias")
    if bias and bias["left_share"] is not None:
        click.echo(f"  position bias: {bias['left_share']:.0%} of decisive votes went to the left image "
                   f"(95% CI {bias['ci_low']:.0%}–{bias['ci_high']:.0%}; 50% is no bias)")
    agreement = result.get("agreement")
    if agreement:
        click.echo(f"  rater agreement: {agreement['method']} = {agreement['kappa']:.2f} over {agreement['items']} "
                   f"pairs voted by all of {', '.join(agreement['raters'])}")


@ab.command("stats")
@click.argument("name")
@json_option
@click.pass_context
def ab_stats(ctx, name, as_json) -> None:
    """Verdict per pair (anytime-valid: a_better, b_better, equivalent or undecided with votes to go), wins, ties,
    win rate with intervals, sign-test p-value, star ratings, ranking, position bias and rater agreement.

    Each rater's latest vote on a pair counts, once.
    """
    with open_library(ctx, create=False) as lib:
        result = service.experiment_stats(lib, name)
    if as_json:
        emit(result, True)
    else:
        _print_stats(result)


@ab.command("sheet")
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--tile", type=int, default=None, help="Tile size in pixels (default: at least 160).")
@json_option
@click.pass_context
def ab_sheet(ctx, name, output, tile, as_json) -> None:
    """Write a contact sheet (rows = seeds, columns = variants, votes marked), or the X/Y grid."""
    with open_library(ctx, create=False) as lib:
        info = service.write_sheet(lib, name, output, tile)
    emit(info, as_json, f"wrote {info['path']} ({info['width']}×{info['height']}, {info['tiles']} tiles)")


@ab.command("list")
@json_option
@click.pass_context
def ab_list(ctx, as_json) -> None:
    """List experiments with their variant, image and vote counts."""
    with open_library(ctx, create=False) as lib:
        rows = service.list_experiments(lib)
    emit(rows, as_json, "\n".join(f"{r['name']:<24} {r['variants']} variants × {r['seeds']} seeds, "
                                  f"{r['generations']} images, {r['votes']} votes" for r in rows)
         or "no experiments yet")


@ab.command("show")
@click.argument("name")
@json_option
@click.pass_context
def ab_show(ctx, name, as_json) -> None:
    """Show an experiment: variants, prompts, overrides, seeds and progress."""
    with open_library(ctx, create=False) as lib:
        data = service.show_experiment(lib, name)
    created_at = data.pop("created_at")
    if as_json:
        emit(data, True)
        return
    click.echo(f"{data['name']} (created {created_at}), seeds {data['seeds']}")
    for v in data["variants"]:
        made = sum(1 for cell in data["cells"] if cell["label"] == v["label"])
        overrides = ", ".join(f"{k}={val}" for k, val in v["overrides"].items())
        click.echo(f"  {v['label']}: prompt {v['prompt_id']} {overrides and '[' + overrides + '] '}"
                   f"{made}/{len(data['seeds'])} images — {v['positive']}")


@ab.command("delete")
@click.argument("name")
@click.option("--with-images", is_flag=True,
              help="Also delete the experiment's images (generation rows) and their ratings; the files "
                   "no row uses are quarantined by `promptkit doctor --fix`.")
@json_option
@click.pass_context
def ab_delete(ctx, name, with_images, as_json) -> None:
    """Delete experiment NAME (or id) with its variants and votes; its prompts stay.

    An experiment with images needs --with-images; nothing is changed when it is refused.
    """
    with open_library(ctx, create=False) as lib:
        result = service.delete_experiment(lib, name, with_images=with_images)
    emit(result, as_json, f"deleted experiment {result['name']!r}" + (
        f" with {result['generations_deleted']} generation rows, {result['votes_deleted']} votes and "
        f"{result['ratings_deleted']} ratings; run `promptkit doctor --fix` to quarantine the image files no row "
        "uses" if result["generations_deleted"] else ""))


@ab.command("rename")
@click.argument("old")
@click.argument("new")
@json_option
@click.pass_context
def ab_rename(ctx, old, new, as_json) -> None:
    """Rename experiment OLD (name or id) to NEW."""
    with open_library(ctx, create=False) as lib:
        result = service.rename_experiment(lib, old, new)
    emit(result, as_json, f"renamed experiment {result['old_name']!r} to {result['name']!r}")


COMMANDS = [ab]
