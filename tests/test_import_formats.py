"""Each tool's format, written from its published layout, reads back exactly; a mixed folder imports
with the right count per tool; a second run adds nothing; reproduce re-runs or says why not."""

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import import_samples as s
from promptkit.cli import main
from promptkit.importers import read_image
from promptkit.library import Library

A1111_SETTINGS = {
    "seed": 1234567890, "steps": 28, "sampler": "DPM++ 2M", "scheduler": "Karras", "cfg": 6.5, "width": 512,
    "height": 768, "model": "v1-5-pruned-emaonly", "model_hash": "6ce0161689", "vae": "vae-ft-mse-840000",
    "clip_skip": 2, "loras": [{"name": "watercolorStyle", "scale": 0.7, "hash": "0123456789ab"}],
    "controlnets": [{"module": "canny", "model": "control_v11p_sd15_canny", "model_hash": "d14c016b", "scale": 0.8,
                     "start": 0.1, "end": 0.9}],
    "hires": {"upscale": 2.0, "upscaler": "Latent", "steps": 10, "denoise": 0.45},
}
A1111_POSITIVE = "a lighthouse on a cliff, (stormy sea:1.2) <lora:watercolorStyle:0.7>"


@pytest.mark.parametrize("make, container", [
    (lambda: s.png_bytes({"parameters": s.A1111_TEXT}), "png text"),
    (lambda: s.png_bytes({"parameters": s.A1111_TEXT}, after_idat=True), "png text"),
    (lambda: s.png_bytes({"parameters": s.A1111_TEXT}, itxt=True), "png text"),
    (lambda: s.exif_image(s.A1111_TEXT), "exif"),
    (lambda: s.exif_image(s.A1111_TEXT, encoding="utf-16-le"), "exif"),
    (lambda: s.exif_image(s.A1111_TEXT, fmt="WEBP"), "exif"),
    (lambda: s.stealth_png(s.A1111_TEXT), "stealth alpha"),
    (lambda: s.stealth_png(s.A1111_TEXT, compressed=False, size=(96, 96)), "stealth alpha"),
    (lambda: s.stealth_png(s.A1111_TEXT, mode="rgb"), "stealth rgb"),
], ids=["png", "png-after-idat", "png-itxt", "jpeg-exif", "jpeg-exif-le", "webp-exif", "stealth-gzip",
        "stealth-plain", "stealth-rgb"])
def test_a1111_every_container(make, container):
    image = read_image(make())
    assert (image.tool, image.container) == ("a1111", container)
    assert image.positive == A1111_POSITIVE and image.negative == "blurry, lowres"
    assert image.settings == A1111_SETTINGS
    assert list(image.raw.values()) == [s.A1111_TEXT]


def test_forge_flux_guidance_and_civitai_hashes():
    forge = read_image(s.png_bytes({"parameters": s.FORGE_TEXT}))
    assert forge.tool == "forge" and forge.positive == "a red fox in snow" and forge.negative == "cartoon"
    assert forge.settings == {"seed": 42, "steps": 20, "sampler": "Euler", "scheduler": "Simple", "cfg": 1.0,
                              "guidance": 3.5, "width": 64, "height": 64, "model": "flux1-dev-bnb-nf4-v2",
                              "model_hash": "abcdef1234"}
    civitai = read_image(s.png_bytes({"parameters": s.CIVITAI_TEXT}))
    assert civitai.tool == "civitai" and civitai.positive == "portrait of a knight" and civitai.negative == "bad hands"
    assert civitai.settings == {"seed": 99, "steps": 30, "sampler": "Euler a", "cfg": 7.0, "width": 512, "height": 512,
                                "model_hash": "7f96a1a9ca", "clip_skip": 2,
                                "loras": [{"name": "knightArmor", "hash": "aabbccddeeff", "scale": 0.6,
                                           "civitai_version_id": 2}]}


