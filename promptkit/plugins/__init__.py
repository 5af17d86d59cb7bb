"""Plugins: entry points in the group ``promptkit`` that add backends, presets, template filters,
judges and commands (see `hookspecs`). A plugin module writes::

    from promptkit.plugins import BackendSpec, hookimpl

    @hookimpl
    def promptkit_backends():
        return [BackendSpec("mine", "mything.backend:MyBackend", "what it runs")]

Nothing here is imported by `import promptkit` or `promptkit --help`; `manager` loads the plugins
the first time something asks for them, and `discovery` tells cheaply whether any is installed.
The names below load on first use (pluggy with them).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BackendSpec", "ENTRY_POINT_GROUP", "hookimpl", "hookspec"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import hookspecs

        return getattr(hookspecs, name)
    raise AttributeError(f"module 'promptkit.plugins' has no attribute {name!r}")
