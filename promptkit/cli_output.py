"""Output helpers for the command modules: the shared `--json` option and `emit`.

cli.py still carries its own copies of these two; it can import them from here once the
branches that edit cli.py have merged. Command modules import from here, not from cli.py:
`python -m promptkit.cli` runs cli.py as `__main__`, and importing `promptkit.cli` from a
module it loads would run it a second time, mid-import.
"""

from __future__ import annotations

import json
from typing import Any

import click


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(func)


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    elif text is not None:
        click.echo(text)