def test_comfyui_graph_followed_back_through_primitive_lora_and_clip_skip():
    graph = s.comfy_graph()
    image = read_image(s.png_bytes({"prompt": json.dumps(graph), "workflow": "{}"}))
    assert image.tool == "comfyui"
    assert image.positive == "beautiful scenery nature glass bottle" and image.negative == "text, watermark"
    assert image.settings == {"seed": 156680208700286, "steps": 20, "sampler": "dpmpp_2m", "scheduler": "karras",
                              "cfg": 8.0, "width": 512, "height": 640, "model": "v1-5-pruned-emaonly.safetensors",
                              "clip_skip": 2,
                              "loras": [{"name": "detail.safetensors", "scale": 0.6, "clip_scale": 0.5}]}
    assert image.uncertain == []
    assert image.raw == {"prompt": json.dumps(graph), "workflow": "{}"}


def test_comfyui_several_samplers_and_runtime_text_are_named_uncertain():
    graph = s.comfy_graph()
    graph["13"] = {"class_type": "StringConcatenate", "inputs": {"string_a": "a", "string_b": "b"}}
    graph["7"]["inputs"]["text"] = ["13", 0]
    graph["20"] = {"class_type": "KSampler", "inputs": {**graph["3"]["inputs"], "latent_image": ["3", 0],
                                                        "denoise": 0.5, "seed": 5}}
    image = read_image(s.png_bytes({"prompt": json.dumps(graph)}))
    assert image.settings["seed"] == 156680208700286  # the first pass, not the hires pass fed by it
    assert image.negative == ""
    assert any("2 sampler nodes" in note for note in image.uncertain)
    assert any("built at run time" in note for note in image.uncertain)


def test_comfyui_custom_advanced_sampler_flux_guidance():
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a neon city", "clip": ["9", 0]}},
        "3": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["2", 0]}},
        "4": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["3", 0]}},
        "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": 777}},
        "6": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "7": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1.0,
                                                          "model": ["1", 0]}},
        "8": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
        "9": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl.safetensors", "type": "flux"}},
        "10": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["5", 0], "guider": ["4", 0],
                                                                  "sampler": ["6", 0], "sigmas": ["7", 0],
                                                                  "latent_image": ["8", 0]}},
    }
    image = read_image(s.png_bytes({"prompt": json.dumps(graph)}))
    assert image.positive == "a neon city" and image.negative == ""
    assert image.settings == {"seed": 777, "steps": 20, "sampler": "euler", "scheduler": "simple", "guidance": 3.5,
                              "width": 1024, "height": 768, "model": "flux1-dev.safetensors"}


def test_comfyui_workflow_only():
    workflow = {"nodes": [
        {"id": 3, "type": "KSampler", "widgets_values": [11, "fixed", 12, 5.5, "euler", "normal", 1.0],
         "inputs": [{"name": "model", "link": 1}, {"name": "positive", "link": 2}, {"name": "negative", "link": 3},
                    {"name": "latent_image", "link": 4}]},
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sd15.safetensors"]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [256, 384, 1]},
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a quiet lake"], "inputs": [{"name": "clip", "link": 5}]},
        {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["noise"], "inputs": [{"name": "clip", "link": 6}]}],
        "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 6, 0, 3, 1, "CONDITIONING"], [3, 7, 0, 3, 2, "CONDITIONING"],
                  [4, 5, 0, 3, 3, "LATENT"], [5, 4, 1, 6, 0, "CLIP"], [6, 4, 1, 7, 0, "CLIP"]]}
    image = read_image(s.png_bytes({"workflow": json.dumps(workflow)}))
    assert (image.positive, image.negative) == ("a quiet lake", "noise")
    assert image.settings == {"seed": 11, "steps": 12, "sampler": "euler", "scheduler": "normal", "cfg": 5.5,
                              "width": 256, "height": 384, "model": "sd15.safetensors"}


def test_invokeai_three_generations():
    v5 = read_image(s.png_bytes({"invokeai_metadata": json.dumps(s.INVOKE_V5)}))
    assert (v5.tool, v5.positive, v5.negative) == ("invokeai", "a castle in the clouds", "ugly")
    assert v5.settings == {"seed": 3141592, "steps": 30, "sampler": "dpmpp_2m_k", "cfg": 7.5, "width": 512,
                           "height": 768, "model": "Dreamshaper 8", "model_hash": "blake3:abc", "clip_skip": 1,
                           "noise_device": "cpu", "loras": [{"name": "add_detail", "scale": 0.75, "hash": "blake3:def"}]}
    v2 = read_image(s.png_bytes({"sd-metadata": json.dumps(s.INVOKE_V2), "Dream": s.DREAM_V1}))
    assert (v2.positive, v2.negative) == ("a cabin in the woods", "dark, gloomy")
    assert v2.settings == {"seed": 12345, "steps": 50, "sampler": "k_lms", "cfg": 7.5, "width": 512, "height": 512,
                           "model": "stable-diffusion-1.5", "model_hash": "cc6cb27103"}
    v1 = read_image(s.png_bytes({"Dream": s.DREAM_V1}))
    assert (v1.positive, v1.negative) == ("a cabin in the woods", "dark, gloomy")
    assert v1.settings == {"seed": 12345, "steps": 50, "sampler": "k_lms", "cfg": 7.5, "width": 512, "height": 512}


