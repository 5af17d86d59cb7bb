"""import-png: AUTOMATIC1111 / Civitai PNGs and promptkit's own, duplicates skipped, bad files refused."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from promptkit.cli import main
from promptkit.library import Library

A1111_TEXT = (
    "a castle on a hill, (masterpiece:1.2), <lora:detail:0.6>\n"
    "BREAK golden hour\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 12345, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, RNG: NV, Version: v1.10.1"
)


def write_png(path: Path, parameters: str | None = None, itxt: bool = False) -> Path:
    info = PngInfo()
    if parameters is not None:
        if itxt:
            info.add_itxt("parameters", parameters)
        else:
            info.add_text("parameters", parameters)
    Image.new("RGB", (16, 16), "navy").save(path, pnginfo=info)
    return path


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_a1111_png_becomes_a_prompt_with_its_settings(isolated_library, tmp_path):
    png = write_png(tmp_path / "castle.png", A1111_TEXT)
    result = run("import-png", str(png), "--json")
    assert result.exit_code == 0, result.output
    (added,) = json.loads(result.output)
    assert added["status"] == "added" and added["source"] == "a1111"
    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(added["prompt_id"])
    assert prompt["template"] == "imported" and prompt["template_digest"] == ""
    assert prompt["positive"] == "a castle on a hill, (masterpiece:1.2), <lora:detail:0.6>\nBREAK golden hour"
    assert prompt["negative"] == "blurry, lowres"
    assert prompt["fields"]["subject"] == prompt["positive"]
    assert prompt["fields"]["negative"] == ["blurry, lowres"]
    settings = prompt["fields"]["imported"]["settings"]
    assert settings["RNG"] == "NV" and settings["Seed"] == "12345" and settings["Schedule type"] == "Karras"
    assert prompt["fields"]["imported"]["parameters"] == A1111_TEXT
    assert prompt["notes"].startswith("imported from castle.png: Steps: 28, Sampler: DPM++ 2M")
    assert "RNG: NV" in prompt["notes"]
    assert prompt["tags"] == ["imported"]

    again = run("import-png", str(png))
    assert again.exit_code == 0 and "skipped, same prompt as prompt 1" in again.output
    copy = write_png(tmp_path / "copy.png", A1111_TEXT.replace("Seed: 12345", "Seed: 999"), itxt=True)
    assert "skipped" in run("import-png", str(copy)).output  # same prompt text, another seed
    with Library(isolated_library) as lib:
        assert lib.db["prompts"].count == 1


def test_civitai_unicode_itxt_and_several_files_at_once(isolated_library, tmp_path):
    one = write_png(tmp_path / "one.png", "château sous la neige ❄\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
                                          "Seed: 1, Size: 512x512", itxt=True)
    two = write_png(tmp_path / "two.png", "a fox\nNegative prompt: text\nSteps: 20, Sampler: Euler, CFG scale: 7, "
                                          "Seed: 2, Size: 512x512")
    result = run("import-png", str(one), str(two), str(one), "--json")
    assert [r["status"] for r in json.loads(result.output)] == ["added", "added", "skipped"]
    with Library(isolated_library) as lib:
        assert [p["positive"] for p in lib.list_prompts()] == ["a fox", "château sous la neige ❄"]
        assert [p["id"] for p in lib.search("château")]


def test_promptkit_png_uses_its_own_chunk(populated_library, tmp_path):
    with Library(populated_library) as lib:
        gen = lib.get_generation(3)
        source = lib.get_prompt(gen["prompt_id"])
        png = lib.image_path(gen)
    # In the library it came from, it is the prompt it was made from.
    result = json.loads(run("import-png", str(png), "--json").output)
    assert result == [{"file": str(png), "status": "skipped", "prompt_id": source["id"], "source": "promptkit",
                       "reason": f"same prompt as prompt {source['id']}"}]
    # In another library it arrives with its template, digest and fields.
    other = tmp_path / "other.db"
    (added,) = json.loads(run("--db", str(other), "import-png", str(png), "--json").output)
    assert added["status"] == "added" and added["settings"]["Seed"] == 7 and added["settings"]["RNG"] == "CPU"
    with Library(other) as lib:
        prompt = lib.get_prompt(added["prompt_id"])
    for key in ("positive", "negative", "template", "template_digest", "fields"):
        assert prompt[key] == source[key]
    assert "Seed: 7" in prompt["notes"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"GIF89a not a png"), "is not a PNG"),
    (lambda p: p.write_bytes(_a1111_bytes(p)[:-30]), "truncated"),
    (lambda p: p.write_bytes(_a1111_bytes(p)[:100]), "truncated"),
    (lambda p: write_png(p), "has no `parameters` text chunk"),
    (lambda p: write_png(p, "a castle\nSteps: many, Seed: 1, Size: 512x512"), "'Steps' is not a number"),
    (lambda p: write_png(p, "Negative prompt: only\nSteps: 2, Seed: 1, Size: 8x8"), "has no prompt"),
    (lambda p: None, "No such file"),
    (lambda p: p.mkdir(), "bad.png"),
])
def test_bad_files_are_one_line_errors_and_import_nothing(isolated_library, tmp_path, make, message):
    good = write_png(tmp_path / "good.png", A1111_TEXT)
    bad = tmp_path / "bad.png"
    make(bad)
    result = run("import-png", str(good), str(bad))
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0] and "bad.png" in lines[0]
    assert not isolated_library.exists()  # nothing imported; the library was not even created


def _a1111_bytes(path: Path) -> bytes:
    write_png(path, A1111_TEXT)
    return path.read_bytes()


# A real AUTOMATIC1111 1.6 settings line with LoRA hashes, two ControlNet units and a refiner.
A1111_INPUTS = (
    "masterpiece, a knight in a forest, <lora:add_detail:0.7> <lora:epiNoiseoffset_v2:0.5>\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3236718293, Size: 512x768, Model hash: 6ce0161689, "
    "Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Mask blur: 4, "
    'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1, Resize Mode: Crop and '
    "Resize, Low Vram: False, Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0, Guidance "
    'End: 1, Pixel Perfect: False, Control Mode: Balanced", '
    'ControlNet 1: "Module: none, Model: control_v11f1p_sd15_depth [cfd03158], Weight: 0.6, Resize Mode: Crop and '
    'Resize, Low Vram: False, Guidance Start: 0.1, Guidance End: 0.8, Pixel Perfect: True, Control Mode: Balanced", '
    'Lora hashes: "add_detail: 7c6bad76eb54, epiNoiseoffset_v2: d1131f7207d6", '
    "Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.8, RNG: GPU, Version: v1.6.0"
)


def test_a1111_lora_controlnet_and_refiner_keys_become_params(isolated_library, tmp_path):
    png = write_png(tmp_path / "knight.png", A1111_INPUTS)
    (added,) = json.loads(run("import-png", str(png), "--json").output)
    with Library(isolated_library) as lib:
        recorded = lib.get_prompt(added["prompt_id"])["fields"]["imported"]["params"]
    assert recorded == added["params"]
    assert recorded["model_hash"] == "6ce0161689" and recorded["model"] == "v1-5-pruned-emaonly"
    assert recorded["strength"] == 0.45 and recorded["mask_blur"] == 4 and recorded["noise_device"] == "gpu"
    assert recorded["seed"] == 3236718293 and recorded["width"] == 512 and recorded["height"] == 768
    assert recorded["loras"] == [{"name": "add_detail", "sha256": "7c6bad76eb54"},
                                 {"name": "epiNoiseoffset_v2", "sha256": "d1131f7207d6"}]
    first, second = recorded["controlnets"]
    assert first == {"module": "canny", "model": "control_v11p_sd15_canny", "model_hash": "d14c016b", "scale": 1.0,
                     "start": 0.0, "end": 1.0, "options": {
                         "Resize Mode": "Crop and Resize", "Low Vram": "False", "Processor Res": "512",
                         "Threshold A": "100", "Threshold B": "200", "Pixel Perfect": "False",
                         "Control Mode": "Balanced"}}
    assert (second["module"], second["model"], second["scale"], second["start"], second["end"]) == \
        ("none", "control_v11f1p_sd15_depth", 0.6, 0.1, 0.8)
    assert recorded["refiner"] == {"model": "sd_xl_refiner_1.0", "model_hash": "7440042bbd", "switch": 0.8}


@pytest.mark.parametrize("bad, message", [
    ('Lora hashes: "no hash here"', "'Lora hashes' is not `name: hash"),
    ('ControlNet 0: "Module: canny, Weight: 1"', "'ControlNet 0' has no Module and Model"),
    ('ControlNet 0: "Module: canny, Model: cn, Weight: heavy"', "'ControlNet 0 Weight' is not a number"),
    ("Refiner: r, Refiner switch at: late", "'Refiner switch at' is not a number"),
])
def test_bad_input_keys_are_one_line_errors(isolated_library, tmp_path, bad, message):
    png = write_png(tmp_path / "bad.png", f"a castle\nSteps: 2, Seed: 1, Size: 8x8, {bad}")
    result = run("import-png", str(png))
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert message in result.output and "bad.png" in result.output
    assert not isolated_library.exists()


def test_refiner_keys_written_are_read_back():
    from promptkit.pnginfo import a1111_parameters, parse_a1111_parameters

    meta = {"positive": "a fox", "negative": "", "steps": 20, "sampler": "Euler", "cfg": 5.0, "seed": 3,
            "width": 64, "height": 64, "model": "/models/tiny-sdxl", "model_hash": "abc123def456",
            "extra": {"refiner": {"model": "/models/tiny-refiner/", "switch": 0.7, "model_hash": "0123456789ab"}}}
    parsed = parse_a1111_parameters(a1111_parameters(meta))
    assert parsed["model_hash"] == "abc123def456"
    assert parsed["refiner"] == {"model": "tiny-refiner", "model_hash": "0123456789ab", "switch": 0.7}


def test_generated_png_round_trips_lora_controlnet_and_model_hash(tiny_engine, tmp_path, monkeypatch):
    """Generate with a tiny LoRA and ControlNet, import the PNG into a fresh library, compare with the row;
    then the same PNG without its promptkit chunk, read from the A1111 keys alone."""
    import numpy as np

    from promptkit.generation import GenerationJob, run_job
    from promptkit.inputs import InputRequest, prepare_inputs
    from promptkit.params import GenerationParams
    from promptkit.pnginfo import read_png_text
    from promptkit.templates import Fields, PromptBuilder
    from promptkit.tinymodel import write_tiny_pipeline

    lora = write_tiny_pipeline(tmp_path / "loras" / "style.safetensors", "lora")
    controlnet = write_tiny_pipeline(tmp_path / "cn", "controlnet")
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")).save(tmp_path / "c.png")
    source = tmp_path / "source.db"
    with Library(source) as lib:
        prompt = lib.get_prompt(lib.save_prompt(PromptBuilder().render(Fields(subject="a fox")), name="fox"))
        prepared = prepare_inputs(InputRequest(loras=[f"{lora}:0.6"], controlnets=[str(controlnet)],
                                               control_images=[str(tmp_path / "c.png")], control_modules=["canny"],
                                               control_scales=[0.8], control_ends=[0.9]), prompt["positive"])
        tiny_engine.check_request(prepared.extra)
        params = GenerationParams(steps=2, cfg=5.0, sampler="Euler", width=64, height=64, extra=prepared.store(lib))
        (made,) = run_job(lib, tiny_engine, GenerationJob(prompt=prompt, params=params, seeds=[5])).generations
        gen = lib.get_generation(made["id"])
    tiny_engine.unload_loras()
    lora_row, unit_row = gen["params"]["loras"][0], gen["params"]["controlnets"][0]

    fresh = tmp_path / "fresh.db"
    (added,) = json.loads(run("--db", str(fresh), "import-png", made["image_path"], "--json").output)
    assert added["source"] == "promptkit"
    got = added["params"]
    # The PNG names the model, the LoRA and the ControlNet (issue 18 item 19): no local paths
    for key in ("seed", "steps", "cfg", "sampler", "width", "height", "model_hash", "noise_device"):
        assert got[key] == gen[key], key
    assert got["model"] == Path(gen["model"]).name == "tiny-sd"
    assert got["loras"] == [{k: lora_row[k] for k in ("name", "sha256", "scale")}]
    assert got["controlnets"] == [{**{k: unit_row[k] for k in ("module", "model_hash", "scale", "start", "end")},
                                   "model": Path(unit_row["model"]).name}]
    assert got["controlnets"][0]["scale"] == 0.8 and got["controlnets"][0]["end"] == 0.9
    assert added["settings"]["Lora hashes"] == f"style: {lora_row['sha256'][:12]}"
    with Library(fresh) as lib:
        assert f"Lora hashes: style: {lora_row['sha256'][:12]}" in lib.get_prompt(added["prompt_id"])["notes"]

    # The A1111 keys alone (as another tool that keeps only `parameters` would pass the PNG on)
    only_a1111 = write_png(tmp_path / "a1111.png", read_png_text(made["image_path"])["parameters"])
    (added,) = json.loads(run("--db", str(tmp_path / "third.db"), "import-png", str(only_a1111), "--json").output)
    assert added["source"] == "a1111"
    got = added["params"]
    for key in ("seed", "steps", "cfg", "sampler", "width", "height", "model_hash"):
        assert got[key] == gen[key], key
    assert got["model"] == Path(gen["model"]).name
    assert got["loras"] == [{"name": "style", "sha256": lora_row["sha256"][:12]}]
    # the LoRA's scale, in the prompt as A1111 writes it
    assert read_png_text(made["image_path"])["parameters"].splitlines()[0].endswith(" <lora:style:0.6>")
    (unit,) = got["controlnets"]
    assert (unit["module"], unit["model"], unit["scale"], unit["start"], unit["end"]) == \
        ("canny", "cn", unit_row["scale"], unit_row["start"], unit_row["end"])
