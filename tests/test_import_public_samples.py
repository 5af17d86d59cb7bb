"""Images written by the tools themselves, from public repositories (tests/samples/README.md says
where each came from; its licence is beside it): each reads back exactly, and the folder imports
with the right count per tool, the same bytes stored, a second run adding nothing."""

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.importers import UnreadableImage, read_image
from promptkit.library import Library

SAMPLES = Path(__file__).parent / "samples"

DUCK = ("photo of a duck", "monochrome",
        {"seed": 235284042, "steps": 15, "sampler": "UniPC", "cfg": 5.0, "width": 512, "height": 400,
         "model": "realistic_realisticVisionV20_v20", "model_hash": "c0d1994c73"})
INVOKE_V1_V2_POSITIVE = (
    "professional full body photo of young woman, hyper long brunette hair, elegant hair, wearing a bikini top and "
    "asymmetric short skirt, curvy body, long legs, (imperfect skin), detailed skin, intense freckles, super long eye "
    "lashes, at night, outside, city background, 8k ultra detailed, realistic, high quality, film grain, low contrast")
INVOKE_V1_SETTINGS = {"seed": 2980747362, "steps": 50, "sampler": "k_lms", "cfg": 5.0, "width": 512, "height": 768}
NOVELAI_UC = ("lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, worst "
              "quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry")
COMFY_NEGATIVE = ("(hands), text, error, cropped, (worst quality:1.2), (low quality:1.2), normal quality, (jpeg "
                  "artifacts:1.3), signature, watermark, username, blurry, artist name, monochrome, sketch, censorship, "
                  "censor, (copyright:1.2), extra legs, (forehead mark) (depth of field) (emotionless) (penis) "
                  "(pumpkin)")

# file: (tool, container, positive, negative, settings)
EXPECTED = {
    "sd-parsers/automatic1111_cropped.png": ("a1111", "png text", *DUCK),
    "sd-parsers/automatic1111_cropped.jpg": ("a1111", "exif", *DUCK),
    "sd-parsers/bad_images/text_after_idat.png": ("a1111", "png text", *DUCK),
    "sd-parsers/automatic1111_stealth.png": (
        "a1111", "stealth alpha", "a circle", "a square",
        {"seed": 2015833630, "steps": 20, "sampler": "Euler", "scheduler": "Automatic", "cfg": 7.0, "width": 64,
         "height": 64, "model": "realisticVisionV51_v51VAE", "model_hash": "15012c538f", "clip_skip": 2}),
    "sd-parsers/img2img_cropped.png": (
        "comfyui", "png text", "photograph of victorian woman with wings, sky clouds, meadow grass\n",
        "watermark, text\n",
        {"seed": 280823642470253, "steps": 20, "sampler": "sample_dpmpp_2m", "scheduler": "normal", "cfg": 8.0,
         "model": "v1-5-pruned-emaonly.ckpt", "strength": 0.8700000000000001}),
    "sd-parsers/noisy_latents_3_subjects_cropped.png": (
        "comfyui", "png text",
        "(solo) girl (flat chest:0.9), (fennec ears:1.0)\xa0 (fox ears:1.0), long hair, (black hair), (messy hair), "
        "(red highlights), hair over one eye, red eyes, sharp eyes, choker, (hoodie), open jacket, running (school "
        "uniform)\nsky clouds nature national park beautiful winter snow scenery HDR landscape",
        COMFY_NEGATIVE,
        {"seed": 890421140397575, "steps": 16, "sampler": "sample_dpmpp_sde", "scheduler": "normal", "cfg": 7.0,
         "width": 256, "height": 512, "model": "Anything-V3.0.ckpt"}),
    "sd-parsers/unclip_2pass_cropped.png": (
        "comfyui", "png text",
        "\n(waifu, anime, exceptional, best aesthetic, new, newest, best quality, masterpiece, extremely detailed:1.2)\n",
        "lowres, (bad anatomy), (bad hands), text, missing finger, extra digits, fewer digits, blurry, (mutated hands "
        "and fingers), (poorly drawn face), (mutation), (deformed face), (ugly), ((bad proportions)), (extra limbs), "
        "extra face, (double head), (extra head), (extra feet), monster, logo, cropped, worst quality, jpeg, "
        "humpbacked, long body, long neck, (jpeg artifacts), deleted, old, oldest, (censored), (bad aesthetic), "
        "(mosaic censoring, bar censor, blur censor)",
        {"seed": 1106257833005336, "steps": 26, "sampler": "uni_pc_bh2", "scheduler": "normal", "cfg": 8.0,
         "width": 1280, "height": 704, "model": "wd-1-5-beta2-aesthetic-unclip-h-fp32.safetensors"}),
    "ComfyUI_examples/lora_multiple.png": (
        "comfyui", "png text", "masterpiece best quality girl", "bad hands",
        {"seed": 513173432917412, "steps": 20, "sampler": "euler", "scheduler": "normal", "cfg": 8.0, "width": 512,
         "height": 512, "model": "v1-5-pruned-emaonly.ckpt",
         "loras": [{"name": "theovercomer8sContrastFix_sd15.safetensors", "scale": 1.0, "clip_scale": 1.0},
                   {"name": "epiNoiseoffset_v2.safetensors", "scale": 1.0, "clip_scale": 1.0}]}),
    "sd-parsers/fooocus1_cropped.png": (
        "fooocus", "png text", "a smiling goldfish", "",
        {"seed": 6952411511246973023, "steps": 30, "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "cfg": 4.0,
         "width": 768, "height": 1280, "model": "juggernautXL_v8Rundiffusion", "model_hash": "aeb7e9e689",
         "vae": "Default (model)", "clip_skip": 2}),
    "sd-parsers/invokeai_dream1.png": (
        "invokeai", "png text", INVOKE_V1_V2_POSITIVE, "rendering, glowing eyes, skinny", INVOKE_V1_SETTINGS),
    "sd-parsers/invokeai_sdmeta1.png": (
        "invokeai", "png text", INVOKE_V1_V2_POSITIVE, "rendering, glowing eyes, skinny",
        {**INVOKE_V1_SETTINGS, "model": "deliberateForInvoke_v08",
         "model_hash": "56d1442a0feefd64836a19ac8e3527ec71c884fc962e246ddf67b03e42921272"}),
    "sd-parsers/invokeai_imeta1.png": (
        "invokeai", "png text", "digital artwork, oil painting. painterly brushstrokes, holidays,",
        "grainy+, photo, oversaturated, overexposed, blurry, compressed jpg+, noisy++, unfocused , black and white",
        {"seed": 3293022630, "steps": 35, "sampler": "euler", "cfg": 8.0, "width": 1024, "height": 1024,
         "model": "juggernautXL", "vae": "VAEFix", "noise_device": "cpu"}),
    "sd-parsers/novelai1_cropped.png": (
        "novelai", "png text", "masterpiece, best quality,  cat, space, icon", f"{NOVELAI_UC}, {NOVELAI_UC}",
        {"seed": 2253955223, "steps": 50, "sampler": "k_euler_ancestral", "cfg": 10.0,
         "model": "Stable Diffusion 1D44365E"}),
}
NIGHT = "sd-parsers/night_evening_day_morning_cropped.png"  # its own test below
UNREADABLE = {
    "sd-parsers/bad_images/empty_file.png": "it is empty",
    "sd-parsers/bad_images/empty_image.png": "it has no generation metadata promptkit reads (it has: date:create",
    "sd-parsers/bad_images/empty_image.jpg": "it has no generation metadata promptkit reads",
}


