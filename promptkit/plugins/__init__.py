"""Plugins: entry points in the group ``promptkit`` that add backends, presets, template filters,
judges and commands (see `hookspecs`). A plugin module writes::

    from promptkit.plugins import BackendSpec, hookimpl

    @hookimpl
    def promptkit_backends():
        return [BackendSpec("mine", "mything.backend:MyBackend", "what it runs")]

Nothing here is imported by `import promptkit` or `promptkit --help`; `manager` loads the plugins
the first time something asks for them.
"""

from __future__ import annotations

from .hookspecs import ENTRY_POINT_GROUP, BackendSpec, hookimpl, hookspec

__all__ = ["BackendSpec", "ENTRY_POINT_GROUP", "hookimpl", "hookspec"]
