"""The offline quick start: a tiny model, two prompt variants on the same seeds, the library."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .generation import GenerationJob, run_job
from .library import Library
from .params import GenerationParams
from .templates import Fields, PromptBuilder

DEMO_SEEDS = [1, 2, 3, 4]


def run_demo(library: Library, model_dir: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the tiny model if missing, save prompts A and B, generate both on the same seeds."""
    from .engine import Engine, EngineOptions
    from .tinymodel import TINY_NOTE, write_tiny_pipeline

    if not (model_dir / "model_index.json").is_file():
        write_tiny_pipeline(model_dir)
        say(f"wrote {model_dir} ({TINY_NOTE})")
    builder = PromptBuilder()
    variants = {
        "A": Fields(subject="a lighthouse on a cliff", environment="stormy sea at dusk", style=["watercolor"]),
        "B": Fields(subject="a lighthouse on a cliff", environment="stormy sea at dusk", style=["cinematic"],
                    quality=["highly-detailed"]),
    }
    engine = Engine.get(str(model_dir), EngineOptions())
    params = GenerationParams(steps=10, cfg=7.0)
    summary: dict[str, Any] = {"model": str(model_dir), "seeds": DEMO_SEEDS, "variants": {}}
    for label, fields in variants.items():
        prompt = builder.render(fields)
        prompt_id = library.save_prompt(prompt, tags=["demo", f"variant-{label}"])
        row = library.get_prompt(prompt_id)
        outcome = run_job(library, engine, GenerationJob(prompt=row, params=params, seeds=DEMO_SEEDS, batch_size=4))
        summary["variants"][label] = {"prompt_id": prompt_id, "positive": prompt.positive,
                                      "generations": outcome.generations}
        say(f"variant {label} (prompt {prompt_id}): {prompt.positive}")
        for gen in outcome.generations:
            say(f"  seed {gen['seed']}: generation {gen['id']} -> {gen['image_path']}")
    return summary
