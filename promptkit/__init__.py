"""promptkit: structured prompts, seed-locked generation, a SQLite prompt library, A/B tests.

Importing promptkit never imports torch or diffusers; only `promptkit.engine` does.
"""

__version__ = "0.1.0"

from .errors import PromptkitError  # noqa: E402

__all__ = ["PromptkitError", "__version__"]
