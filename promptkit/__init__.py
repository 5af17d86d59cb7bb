"""promptkit: structured prompts, seed-locked generation, a SQLite prompt library, A/B tests.

The public Python API (everything the `promptkit` command does)::

    import promptkit

    with promptkit.open_library("library.db") as lib:
        promptkit.build_prompt(lib, subject="a fox", style=["watercolor"], save="fox")
        images = promptkit.generate(lib, "fox", model="./tiny-sd", seeds=[1, 2])["generations"]
        promptkit.rate(lib, images[0]["id"], 4)

`promptkit.track(pipe, library=...)` records the calls of a diffusers pipeline you already hold
(with `promptkit.seeded(seeds)` for its generators); see promptkit/track.py.

Each function takes an open `Library` first and raises a `PromptkitError` subclass with a
one-line message. They live in `promptkit.service` and load lazily: importing promptkit never
imports torch or diffusers; only generating does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import PromptkitError  # noqa: E402

# name -> the service module that holds it
_API = {
    "open_library": "maintenance", "export_library": "maintenance", "import_library": "maintenance",
    "check_library": "maintenance",
    "build_prompt": "prompts", "rate": "prompts", "search": "prompts", "show_prompt": "prompts",
    "list_prompts": "prompts", "delete_prompt": "prompts", "history": "prompts", "BuiltPrompt": "prompts",
    "generate": "generation", "reproduce": "generation", "iterate": "generation",
    "new_experiment": "experiments", "new_xy_experiment": "experiments", "run_experiment": "experiments",
    "add_seeds": "experiments", "next_pair": "experiments", "vote": "experiments", "undo_vote": "experiments",
    "verdict": "experiments", "experiment_stats": "experiments", "VotingSession": "experiments",
    "new_matrix_experiment": "matrix", "matrix_effects": "matrix", "new_wildcard_experiment": "matrix",
    "expand_wildcards": "matrix",
    "score": "scores", "list_judges": "scores", "experiment_judges": "scores",
    "import_images": "importing", "import_presets": "importing",
}
_TYPES = {"Library": "library", "GenerationParams": "params", "InputRequest": "inputs", "Fields": "templates",
          "track": "track", "seeded": "track"}

__all__ = ["PromptkitError", "__version__", *_API, *_TYPES]

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from .inputs import InputRequest
    from .library import Library
    from .params import GenerationParams
    from .service.experiments import (VotingSession, add_seeds, experiment_stats, new_experiment,
                                       new_xy_experiment, next_pair, run_experiment, undo_vote, verdict, vote)
    from .service.generation import generate, iterate, reproduce
    from .service.matrix import expand_wildcards, matrix_effects, new_matrix_experiment, new_wildcard_experiment
    from .service.importing import import_images, import_presets
    from .service.maintenance import check_library, export_library, import_library, open_library
    from .service.prompts import (BuiltPrompt, build_prompt, delete_prompt, history, list_prompts, rate, search,
                                  show_prompt)
    from .service.scores import experiment_judges, list_judges, score
    from .templates import Fields
    from .track import seeded, track


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562), keeping `import promptkit` light."""
    import importlib

    if name in _API:
        module = importlib.import_module(f".service.{_API[name]}", __name__)
    elif name in _TYPES:
        module = importlib.import_module(f".{_TYPES[name]}", __name__)
    else:
        raise AttributeError(f"module 'promptkit' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
