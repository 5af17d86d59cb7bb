"""Loading a pickle can run code: every torch.load in promptkit must pass weights_only=True."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "promptkit"


def unsafe_torch_loads(source: str, filename: str = "<source>") -> list[str]:
    """`file:line` of each torch.load call without a literal weights_only=True, and of each
    `from torch import load` (which would hide calls from this check)."""
    problems = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            problems.append(f"{filename}:{node.lineno}: `from torch import load` hides torch.load from this check")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "load" and ast.unparse(func.value) == "torch":
            safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords)
            if not safe:
                problems.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return problems


def test_every_torch_load_in_promptkit_is_weights_only():
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    problems = [p for f in files for p in unsafe_torch_loads(f.read_text(encoding="utf-8"), str(f))]
    assert problems == []
    # The text agrees with the syntax tree: no torch.load( hidden in a form the walk would miss.
    calls = sum(f.read_text(encoding="utf-8").count("torch.load(") for f in files)
    safe_calls = sum(f.read_text(encoding="utf-8").count("weights_only=True") for f in files)
    assert calls <= safe_calls


def test_the_check_catches_unsafe_calls():
    assert unsafe_torch_loads("import torch\nsd = torch.load(path, weights_only=True)\n") == []
    assert len(unsafe_torch_loads("import torch\nsd = torch.load(path)\n")) == 1
    assert len(unsafe_torch_loads("import torch\nsd = torch.load(path, weights_only=False)\n")) == 1
    assert len(unsafe_torch_loads("import torch\nsd = torch.load(path, **kw)\n")) == 1
    assert len(unsafe_torch_loads("from torch import load\nsd = load(path)\n")) == 1
