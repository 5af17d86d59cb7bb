"""promptkit plugin: a backend for OpenAI-compatible Images APIs (``--model openai:NAME``).

Configuration comes from the environment, never from the library:

- ``PROMPTKIT_OPENAI_BASE_URL`` (else ``OPENAI_BASE_URL``, else https://api.openai.com/v1)
- ``PROMPTKIT_OPENAI_API_KEY`` (else ``OPENAI_API_KEY``): sent as a bearer token, never stored or printed
- ``PROMPTKIT_OPENAI_TIMEOUT`` seconds per request (default 120), ``PROMPTKIT_OPENAI_RETRIES`` (default 3)

The API takes no seed, so promptkit's seeds name replicates: each image is stored with
reproducible=0, and A/B verdicts on such images use the unpaired method (see promptkit's README).
This module imports nothing heavy; the backend loads when a model ``openai:NAME`` is used.
"""

from __future__ import annotations

from promptkit.plugins import BackendSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def promptkit_backends() -> list[BackendSpec]:
    return [BackendSpec("openai", "promptkit_openai.backend:OpenAIImages",
                        "OpenAI-compatible Images API (no seeds: images are unpaired replicates)", seeded=False)]
