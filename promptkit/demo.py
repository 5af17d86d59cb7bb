"""The offline quick start: a tiny model, an A/B experiment of two prompt variants on the same seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .experiments import VariantSpec, create_experiment, get_experiment, list_experiments, run_experiment
from .library import Library
from .params import GenerationParams
from .templates import Fields, PromptBuilder

DEMO_SEEDS = [1, 2, 3, 4]


def run_demo(library: Library, model_dir: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the tiny model if missing, save prompts A and B, run them as an experiment on the same seeds."""
    from .engine import Engine, EngineOptions
    from .stats import experiment_stats
    from .tinymodel import TINY_NOTE, write_tiny_pipeline

    if not (model_dir / "model_index.json").is_file():
        write_tiny_pipeline(model_dir)
        say(f"wrote {model_dir} ({TINY_NOTE})")
    builder = PromptBuilder()
    fields = {
        "A": Fields(subject="a lighthouse on a cliff", environment="stormy sea at dusk", style=["watercolor"]),
        "B": Fields(subject="a lighthouse on a cliff", environment="stormy sea at dusk", style=["cinematic"],
                    quality=["highly-detailed"]),
    }
    taken = {e["name"] for e in list_experiments(library)}
    name = next(n for n in (f"demo-{i}" if i else "demo" for i in range(1000)) if n not in taken)
    specs = []
    for label, f in fields.items():
        prompt = builder.render(f)
        prompt_id = library.save_prompt(prompt, tags=["demo", f"variant-{label}"])
        specs.append(VariantSpec(label, str(prompt_id)))
        say(f"prompt {label} (id {prompt_id}): {prompt.positive}")
    create_experiment(library, name, specs, DEMO_SEEDS, GenerationParams(steps=10, cfg=7.0), model=str(model_dir))
    engine = Engine.get(str(model_dir), EngineOptions())
    outcome = run_experiment(library, engine, name, batch_size=4)
    for gen in outcome.generations:
        say(f"  generation {gen['id']}: seed {gen['seed']} -> {gen['image_path']}")
    stats = experiment_stats(library, name)
    say(f"experiment {name!r}: {len(outcome.generations)} images; {stats['pairs'][0]['verdict_text']}")
    say(f"next: `promptkit ab vote {name}`, `promptkit ab stats {name}`, "
        f"`promptkit ab sheet {name} -o {name}.png`, `promptkit search lighthouse`")
    return {"model": str(model_dir), "experiment": get_experiment(library, name)["name"], "seeds": DEMO_SEEDS,
            "generations": outcome.generations, "stats": stats}
