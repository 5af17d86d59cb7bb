"""The public Python API: the README's "Use it from Python" script runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)\n```", section, re.S).group(1)


def test_readme_python_script_runs(tmp_path):
    script = readme_script()
    assert 8 <= len(script.splitlines()) <= 16
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PROMPTKIT_ENGINE": str(tmp_path / "no-engine.sock")}
    env.pop("PROMPTKIT_DB", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("A vs B: ")
    import sqlite3

    db = sqlite3.connect(tmp_path / "library.db")
    counts = [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
              for table in ("prompts", "generations", "ratings", "experiments", "votes")]
    db.close()
    assert counts == [2, 2 + 2 * 3, 1, 1, 3]


def test_public_api_is_documented_and_light():
    code = ("import inspect, sys, promptkit; "
            "functions = [n for n in promptkit.__all__ if inspect.isfunction(getattr(promptkit, n))]; "
            "print(len(functions), [n for n in functions if ':param' not in (getattr(promptkit, n).__doc__ or '')], "
            "'torch' in sys.modules, 'diffusers' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    count, rest = out.strip().split(" ", 1)
    assert int(count) >= 20 and rest == "[] False False"
