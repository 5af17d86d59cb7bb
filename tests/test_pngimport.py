"""import-png, the old name of import-images: the same command; promptkit's own PNGs keep their
template and fields; A1111 LoRA, ControlNet and refiner keys; a generated PNG round-trips."""

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


def imported(*args) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_import_png_is_import_images(isolated_library, tmp_path):
    assert "import-images" in run("import-png", "--help").output
    assert "Alias of import-images" in run("--help").output
    png = write_png(tmp_path / "castle.png", A1111_TEXT)
    report = imported("import-png", str(png))
    assert report["counts"]["imported"] == 1 and report["by_tool"]["a1111"]["imported"] == 1
    with Library(isolated_library) as lib:
        gen = lib.get_generation(report["files"][0]["generation_id"])
        prompt = lib.get_prompt(gen["prompt_id"])
    assert prompt["positive"] == "a castle on a hill, (masterpiece:1.2), <lora:detail:0.6>\nBREAK golden hour"
    assert prompt["negative"] == "blurry, lowres" and prompt["template"] == "imported"
    assert (gen["seed"], gen["steps"], gen["cfg"], gen["width"], gen["height"]) == (12345, 28, 6.5, 512, 768)
    assert gen["source"] == "a1111" and gen["source_metadata"] == json.dumps({"parameters": A1111_TEXT})
    # the same file again, under either name: nothing added; another seed of the same prompt: a second image
    assert imported("import-images", str(png))["counts"]["duplicate"] == 1
    other_seed = write_png(tmp_path / "copy.png", A1111_TEXT.replace("Seed: 12345", "Seed: 999"), itxt=True)
    assert imported("import-png", str(other_seed))["counts"]["imported"] == 1
    with Library(isolated_library) as lib:
        assert lib.db["prompts"].count == 1 and lib.db["generations"].count == 2


def test_a_bad_file_is_one_line_and_the_rest_is_imported(isolated_library, tmp_path):
    good = write_png(tmp_path / "good.png", A1111_TEXT)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:100])
    result = run("import-png", str(bad), str(good))
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("skipped")]
    assert "bad.png" in line and "truncated" in line
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == 1


def test_promptkit_png_keeps_its_template_and_fields(populated_library, tmp_path):
    with Library(populated_library) as lib:
        gen = lib.get_generation(3)
        source = lib.get_prompt(gen["prompt_id"])
        png = lib.image_path(gen)
    # another image with the same promptkit chunk (other pixels)
    sibling_png = tmp_path / "sibling.png"
    with Image.open(png) as picture:
        info = PngInfo()
        for key, text in picture.text.items():
            info.add_itxt(key, text)
        picture.convert("RGB").point(lambda v: 255 - v).save(sibling_png, pnginfo=info)
    # In the library it came from, it is that generation already.
    report = imported("import-png", str(png))
    assert report["files"][0]["status"] == "duplicate" and report["files"][0]["generation_id"] == 3
    # In another library it arrives with its template, digest and fields, and settings.
    other = tmp_path / "other.db"
    report = imported("--db", str(other), "import-png", str(png), str(sibling_png))
    assert report["by_tool"] == {"promptkit": {"imported": 2, "duplicate": 0, "failed": 0, "would_import": 0}}
    with Library(other) as lib:
        assert lib.db["prompts"].count == 1  # both images of the prompt belong to one prompt
        copy = lib.get_generation(report["files"][0]["generation_id"])
        prompt = lib.get_prompt(copy["prompt_id"])
    for key in ("positive", "negative", "template", "template_digest", "fields"):
        assert prompt[key] == source[key], key
    for key in ("seed", "steps", "cfg", "width", "height", "image_sha256"):
        assert copy[key] == gen[key], key
    assert copy["source"] == "promptkit"


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


def imported_settings(db: Path, report: dict, index: int = 0) -> tuple[dict, dict]:
    """The generation row an import added and the settings it recorded (params.imported)."""
    with Library(db) as lib:
        gen = lib.get_generation(report["files"][index]["generation_id"])
    return gen, gen["params"]["imported"]


