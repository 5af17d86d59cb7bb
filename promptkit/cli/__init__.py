"""The `promptkit` command line: the main group; each command group lives in its own module.

Every command parses its options, calls `promptkit.service`, and prints. Command modules import
`options` and the service layer, never each other or this package.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import click

from .. import __version__
from ..errors import PromptkitError
from . import ab, families, generate, importing, maintenance, matrix, model, plugins, prompts, score, web, worker
from .options import name_flags

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class PromptkitGroup(click.Group):
    """Turns every PromptkitError into one line on stderr and exit status 1."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
        # A name promptkit does not know may be a plugin's command: plugins load only then (not at --help).
        return super().get_command(ctx, cmd_name) or plugins.plugin_command(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptkitError as exc:
            keep: tuple[str, ...] = ()
            if ctx.invoked_subcommand == "ab":  # variants and axes name settings as KEY=VALUE, not flags
                from ..experiments.variants import OVERRIDABLE

                keep = OVERRIDABLE
            raise click.ClickException(name_flags(str(exc), keep)) from None
        except sqlite3.DatabaseError as exc:
            raise click.ClickException(f"library error: {exc}") from None


@click.group(cls=PromptkitGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="promptkit")
@click.option("--db", type=click.Path(dir_okay=True), envvar="PROMPTKIT_DB", default=None,
              help="Library file (default ./library.db; env: PROMPTKIT_DB).")
@click.pass_context
def main(ctx: click.Context, db: str | None) -> None:
    """promptkit: author prompts from fields, generate seed-locked images, keep a prompt library.

    Quick start offline: `promptkit model tiny ./tiny-sd`, then
    `promptkit build --subject "a lighthouse" --style watercolor --save first` and
    `promptkit generate first --model ./tiny-sd --seeds 1-4`.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


for _module in (prompts, generate, ab, worker, maintenance, importing, web, model, families, score, plugins):
    for _command in _module.COMMANDS:
        main.add_command(_command)
for _group, _commands in importing.SUBCOMMANDS.items():
    for _command in _commands:
        main.commands[_group].add_command(_command)
ab.ab.add_command(matrix.ab_matrix)  # `ab matrix` and `ab wildcards` live in cli/matrix.py
ab.ab.add_command(matrix.ab_wildcards)

__all__ = ["main"]