def test_fooocus_both_schemes():
    common = {"seed": 1234, "steps": 30, "cfg": 4.0, "width": 1152, "height": 896, "scheduler": "karras",
              "model": "juggernautXL_v8Rundiffusion", "model_hash": "aeb7e9e689", "vae": "Default (model)"}
    as_json = read_image(s.png_bytes({"parameters": json.dumps(s.FOOOCUS_JSON), "fooocus_scheme": "fooocus"}))
    assert (as_json.tool, as_json.positive, as_json.negative) == ("fooocus", "a cat", "unrealistic")
    assert as_json.settings == {**common, "sampler": "dpmpp_2m_sde_gpu", "clip_skip": 2,
                                "loras": [{"name": "sd_xl_offset", "scale": 0.1, "hash": "4852686128"}]}
    assert as_json.other["full_prompt"] == ["a cat, cinematic"]
    as_a1111 = read_image(s.png_bytes({"parameters": s.FOOOCUS_A1111, "fooocus_scheme": "a1111"}))
    assert (as_a1111.tool, as_a1111.positive, as_a1111.negative) == ("fooocus", "a cat", "unrealistic")
    assert as_a1111.settings == {**common, "sampler": "DPM++ 2M SDE Karras",
                                 "loras": [{"name": "sd_xl_offset", "hash": "4852686128", "scale": 0.1}]}
    jpeg = read_image(s.exif_image(s.FOOOCUS_A1111, maker_note="a1111"))
    assert jpeg.tool == "fooocus" and jpeg.positive == "a cat"


def test_swarmui_and_novelai():
    swarm = read_image(s.png_bytes({"parameters": json.dumps(s.SWARM)}))
    assert (swarm.tool, swarm.positive, swarm.negative) == ("swarmui", "a robot reading a book", "blurry")
    assert swarm.settings == {"seed": 1717, "steps": 25, "sampler": "euler_ancestral", "scheduler": "normal",
                              "cfg": 6.0, "width": 1024, "height": 1024,
                              "model": "OfficialStableDiffusion/sd_xl_base_1.0", "model_hash": "0x31e35c80fc",
                              "clip_skip": 2, "loras": [{"name": "pixel-art-xl", "scale": 0.8}]}
    nai = read_image(s.png_bytes(s.novelai_chunks()))
    assert (nai.tool, nai.positive, nai.negative) == ("novelai", "1girl, cherry blossoms, best quality",
                                                       "lowres, bad anatomy")
    assert nai.settings == {"seed": 2718281828, "steps": 28, "sampler": "k_euler_ancestral", "scheduler": "karras",
                            "cfg": 5.0, "width": 1216, "height": 832, "model": "NovelAI Diffusion V4.5 4BDE2A90"}
    assert nai.raw["Comment"] == json.dumps(s.NOVELAI_COMMENT)
    hidden = read_image(s.stealth_png(json.dumps(s.novelai_chunks())))
    assert (hidden.tool, hidden.positive) == ("novelai", nai.positive)


