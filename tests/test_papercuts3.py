"""Issue 18's papercuts, third part: image cards that say how an image was made, terminal voting that shows
the pair, an offline hub id in one line, and `model info`/`model tiny` that tell the truth."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args, ok=True, input=None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
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


def test_a_seeds_pairs_are_not_served_back_to_back_when_another_seed_has_one():
    from itertools import combinations

    from promptkit.experiments.votes import pick_candidate

    candidates = [(seed, a, b) for seed in (1, 2, 3) for a, b in combinations("ABC", 2)]
    served, last = [], None
    while candidates:
        pick = pick_candidate(candidates, last_seed=last)
        candidates.remove(pick)
        served.append(pick)
        last = pick[0]
    seeds = [pick[0] for pick in served]
    assert all(x != y for x, y in zip(seeds, seeds[1:])), seeds
    # a skipped pair still comes after every other, whatever its seed
    assert pick_candidate([(1, "A", "B"), (1, "A", "C")], skipped={(1, frozenset("AB"))}, last_seed=1) == (1, "A", "C")
    # one seed left: its pairs are served in turn
    assert pick_candidate([(2, "A", "B")], last_seed=2) == (2, "A", "B")


def test_the_side_by_side_image_has_both_images_under_their_keys():
    from PIL import Image

    from promptkit.service.experiments import SIDE_BY_SIDE_GAP, labelled_pair

    left, right = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 255))
    sheet = labelled_pair(left, right)
    band = sheet.height - 48
    assert sheet.size == (64 + 64 + SIDE_BY_SIDE_GAP, 48 + band) and band > 0
    assert sheet.crop((0, band, 64, band + 48)).getcolors() == [(64 * 48, (255, 0, 0))]
    right_half = sheet.crop((64 + SIDE_BY_SIDE_GAP, band, sheet.width, sheet.height))
    assert right_half.getcolors() == [(64 * 48, (0, 0, 255))]
    labels = sheet.crop((0, 0, sheet.width, band))
    assert len(labels.getcolors()) > 1  # the "1" and "2" are drawn in the band


@pytest.fixture
def three_variants(isolated_library, tiny_engine):
    from promptkit.experiments import VariantSpec, create_experiment, run_experiment
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder

    with Library(isolated_library) as library:
        builder = PromptBuilder()
        for name, style in (("A", "watercolor"), ("B", "cinematic"), ("C", "sketch")):
            library.save_prompt(builder.render(Fields(subject="a fox", style=[style])), name=name)
        create_experiment(library, "trio", [VariantSpec(x, x) for x in "ABC"], [1, 2],
                          GenerationParams(steps=2, cfg=6.0, sampler="Euler"))
        run_experiment(library, tiny_engine, "trio", batch_size=2)
        yield library


def test_scripted_voting_alternates_seeds_and_the_viewer_opens_a_labelled_pair(three_variants, monkeypatch):
    import re

    from PIL import Image

    from promptkit.cli import ab as ab_cli
    from promptkit.service.experiments import VotingSession

    result = run("ab", "vote", "trio", "--no-view", input="1\n2\nt\n1\n2\n1\n")
    seeds = [int(s) for s in re.findall(r"^pair \d+ of \d+ \(seed (\d+)\)", result.output, re.M)]
    assert len(seeds) == 6 and all(x != y for x, y in zip(seeds, seeds[1:])), seeds
    assert "6 votes recorded" in result.output

    opened = []
    monkeypatch.setattr(ab_cli.click, "launch", lambda path: opened.append(path) or 0)
    viewer = ab_cli.PairViewer(three_variants, view=True, side_by_side=None)
    viewer.view = True  # as on a terminal
    run("ab", "undo", "trio")
    viewer.show(VotingSession(three_variants, "trio").next())
    assert len(opened) == 1 and Path(opened[0]).is_file()
    with Image.open(opened[0]) as sheet:
        assert sheet.width == 64 + 64 + 16 and sheet.height > 64


def test_a_single_key_answers_on_a_terminal(monkeypatch):
    from promptkit.cli import ab as ab_cli

    keys = iter(["x", "T"])
    monkeypatch.setattr(ab_cli.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(ab_cli.click, "getchar", lambda: next(keys))
    assert ab_cli._answer() == "t"
