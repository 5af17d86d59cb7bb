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


def test_model_info_reports_the_size_a_tiny_model_really_generates(tiny_model):
    import json

    text = run("model", "info", tiny_model).output
    assert "generates 64×64" in text and "family default 512" in text, text
    data = json.loads(run("model", "info", tiny_model, "--json").output)
    assert data["native_size"] == 64 and data["default_size"] == 512 and data["kind"] == "pipeline"


def test_model_tiny_says_what_it_wrote_and_model_info_reads_a_controlnet(tmp_path):
    import json

    wrote = run("model", "tiny", str(tmp_path / "cn"), "--kind", "controlnet", "--for", "sdxl").output
    assert "tiny ControlNet" in wrote and "Stable Diffusion pipeline" not in wrote, wrote
    data = json.loads(run("model", "info", str(tmp_path / "cn"), "--json").output)
    assert data["kind"] == "controlnet" and data["family"] == "sdxl", data
    assert "ControlNet" in run("model", "info", str(tmp_path / "cn")).output
    wrote = run("model", "tiny", str(tmp_path / "style"), "--kind", "lora").output
    assert "tiny LoRA" in wrote and "Stable Diffusion pipeline" not in wrote, wrote


def test_controlnet_family_by_cross_attention_width(tmp_path):
    from promptkit.families import detect_controlnet, native_size

    (tmp_path / "config.json").write_text(json_text({"_class_name": "ControlNetModel", "cross_attention_dim": 1024}))
    assert detect_controlnet(tmp_path)["family"] == "sd2"
    assert native_size({"sample_size": 96}, {"block_out_channels": [1, 2, 3, 4]}) == 768
    assert native_size({"sample_size": 32}, {"block_out_channels": [4, 8]}) == 64


def json_text(data):
    import json

    return json.dumps(data)
