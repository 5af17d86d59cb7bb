"""The command-line package's shape: command modules import `options`, never each other; help stays light."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "promptkit" / "cli"


def _imports(path: Path) -> set[str]:
    """Every module PATH imports, relative ones written as promptkit.<name> (level 1 = promptkit.cli)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = {0: "", 1: "promptkit.cli", 2: "promptkit"}[node.level]
            module = ".".join(filter(None, [base, node.module]))
            names.add(module)
            if node.module is None:
                names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_command_modules_import_options_only():
    modules = sorted(p for p in CLI.glob("*.py") if p.name not in ("__init__.py", "__main__.py", "options.py"))
    assert {p.stem for p in modules} >= {"prompts", "generate", "ab", "worker", "maintenance", "web", "model"}
    for path in modules:
        cli_imports = {m for m in _imports(path) if m == "promptkit.cli" or m.startswith("promptkit.cli.")}
        assert cli_imports <= {"promptkit.cli.options"}, (path.name, cli_imports)
    assert not {m for m in _imports(CLI / "options.py") if m.startswith("promptkit.cli")}


def test_no_sql_in_the_command_line():
    for path in CLI.glob("*.py"):
        text = path.read_text()
        assert "SELECT " not in text and ".execute(" not in text and ".write()" not in text, path.name


def test_help_loads_no_torch():
    code = ("import sys; from promptkit.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'diffusers' in sys.modules, file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "Usage:" in result.stdout and result.stderr.strip() == "False False"
