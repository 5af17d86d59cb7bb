"""promptkit generate vs a bare diffusers call: same tiny pipeline, seeds and batch size, one process.

Usage: python benchmarks/overhead.py [--images 64] [--batch-size 4] [--steps 20] [--repeats 3]
Prints a table: seconds per image for each, and the ratio (goal: under 1.05 on the tiny CPU pipeline).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from promptkit.engine import Engine, EngineOptions
    from promptkit.generation import GenerationJob, run_job
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder
    from promptkit.tinymodel import write_tiny_pipeline

    work = Path(tempfile.mkdtemp(prefix="promptkit-bench-"))
    model = write_tiny_pipeline(work / "tiny-sd")
    engine = Engine.get(str(model), EngineOptions(device="cpu"))
    pipe = engine.pipe
    params = GenerationParams(steps=args.steps, cfg=7.0, sampler="Euler")
    engine._set_sampler(params.sampler)
    prompt = PromptBuilder().render(Fields(subject="a lighthouse", style=["watercolor"]))
    library = Library(work / "library.db")
    row = library.get_prompt(library.save_prompt(prompt))
    seeds = list(range(args.images))
    batches = [seeds[i : i + args.batch_size] for i in range(0, len(seeds), args.batch_size)]

    def bare() -> float:
        started = time.perf_counter()
        for batch in batches:
            with torch.inference_mode():
                pipe(prompt=[prompt.positive] * len(batch), negative_prompt=[prompt.negative] * len(batch),
                     num_inference_steps=params.steps, guidance_scale=params.cfg,
                     generator=[torch.Generator("cpu").manual_seed(s) for s in batch], output_type="pil")
        return time.perf_counter() - started

    def promptkit_run() -> float:
        started = time.perf_counter()
        run_job(library, engine, GenerationJob(prompt=row, params=params, seeds=seeds, batch_size=args.batch_size))
        return time.perf_counter() - started

    bare()  # warm up both paths once
    promptkit_run()
    bare_times, pk_times = [], []
    for _ in range(args.repeats):  # interleave so drift hits both equally
        bare_times.append(bare())
        pk_times.append(promptkit_run())
    b, p = statistics.median(bare_times), statistics.median(pk_times)
    print(f"tiny SD pipeline, CPU, {args.images} images, batch {args.batch_size}, {args.steps} steps, "
          f"median of {args.repeats}")
    print(f"{'path':<34}{'s total':>10}{'ms/image':>10}")
    print(f"{'bare diffusers pipeline call':<34}{b:>10.3f}{1000 * b / args.images:>10.2f}")
    print(f"{'promptkit generate (run_job)':<34}{p:>10.3f}{1000 * p / args.images:>10.2f}")
    print(f"{'ratio promptkit / bare':<34}{p / b:>10.3f}")


if __name__ == "__main__":
    main()
