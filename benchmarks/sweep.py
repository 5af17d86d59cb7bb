"""Sweeps: an experiment of V variants x S seeds, promptkit `ab run` against two bare diffusers loops.

Usage: python benchmarks/sweep.py [--variants 3] [--seeds 8] [--steps 10] [--repeats 3]
  sequential: one pipeline call per image, prompt re-encoded each time (what a naive script does);
  bare batched: hand-written loop, one batch per prompt, prompt embeddings computed once;
  promptkit: run_experiment (batches per variant, cached embeddings, writer thread, rows + PNGs).
Prints images/s for each and the ratios.
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
    parser.add_argument("--quick", action="store_true", help="2 variants x 4 seeds, 2 repeats")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.variants, args.seeds, args.repeats = 2, 4, 2

    import torch

    from promptkit.abtest import VariantSpec, create_experiment, run_experiment
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
    times: dict[str, list[float]] = {"sequential": [], "bare batched": [], "promptkit ab run": []}
    for _ in range(args.repeats):
        times["sequential"].append(sequential())
        times["bare batched"].append(bare_batched())
        times["promptkit ab run"].append(promptkit_sweep())
    medians = {k: statistics.median(v) for k, v in times.items()}
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.figures import Figure, figures_json, format_table

    title = (f"sweep: {args.variants} variants x {args.seeds} seeds = {total} images, tiny SD on CPU, "
             f"{args.steps} steps, median of {args.repeats}")
    rate = {k: total / v for k, v in medians.items()}
    figures = [
        Figure("sweep images/s, sequential bare loop", rate["sequential"], "img/s"),
        Figure("sweep images/s, hand-batched bare loop", rate["bare batched"], "img/s"),
        Figure("sweep images/s, promptkit ab run", rate["promptkit ab run"], "img/s", anchor=rate["bare batched"],
               goal=">= 0.95 x bare batched", met=rate["promptkit ab run"] >= 0.95 * rate["bare batched"],
               note=f"{rate['promptkit ab run'] / rate['sequential']:.2f}x the sequential loop; includes PNGs, "
                    "hashes and rows"),
    ]
    print(figures_json(figures, benchmark="sweep", title=title) if args.json else format_table(figures, title))


if __name__ == "__main__":
    main()
