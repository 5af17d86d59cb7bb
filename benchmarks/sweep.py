"""Sweeps: an experiment of V variants x S seeds, promptkit `ab run` against two bare diffusers loops.

Usage: python benchmarks/sweep.py [--variants 3] [--seeds 8] [--steps 10] [--repeats 3]
  sequential: one pipeline call per image, prompt re-encoded each time (what a naive script does);
  bare batched: hand-written loop, one batch per prompt, prompt embeddings computed once;
  promptkit: run_experiment (batches per variant, cached embeddings, writer thread, rows + PNGs).
Prints images/s for each and the ratios. The three are timed in turn within each repetition
(rotating which goes first), and the promptkit/bare ratio is taken per repetition: the table
gives its median and spread. `--threads 1` (the --quick default) keeps torch on one core and
leaves the other to promptkit's writer thread, as a GPU would leave the CPU free; with torch on
every core of a 2-core machine the writer's PNG and SQLite work competes with the denoising.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice; "
                        "--quick: 1)")
    parser.add_argument("--quick", action="store_true", help="2 variants x 4 seeds, 7 repeats, 1 torch thread")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.variants, args.seeds, args.repeats = 2, 4, 7
        args.threads = args.threads or 1

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from promptkit.experiments import VariantSpec, create_experiment, run_experiment
    from promptkit.engine import Engine, EngineOptions
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder
    from promptkit.tinymodel import write_tiny_pipeline

    work = Path(tempfile.mkdtemp(prefix="pk-sweep-"))
    model = write_tiny_pipeline(work / "tiny-sd")
    engine = Engine.get(str(model), EngineOptions(device="cpu"))
    pipe = engine.pipe
    params = GenerationParams(steps=args.steps, cfg=7.0, sampler="Euler")
    engine._set_sampler(params.sampler)
    builder = PromptBuilder()
    styles = ["watercolor", "cinematic", "sketch", "oil-painting", "3d-render", "concept-art"]
    prompts = [builder.render(Fields(subject="a lighthouse", style=[styles[i % len(styles)]]),)
               for i in range(args.variants)]
    seeds = list(range(args.seeds))
    total = args.variants * args.seeds

    def sequential() -> float:
        started = time.perf_counter()
        for prompt in prompts:
            for seed in seeds:
                with torch.inference_mode():
                    pipe(prompt=prompt.positive, negative_prompt=prompt.negative, num_inference_steps=params.steps,
                         guidance_scale=params.cfg, generator=torch.Generator("cpu").manual_seed(seed))
        return time.perf_counter() - started

    def bare_batched() -> float:
        started = time.perf_counter()
        for prompt in prompts:
            with torch.inference_mode():
                pos, neg = pipe.encode_prompt(prompt.positive, "cpu", 1, True, negative_prompt=prompt.negative)
                pipe(prompt_embeds=pos.repeat(len(seeds), 1, 1), negative_prompt_embeds=neg.repeat(len(seeds), 1, 1),
                     num_inference_steps=params.steps, guidance_scale=params.cfg,
                     generator=[torch.Generator("cpu").manual_seed(s) for s in seeds])
        return time.perf_counter() - started

    runs = {"n": 0}

    def promptkit_sweep() -> float:
        runs["n"] += 1
        library = Library(work / f"library-{runs['n']}.db")
        specs = [VariantSpec(f"V{i}", str(library.save_prompt(p))) for i, p in enumerate(prompts)]
        create_experiment(library, "sweep", specs, seeds, params)
        engine._embeds.clear()  # each run pays for its own text encoding, as a new prompt would
        started = time.perf_counter()
        run_experiment(library, engine, "sweep", batch_size=len(seeds))
        elapsed = time.perf_counter() - started
        library.close()
        return elapsed

    sequential(), bare_batched(), promptkit_sweep()  # warm-up
    runners = {"sequential": sequential, "bare batched": bare_batched, "promptkit ab run": promptkit_sweep}
    times: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for repeat in range(args.repeats):
        for name in order[repeat % 3:] + order[: repeat % 3]:  # rotate who goes first
            times[name].append(runners[name]())
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = [bare / mine for bare, mine in zip(times["bare batched"], times["promptkit ab run"])]
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.figures import Figure, figures_json, format_table

    title = (f"sweep: {args.variants} variants x {args.seeds} seeds = {total} images, tiny SD on CPU, "
             f"{args.steps} steps, {torch.get_num_threads()} torch thread(s), median of {args.repeats}")
    rate = {k: total / v for k, v in medians.items()}
    figures = [
        Figure("sweep images/s, sequential bare loop", rate["sequential"], "img/s"),
        Figure("sweep images/s, hand-batched bare loop", rate["bare batched"], "img/s"),
        Figure(f"sweep images/s, promptkit ab run, {torch.get_num_threads()} thread(s)", rate["promptkit ab run"],
               "img/s", anchor=rate["bare batched"], ratio=statistics.median(ratios),
               ratio_spread=(min(ratios), max(ratios)),
               goal=">= 0.95 x bare batched", met=statistics.median(ratios) >= 0.95,
               note=f"{rate['promptkit ab run'] / rate['sequential']:.2f}x the sequential loop; includes PNGs, "
                    "hashes and rows; ratio: median of the repetitions' (bare time / promptkit time), min-max"),
    ]
    print(figures_json(figures, benchmark="sweep", title=title) if args.json else format_table(figures, title))


if __name__ == "__main__":
    main()
