"""The package's one-way import rules, each checked in a fresh interpreter.

- the engine imports nothing from the library (no sqlite_utils, no promptkit.library);
- the library, the records, `promptkit --help`, `build` and `search` import no torch or diffusers;

(No SQL outside the library: tests/test_no_sql_outside_library.py; the CLI's modules importing only
their shared options: tests/test_cli_layout.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "promptkit"
HEAVY = ("torch", "diffusers", "transformers")


def loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level modules (and promptkit submodules) loaded after running CODE in a new interpreter."""
    probe = (
        "import sys, json\n"
        "sys.argv = ['promptkit']\n"
        f"{code}\n"
        "print('@@' + json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    line = [part for part in result.stdout.splitlines() if part.startswith("@@")][-1]
    return set(json.loads(line[2:]))


def test_engine_imports_nothing_from_the_library():
    modules = loaded_after("import promptkit.engine")
    assert "torch" in modules  # the probe really loaded the engine
    assert "sqlite_utils" not in modules
    assert not {m for m in modules if m == "promptkit.library" or m.startswith("promptkit.library.")}


@pytest.mark.parametrize("module", ["promptkit", "promptkit.library", "promptkit.records", "promptkit.a1111",
                                    "promptkit.experiments", "promptkit.service", "promptkit.cli"])
def test_layers_without_torch(module):
    modules = loaded_after(f"import {module}")
    assert module in modules
    assert not modules & {"torch", "diffusers"}, f"{module} pulled in {sorted(modules & set(HEAVY))}"


def run_cli(commands: list[list[str]]) -> str:
    """Code that runs each promptkit command line in turn, in-process, stopping on an error."""
    lines = ["from promptkit.cli import main"]
    for args in commands:
        lines.append(f"try:\n    main({args!r}, standalone_mode=False)\nexcept SystemExit as exit:\n"
                     f"    assert not exit.code, exit.code")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("args", [
    ["--help"],
    ["build", "--subject", "a lighthouse on a cliff", "--style", "watercolor"],
    ["search", "lighthouse"],
])
def test_cli_commands_without_torch(args, tmp_path):
    db = ["--db", str(tmp_path / "library.db")]
    modules = loaded_after(run_cli([[*db, "init"], [*db, *args]]))
    assert "promptkit.cli" in modules
    assert not modules & {"torch", "diffusers"}, f"promptkit {' '.join(args)} pulled in {sorted(modules & set(HEAVY))}"


def test_build_without_save_opens_no_database_code(tmp_path):
    """`build` renders and lints: it loads neither sqlite-utils nor numpy (they cost most of a cold start)."""
    modules = loaded_after(run_cli([["--db", str(tmp_path / "library.db"), "build", "--subject", "a fox"]]))
    assert "promptkit.templates" in modules
    assert not modules & {"sqlite_utils", "numpy", "torch", "transformers"}, sorted(
        modules & {"sqlite_utils", "numpy", "torch", "transformers"})
    assert not (tmp_path / "library.db").exists()
