"""The hook specifications a promptkit plugin implements (pluggy project "promptkit").

A plugin is a module (or object) named by an entry point in the group ``promptkit``::

    [project.entry-points.promptkit]
    mything = "mything.plugin"

whose functions carry ``@promptkit.plugins.hookimpl`` and the names below. Every hook takes no
arguments and returns plain data, so listing plugins imports nothing heavy: a backend is named
by a ``BackendSpec`` whose loader is imported only when a model with its scheme is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pluggy

PROJECT = "promptkit"
ENTRY_POINT_GROUP = "promptkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class BackendSpec:
    """A generation backend, chosen by the scheme of a model reference (``--model SCHEME:NAME``).

    :param scheme: "openai" serves ``--model openai:NAME``; the built-in "diffusers" serves paths and hub ids.
    :param load: "module:attr" (imported on first use) or the object itself: a class with
        ``load(model, options) -> Backend`` (see `promptkit.engine.backend.Backend`) or such a callable.
    :param seeded: False for backends that take no seed: their images are unpaired replicates,
        stored with reproducible=0.
    :param families: keys of `promptkit.families` this backend runs (what `promptkit.track` looks up; the
        class then needs ``from_pipe(pipe, model) -> Backend`` to adopt a pipeline a person holds).
    """

    scheme: str
    load: str | Any
    description: str = ""
    seeded: bool = True
    families: tuple[str, ...] = ()

    def resolve(self) -> Any:
        """The backend class (or callable) itself, importing its module now."""
        target = self.load
        if isinstance(target, str):
            import importlib

            module, _, attr = target.partition(":")
            target = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                target = getattr(target, part)
        return target

    def loader(self) -> Callable[[str, Any], Any]:
        """The callable (model, options) -> Backend."""
        target = self.resolve()
        return getattr(target, "load", target)


class PromptkitHooks:
    """What a plugin may provide. Each hook returns its items; promptkit gathers them from every plugin."""

    @hookspec
    def promptkit_backends(self) -> list[BackendSpec]:
        """Generation backends, one per model-reference scheme."""

    @hookspec
    def promptkit_presets(self) -> list[dict[str, Any]]:
        """Presets: dicts with kind ("style", "quality" or "negative"), name, description, positive, negative.
        The packaged presets come first, then the plugins', then the user's folder (which wins)."""

    @hookspec
    def promptkit_template_filters(self) -> dict[str, Callable[..., Any]]:
        """Jinja filters for prompt templates, by name (they run inside the template sandbox)."""

    @hookspec
    def promptkit_judges(self) -> list[Any]:
        """Automatic judges that score or vote on images (the judge interface is defined with judges)."""

    @hookspec
    def promptkit_cli_commands(self) -> list[Any]:
        """Extra `promptkit` subcommands (click commands), reachable by name."""


HOOKS = ("promptkit_backends", "promptkit_presets", "promptkit_template_filters", "promptkit_judges",
         "promptkit_cli_commands")
