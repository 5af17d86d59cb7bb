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
    args = parser.parse_args()

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
    print(f"sweep: {args.variants} variants x {args.seeds} seeds = {total} images, tiny SD on CPU, "
          f"{args.steps} steps, median of {args.repeats}")
    print(f"{'path':<22}{'s':>8}{'images/s':>10}{'vs sequential':>15}{'vs bare batched':>17}")
    for name, seconds in medians.items():
        print(f"{name:<22}{seconds:>8.2f}{total / seconds:>10.2f}{medians['sequential'] / seconds:>15.2f}"
              f"{medians['bare batched'] / seconds:>17.2f}")


if __name__ == "__main__":
    main()