def test_every_sample_is_accounted_for_and_licensed():
    files = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.suffix in (".png", ".jpg", ".webp")}
    assert files == set(EXPECTED) | set(UNREADABLE) | {NIGHT}
    for folder in {Path(name).parts[0] for name in files}:
        assert any((SAMPLES / folder / name).is_file() for name in ("LICENSE", "LICENSE.txt")), folder
        assert f"`{folder}/`" in (SAMPLES / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_reads_back_exactly(name):
    tool, container, positive, negative, settings = EXPECTED[name]
    image = read_image((SAMPLES / name).read_bytes(), name)
    assert (image.tool, image.container) == (tool, container)
    assert image.positive == positive
    assert image.negative == negative
    assert image.settings == settings
    assert image.raw  # the metadata kept verbatim


def test_comfyui_sample_with_two_samplers_and_combined_conditionings_says_what_is_uncertain():
    image = read_image((SAMPLES / NIGHT).read_bytes())
    assert image.tool == "comfyui" and image.negative == COMFY_NEGATIVE
    assert image.settings == {"seed": 335608130539327, "steps": 13, "sampler": "dpmpp_sde", "scheduler": "normal",
                              "cfg": 8.5, "width": 704, "height": 1280, "model": "Anything-V3.0.ckpt", "clip_skip": 2}
    # four area prompts combined: every text is kept, and the combination is named uncertain
    for part in ("(night:1.3)", "(evening:1.2)", "(daytime:1.2)", "morning sky", "national park scenery"):
        assert part in image.positive
    assert image.uncertain[0] == "2 sampler nodes; the settings are node 3's (KSampler), the first pass"
    assert sum("ConditioningCombine" in note for note in image.uncertain) == 4


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_bad_samples_are_one_line(name):
    with pytest.raises(UnreadableImage) as caught:
        read_image((SAMPLES / name).read_bytes(), name)
    assert str(caught.value).startswith(UNREADABLE[name]) and "\n" not in str(caught.value)


def test_the_samples_folder_imports_by_tool_and_a_second_run_adds_nothing(isolated_library):
    result = CliRunner().invoke(main, ["import-images", str(SAMPLES), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    tools = [EXPECTED[name][0] for name in EXPECTED] + ["comfyui"]  # + night_evening_day_morning
    assert {tool: row["imported"] for tool, row in report["by_tool"].items() if row["imported"]} == \
        {tool: tools.count(tool) for tool in set(tools)}
    assert report["by_tool"]["unreadable"]["failed"] == len(UNREADABLE)
    assert report["counts"] == {"imported": len(EXPECTED) + 1, "duplicate": 0, "failed": len(UNREADABLE),
                                "would_import": 0}
    with Library(isolated_library) as lib:
        for outcome in report["files"]:
            if outcome["status"] != "imported":
                continue
            gen = lib.get_generation(outcome["generation_id"])
            data = Path(outcome["file"]).read_bytes()
            assert gen["image_sha256"] == hashlib.sha256(data).hexdigest()
            assert lib.image_path(gen).read_bytes() == data
            assert gen["source"] == outcome["tool"] and not gen["reproducible"]
        count = lib.db["generations"].count

    again = json.loads(CliRunner().invoke(main, ["import-images", str(SAMPLES), "--json"]).output)
    assert again["counts"]["imported"] == 0 and again["counts"]["duplicate"] == len(EXPECTED) + 1
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == count