def test_mixed_folder_counts_per_tool_and_second_run_adds_nothing(isolated_library, tmp_path):
    expected = s.write_each_tool(tmp_path / "outputs")
    first = CliRunner().invoke(main, ["import-images", str(tmp_path / "outputs"), "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert {tool: row["imported"] for tool, row in data["by_tool"].items()} == expected
    again = json.loads(CliRunner().invoke(main, ["import-images", str(tmp_path / "outputs"), "--json"]).output)
    assert again["counts"]["imported"] == 0 and again["counts"]["duplicate"] == sum(expected.values())
    with Library(isolated_library) as lib:
        assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == sum(expected.values())
        row = lib.db.execute("SELECT * FROM generations WHERE source = 'comfyui'").fetchone()
        gen = lib.get_generation(row[0])
        prompt = lib.get_prompt(gen["prompt_id"])
        stored = lib.image_path(gen).read_bytes()
    assert (gen["seed"], gen["steps"], gen["cfg"], gen["sampler"]) == (156680208700286, 20, 8.0, "DPM++ 2M Karras")
    assert gen["reproducible"] == 0 and gen["params"]["imported"]["tool"] == "comfyui"
    assert json.loads(gen["source_metadata"])["prompt"] == json.dumps(s.comfy_graph())
    assert prompt["positive"] == "beautiful scenery nature glass bottle" and prompt["template"] == "imported"
    assert stored == (tmp_path / "outputs/comfy/ComfyUI_00001_.png").read_bytes()  # the image itself, byte for byte
    dry = json.loads(CliRunner().invoke(main, ["import-images", str(tmp_path / "outputs"), "--dry-run",
                                               "--json"]).output)
    assert dry["dry_run"] and dry["counts"]["imported"] == 0


def test_text_summary_table(isolated_library, tmp_path):
    s.write_each_tool(tmp_path / "outputs")
    result = CliRunner().invoke(main, ["import-images", str(tmp_path / "outputs"), "--no-recursive"])
    assert result.exit_code == 0 and "total" in result.output  # no images directly in the folder
    result = CliRunner().invoke(main, ["import-images", str(tmp_path / "outputs")])
    lines = result.output.splitlines()
    assert lines[0].split() == ["tool", "imported", "duplicate", "failed"]
    assert "ComfyUI" in result.output and lines[-1].split() == ["total", "15", "0", "0"]


def test_reproduce_says_in_one_line_why_not(isolated_library, tmp_path):
    s.write(tmp_path / "a.png", s.png_bytes({"parameters": s.A1111_TEXT}))
    s.write(tmp_path / "b.png", s.png_bytes({"parameters": s.FORGE_TEXT.replace("Schedule type: Simple, ", "")}))
    assert CliRunner().invoke(main, ["import-images", str(tmp_path)]).exit_code == 0
    lora = CliRunner().invoke(main, ["reproduce", "1"])
    assert lora.exit_code == 1 and lora.output.count("\n") == 1
    assert "cannot reproduce generation 1 (made by AUTOMATIC1111): its LoRAs" in lora.output
    model = CliRunner().invoke(main, ["reproduce", "2"])
    assert "its model 'flux1-dev-bnb-nf4-v2' is not available locally" in model.output


def test_reproduce_reruns_when_the_model_is_local(isolated_library, tmp_path, tiny_model):
    text = (f"a small red boat\nNegative prompt: fog\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 3, Size: 64x64, "
            f"Model: {tiny_model}, Version: v1.10.1")
    s.write(tmp_path / "boat.png", s.png_bytes({"parameters": text}, size=(64, 64)))
    assert CliRunner().invoke(main, ["import-images", str(tmp_path / "boat.png")]).exit_code == 0
    result = CliRunner().invoke(main, ["reproduce", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "re-ran" in result.output and "will not match byte for byte" in result.output


def test_fooocus_jpeg_as_its_get_exif_writes_it_and_comfyui_webp():
    import io

    from PIL import Image

    exif = Image.Exif()  # Fooocus modules/meta_parser.py get_exif: IFD0 UserComment, Software, MakerNote
    exif[0x9286], exif[0x0131], exif[0x927C] = json.dumps(s.FOOOCUS_JSON), "Fooocus v2.5.5", "fooocus"
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "JPEG", exif=exif)
    image = read_image(buffer.getvalue())
    assert (image.tool, image.positive, image.settings["seed"]) == ("fooocus", "a cat", 1234)
    exif = Image.Exif()  # ComfyUI SaveAnimatedWEBP: Model = "prompt:<json>", Make = "workflow:<json>"
    exif[0x0110], exif[0x010F] = "prompt:" + json.dumps(s.comfy_graph()), "workflow:{}"
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "WEBP", exif=exif)
    comfy = read_image(buffer.getvalue())
    assert (comfy.tool, comfy.positive, comfy.settings["steps"]) == ("comfyui", "beautiful scenery nature glass bottle", 20)


def test_sdnext_and_a_promptkit_png_from_another_library():
    sdnext = ("a barn owl\nSteps: 20, Seed: 5, Sampler: Euler a, CFG scale: 6, Size: 512x512, Model: dreamshaper_8, "
              "Backend: Diffusers, App: SD.Next, Version: 2d2b3ba, Pipeline: StableDiffusionPipeline")
    assert read_image(s.png_bytes({"parameters": sdnext})).tool == "sdnext"
    meta = {"positive": "a glass lighthouse", "negative": "fog", "seed": 4, "steps": 3, "sampler": "Euler",
            "cfg": 6.0, "width": 64, "height": 64, "model": "tiny-sd", "extra": {}}
    image = read_image(s.png_bytes({"parameters": "a glass lighthouse\nSteps: 3, Seed: 4, Sampler: Euler",
                                    "promptkit": json.dumps(meta)}))
    assert (image.tool, image.positive, image.negative) == ("promptkit", "a glass lighthouse", "fog")
    assert image.settings == {"seed": 4, "steps": 3, "sampler": "Euler", "cfg": 6.0, "width": 64, "height": 64,
                              "model": "tiny-sd"}


def test_jpeg_and_webp_keep_their_format_in_the_store_on_the_page_and_through_export(isolated_library, tmp_path):
    """An imported JPEG is stored as <sha>.jpg (a WebP as .webp), served as image/jpeg, exported and
    imported under that name, and doctor finds nothing wrong."""
    from fastapi.testclient import TestClient

    from promptkit.web import create_app

    folder = tmp_path / "in"
    s.write(folder / "a.jpg", s.exif_image(s.A1111_TEXT))
    s.write(folder / "b.webp", s.exif_image(s.A1111_TEXT.replace("Seed: 1234567890", "Seed: 5"), fmt="WEBP"))
    s.write(folder / "c.png", s.png_bytes({"parameters": s.A1111_TEXT}))
    assert CliRunner().invoke(main, ["import-images", str(folder)]).exit_code == 0
    with Library(isolated_library) as lib:
        gens = {Path(lib.image_path(g)).suffix: g for g in lib.db["generations"].rows}
        assert set(gens) == {".jpg", ".webp", ".png"}
        for suffix, gen in gens.items():
            assert lib.image_path(gen) == lib.image_file(gen["image_sha256"]) == \
                lib.generation_image(gen["id"])
        jpeg_id = gens[".jpg"]["id"]
    with TestClient(create_app(isolated_library), base_url="http://127.0.0.1:8765",
                    headers={"Sec-Fetch-Site": "same-origin"}) as client:
        served = {suffix: client.get(f"/images/{gen['id']}") for suffix, gen in gens.items()}
        assert {suffix: r.headers["content-type"] for suffix, r in served.items()} == \
            {".jpg": "image/jpeg", ".webp": "image/webp", ".png": "image/png"}
        assert served[".jpg"].content == (folder / "a.jpg").read_bytes()
        assert client.get(f"/images/{jpeg_id}/thumb").headers["content-type"] == "image/jpeg"
        assert client.get(f"/api/generations/{jpeg_id}").json()["parameters"] == s.A1111_TEXT  # its UserComment
    assert CliRunner().invoke(main, ["doctor"]).exit_code == 0

    export = tmp_path / "export"
    assert CliRunner().invoke(main, ["export", str(export)]).exit_code == 0
    assert sorted(p.suffix for p in (export / "images").iterdir()) == [".jpg", ".png", ".webp"]
    other = tmp_path / "other.db"
    result = CliRunner().invoke(main, ["--db", str(other), "import", str(export), "--json"])
    assert result.exit_code == 0, result.output
    originals = {hashlib.sha256(f.read_bytes()).hexdigest(): f.suffix for f in folder.iterdir()}
    with Library(other) as lib:
        copied = {gen["image_sha256"]: lib.image_path(gen) for gen in lib.db["generations"].rows}
    assert {sha: file.suffix for sha, file in copied.items()} == originals
    assert all(hashlib.sha256(file.read_bytes()).hexdigest() == sha for sha, file in copied.items())
    assert CliRunner().invoke(main, ["--db", str(other), "doctor"]).exit_code == 0
