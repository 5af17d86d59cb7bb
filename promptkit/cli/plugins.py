"""`promptkit plugins`: what is installed through the `promptkit` entry-point group, and where from."""

from __future__ import annotations

from typing import Any

import click

from .options import emit, json_option


def plugin_command(name: str) -> Any:
    """A command a plugin adds (`promptkit_cli_commands`), or None: loads the plugins only when asked."""
    from ..plugins.manager import get_plugins

    return get_plugins().cli_commands().get(name)


def _text(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        where = row["distribution"] or "?"
        lines.append(f"{row['name']:<12} {row['status']:<7} {where}  {row['location'] or row['value']}")
        for kind, names in sorted(row["provides"].items()):
            lines.append(f"{'':<12} {kind.replace('_', ' ')}: {', '.join(names)}")
        if row["error"]:
            lines.append(f"{'':<12} error: {row['error']}")
    return "\n".join(lines)


@click.command("plugins")
@json_option
def plugins(as_json: bool) -> None:
    """List installed plugins (entry-point group `promptkit`), where each comes from and what it adds:
    backends (`--model SCHEME:NAME`), presets, template filters, judges and commands.

    A plugin that fails to load is listed as failed with its error, and promptkit works without it.
    """
    from ..plugins.manager import get_plugins

    rows = get_plugins().listing()
    emit(rows, as_json, _text(rows))


COMMANDS = [plugins]
