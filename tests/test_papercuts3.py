"""Issue 18's papercuts, third part: image cards that say how an image was made, terminal voting that shows
the pair, an offline hub id in one line, and `model info`/`model tiny` that tell the truth."""

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from promptkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args, ok=True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_a_hub_id_missing_from_the_cache_offline_is_one_line(isolated_library, tmp_path):
    run("build", "--subject", "a heron", "--save", "P")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-empty"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "promptkit", "generate", "P", "--model", "nobody/nothing-here",
                           "--seeds", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "not in the local" in lines[0] and "huggingface-cli download nobody/nothing-here" in lines[0], lines