def test_a1111_lora_controlnet_and_refiner_keys_become_settings(isolated_library, tmp_path):
    png = write_png(tmp_path / "knight.png", A1111_INPUTS)
    gen, recorded = imported_settings(isolated_library, imported("import-png", str(png)))
    settings = recorded["settings"]
    assert settings["model_hash"] == "6ce0161689" == gen["model_hash"]
    assert settings["model"] == "v1-5-pruned-emaonly" == gen["model"]
    assert settings["strength"] == 0.45 and settings["noise_device"] == "gpu" and gen["params"]["mode"] == "img2img"
    assert recorded["other"]["Mask blur"] == "4"  # every key the tool wrote is kept under its own name
    assert settings["seed"] == 3236718293 == gen["seed"] and (gen["width"], gen["height"]) == (512, 768)
    assert settings["loras"] == [{"name": "add_detail", "scale": 0.7, "hash": "7c6bad76eb54"},
                                 {"name": "epiNoiseoffset_v2", "scale": 0.5, "hash": "d1131f7207d6"}]
    first, second = settings["controlnets"]
    assert first == {"module": "canny", "model": "control_v11p_sd15_canny", "model_hash": "d14c016b", "scale": 1.0,
                     "start": 0.0, "end": 1.0, "options": {
                         "Resize Mode": "Crop and Resize", "Low Vram": "False", "Processor Res": "512",
                         "Threshold A": "100", "Threshold B": "200", "Pixel Perfect": "False",
                         "Control Mode": "Balanced"}}
    assert (second["module"], second["model"], second["scale"], second["start"], second["end"]) == \
        ("none", "control_v11f1p_sd15_depth", 0.6, 0.1, 0.8)
    assert settings["refiner"] == {"model": "sd_xl_refiner_1.0", "model_hash": "7440042bbd", "switch": 0.8}
    assert recorded["uncertain"] == []


@pytest.mark.parametrize("bad, uncertain", [
    ('ControlNet 0: "Module: canny, Weight: 1"', "ControlNet 0 could not be read"),
    ('ControlNet 0: "Module: canny, Model: cn, Weight: heavy"', "ControlNet 0 could not be read"),
    ("Steps: many", "Steps 'many' is not a number"),
    ('Hashes: {"model": ', "Hashes is not valid JSON"),
])
def test_a_key_that_does_not_read_is_named_uncertain_and_the_rest_kept(isolated_library, tmp_path, bad, uncertain):
    png = write_png(tmp_path / "odd.png", f"a castle\nSeed: 1, Size: 8x8, {bad}")
    report = imported("import-png", str(png))
    assert report["counts"]["imported"] == 1 and report["files"][0]["uncertain"] == [uncertain]
    gen, recorded = imported_settings(isolated_library, report)
    assert (gen["seed"], gen["width"], gen["height"]) == (1, 8, 8) and recorded["uncertain"] == [uncertain]
    verbose = run("import-png", str(png), "--verbose").output  # a duplicate now, still said
    assert f"uncertain {png}: {uncertain}" in verbose


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
    report = imported("--db", str(fresh), "import-png", made["image_path"])
    row, recorded = imported_settings(fresh, report)
    assert recorded["tool"] == "promptkit" and row["image_sha256"] == gen["image_sha256"]
    got = recorded["settings"]
    # The PNG names the model, the LoRA and the ControlNet (issue 18 item 19): no local paths
    for key in ("seed", "steps", "cfg", "sampler", "width", "height", "model_hash", "noise_device"):
        assert got[key] == gen[key], key
    assert got["model"] == Path(gen["model"]).name == "tiny-sd"
    assert [{k: lora[k] for k in ("name", "sha256", "scale")} for lora in got["loras"]] == \
        [{k: lora_row[k] for k in ("name", "sha256", "scale")}]
    assert [{k: unit[k] for k in ("module", "model", "model_hash", "scale", "start", "end")}
            for unit in got["controlnets"]] == \
        [{**{k: unit_row[k] for k in ("module", "model_hash", "scale", "start", "end")},
          "model": Path(unit_row["model"]).name}]
    assert got["controlnets"][0]["scale"] == 0.8 and got["controlnets"][0]["end"] == 0.9
    with Library(fresh) as lib:
        assert lib.get_prompt(row["prompt_id"])["fields"] == prompt["fields"]

    # The A1111 keys alone (as another tool that keeps only `parameters` would pass the PNG on)
    only_a1111 = write_png(tmp_path / "a1111.png", read_png_text(made["image_path"])["parameters"])
    third = tmp_path / "third.db"
    row, recorded = imported_settings(third, imported("--db", str(third), "import-png", str(only_a1111)))
    assert recorded["tool"] == "a1111"
    got = recorded["settings"]
    for key in ("seed", "steps", "cfg", "sampler", "width", "height", "model_hash"):
        assert got[key] == gen[key], key
    assert got["model"] == Path(gen["model"]).name
    # the LoRA's hash prefix from `Lora hashes`, its scale from the prompt as A1111 writes it
    assert got["loras"] == [{"name": "style", "scale": 0.6, "hash": lora_row["sha256"][:12]}]
    assert read_png_text(made["image_path"])["parameters"].splitlines()[0].endswith(" <lora:style:0.6>")
    (unit,) = got["controlnets"]
    assert (unit["module"], unit["model"], unit["scale"], unit["start"], unit["end"]) == \
        ("canny", "cn", unit_row["scale"], unit_row["start"], unit_row["end"])
