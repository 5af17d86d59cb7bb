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


def test_how_made_names_the_model_the_mode_and_each_inputs_key_value():
    from promptkit.cards import how_made, how_made_text

    plain = {"model": "/home/me/models/tiny-sd/", "params": {"family": "sd1", "mode": "txt2img"}}
    assert how_made(plain) == ["tiny-sd (SD 1.x)", "txt2img"]
    busy = {"model": "stabilityai/stable-diffusion-xl-base-1.0", "params": json_text({
        "family": "sdxl", "mode": "img2img", "init_image": "a" * 64, "strength": 0.6,
        "loras": [{"name": "style", "sha256": "b" * 64, "scale": 0.8, "path": "/home/me/loras/style.safetensors"}],
        "controlnets": [{"model": "/home/me/cn/canny-xl", "module": "canny", "scale": 0.5}],
        "refiner": {"model": "/home/me/models/refiner-xl", "switch": 0.8}})}
    assert how_made(busy) == ["stabilityai/stable-diffusion-xl-base-1.0 (SDXL)", "img2img 0.6", "LoRA style:0.8",
                              "ControlNet canny ×0.5", "refiner refiner-xl at 0.8"]
    inpaint = {"model": "m.safetensors", "params": {"init_image": "a" * 64, "mask": "c" * 64, "strength": 0.75,
                                                     "controlnets": [{"model": "/x/depth-net", "module": "none"}]}}
    assert how_made_text(inpaint) == "m · inpaint 0.75 · ControlNet depth-net"
    assert how_made({"model": None, "params": None}) == ["txt2img"]
    assert "/home/me" not in how_made_text(busy)


def test_image_cards_on_the_prompt_page_and_in_the_studio_say_how_the_image_was_made(sample_library,
                                                                                    isolated_library):
    from fastapi.testclient import TestClient

    from promptkit.library import Library
    from promptkit.web import create_app
    from promptkit.web.studio import _image
    from promptkit.pnginfo import encode_png
    from sample_library import add_picture, draw_picture

    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(lib.list_prompts()[0]["id"])
        row = lib.get_generation(add_picture(lib, prompt, 77))
        sha, file = lib.store_image(encode_png(draw_picture(78, 64), {
            "positive": prompt["positive"], "negative": prompt["negative"], "seed": 78, "sampler": "Euler a",
            "steps": 20, "cfg": 7.0, "width": 64, "height": 64, "noise_device": "cpu", "extra": {},
            "model": "sample-painter"}))
        row.update(image_sha256=sha, image_path=lib.relative_image_path(file), seed=78, params={
            "family": "sdxl", "mode": "txt2img", "loras": [{"name": "ink", "sha256": "b" * 64, "scale": 0.7}]})
        gen_id = lib.add_generation({k: v for k, v in row.items() if k not in ("id", "created_at")})
        row = lib.get_generation(gen_id)
    with TestClient(create_app(isolated_library), base_url="http://127.0.0.1:8765",
                    headers={"Sec-Fetch-Site": "same-origin"}) as client:
        html = client.get(f"/prompts/{prompt['id']}").text
    assert "sample-painter (SDXL) · txt2img · LoRA ink:0.7" in html
    assert _image(row)["made"] == "sample-painter (SDXL) · txt2img · LoRA ink:0.7"
