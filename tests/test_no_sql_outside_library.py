"""All of promptkit's SQL and every transaction live in promptkit/library/: nothing else runs a
query, opens a write transaction or holds SQL text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "promptkit"
LIBRARY = PACKAGE / "library"
SQL_CALLS = {"execute", "executemany", "executescript", "query", "write"}
SQL_STARTS = ("BEGIN", "SELECT ", "INSERT ", "UPDATE ", "DELETE FROM")


def modules_outside_library() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if LIBRARY not in p.parents)


def sql_findings(source: str, name: str) -> list[str]:
    """Each SQL call or SQL string in SOURCE (the module NAME), as "name:line: what"."""
    tree = ast.parse(source, filename=name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            if node.func.attr == "write" and node.args:
                continue  # file.write(text), stream.write(...): only the library's `write()` takes no argument
            found.append(f"{name}:{node.lineno}: .{node.func.attr}(...)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.lstrip().startswith(SQL_STARTS):  # SQL is written in capitals here
                found.append(f"{name}:{node.lineno}: SQL text {node.value[:40]!r}")
    return found


def test_the_walk_sees_the_package() -> None:
    modules = modules_outside_library()
    assert PACKAGE / "portable.py" in modules and PACKAGE / "cli" / "__init__.py" in modules
    assert not any(LIBRARY in p.parents for p in modules)


@pytest.mark.parametrize("path", modules_outside_library(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_sql_or_transaction_outside_the_library(path: Path) -> None:
    assert sql_findings(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent))) == []


def test_the_check_finds_sql() -> None:
    source = ('def f(lib, conn, out):\n    with lib.write():\n        conn.execute("SELECT 1")\n'
              '    out.write("Selected")\n    db.query("x")\n    text = "DELETE FROM prompts"\n')
    assert sorted(line.split(": ", 1)[1] for line in sql_findings(source, "sample.py")) == [
        ".execute(...)", ".query(...)", ".write(...)", "SQL text 'DELETE FROM prompts'", "SQL text 'SELECT 1'"]
