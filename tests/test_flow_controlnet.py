"""ControlNet on FLUX.1 with tiny random-weight models on CPU: the tiny FLUX ControlNet and its family, a unit
recorded as on SD and reproduced byte for byte, two units (FluxMultiControlNetModel), img2img with a ControlNet,
and ControlNets of another family refused in one line with nothing written."""

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from promptkit.engine import EngineOptions, PipelineCache
from promptkit.generation import GenerationJob, reproduce, run_job
from promptkit.inputs import InputRequest, prepare_inputs
from promptkit.inputs.images import png_bytes
from promptkit.library import Library
from promptkit.params import GenerationParams

TINY = dict(steps=2, width=32, height=32, sampler="Euler", cfg=3.5)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model, family_models):
    from promptkit.tinymodel import write_tiny_pipeline

    root = tmp_path_factory.mktemp("flowcn")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(root / "control.png")
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(root / "control2.png")
    return {"flux": family_models["flux"], "sd3": family_models["sd3"],
            "flux_cn": str(write_tiny_pipeline(root / "flux-cn", "controlnet", base="flux")),
            "sd_cn": str(write_tiny_pipeline(root / "sd-cn", "controlnet")),
            "sd": tiny_model, "control": str(root / "control.png"), "control2": str(root / "control2.png")}


@pytest.fixture(scope="module")
def engine(models):
    return PipelineCache(max_entries=2).get(models["flux"], EngineOptions(device="cpu"))


@pytest.fixture
def prompt(isolated_library):
    from promptkit.templates import Fields, PromptBuilder

    with Library(isolated_library) as lib:
        built = PromptBuilder().render(Fields(subject="a lighthouse", negative=["blurry"]))
        return lib.get_prompt(lib.save_prompt(built, name="lighthouse"))


def generate(db, engine, prompt, request=None, seeds=(1,), batch_size=1, **params):
    with Library(db) as lib:
        prepared = prepare_inputs(request or InputRequest(), prompt["positive"])
        engine.check_request(prepared.extra)
        extra = prepared.store(lib)
        job = GenerationJob(prompt=prompt, params=GenerationParams(**{**TINY, **params}, extra=extra),
                            seeds=list(seeds), batch_size=batch_size)
        return run_job(lib, engine, job).generations


def pixels(gen):
    return np.asarray(Image.open(gen["image_path"]).convert("RGB"), dtype=np.int16)


def test_tiny_flux_controlnet_is_a_flux_controlnet(models, tmp_path):
    from diffusers import FluxControlNetModel

    from promptkit.cli import main
    from promptkit.families import detect_controlnet

    assert detect_controlnet(models["flux_cn"])["family"] == "flux"
    assert detect_controlnet(models["sd_cn"])["family"] is None  # the tiny SD one: width 32, as before
    net = FluxControlNetModel.from_pretrained(models["flux_cn"])
    assert len(net.transformer_blocks) == 1 and len(net.single_transformer_blocks) == 1
    assert net.controlnet_x_embedder.weight.abs().sum() > 0  # not zero-initialised: it changes the image
    result = CliRunner().invoke(main, ["model", "info", models["flux_cn"]])
    assert result.exit_code == 0 and "FluxControlNetModel" in result.output and "FLUX.1" in result.output, \
        result.output
    result = CliRunner().invoke(main, ["model", "tiny", str(tmp_path / "cn"), "--kind", "controlnet", "--for", "flux",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["for"] == "flux"
    assert detect_controlnet(tmp_path / "cn")["family"] == "flux"


def test_flux_controlnet_generates_records_and_reproduces(models, engine, isolated_library, prompt):
    plain = generate(isolated_library, engine, prompt)[0]
    request = InputRequest(controlnets=[models["flux_cn"]], control_images=[models["control"]],
                           control_scales=[0.8], control_starts=[0.0], control_ends=[0.9])
    made = generate(isolated_library, engine, prompt, request)[0]
    assert np.abs(pixels(plain) - pixels(made)).max() > 0  # the ControlNet changed the same seed's image
    with Library(isolated_library) as lib:
        row = lib.get_generation(made["id"])
        params = row["params"] if isinstance(row["params"], dict) else json.loads(row["params"])
        (unit,) = params["controlnets"]
        assert unit["model"] == models["flux_cn"] and unit["module"] == "none"
        assert (unit["scale"], unit["start"], unit["end"]) == (0.8, 0.0, 0.9)
        assert unit["model_hash"] and unit["config"] == {}
        control = Image.open(models["control"]).convert("RGB")
        assert unit["image"] == hashlib.sha256(png_bytes(control)).hexdigest()
        assert params["family_info"]["family"] == "flux" and params["mode"] == "txt2img"
        result = reproduce(lib, engine, made["id"])
    assert result["match"], result


def test_two_flux_controlnets_in_a_batch(models, engine, isolated_library, prompt):
    one = InputRequest(controlnets=[models["flux_cn"]], control_images=[models["control"]])
    two = InputRequest(controlnets=[models["flux_cn"], models["flux_cn"]],
                       control_images=[models["control"], models["control2"]], control_scales=[1.0, 0.5],
                       control_starts=[0.0, 0.5], control_ends=[1.0, 1.0])
    single = generate(isolated_library, engine, prompt, one, seeds=(1, 2), batch_size=2)
    double = generate(isolated_library, engine, prompt, two, seeds=(1, 2), batch_size=2)
    alone = generate(isolated_library, engine, prompt, two, seeds=(2,))[0]
    assert np.abs(pixels(single[1]) - pixels(double[1])).max() > 0  # the second unit is applied
    assert (pixels(alone) == pixels(double[1])).all()  # seed 2 alone and in a batch of two: the same image
    with Library(isolated_library) as lib:
        params = lib.get_generation(double[1]["id"])["params"]
        params = params if isinstance(params, dict) else json.loads(params)
        assert [(u["scale"], u["start"], u["end"]) for u in params["controlnets"]] == [(1.0, 0.0, 1.0),
                                                                                      (0.5, 0.5, 1.0)]
        assert params["controlnets"][0]["image"] != params["controlnets"][1]["image"]
        result = reproduce(lib, engine, double[1]["id"])
    assert result["match"], result


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_flux_controlnet_with_img2img_and_inpainting(mode, models, engine, isolated_library, prompt, tmp_path):
    mask = None
    if mode == "inpaint":
        square = np.zeros((32, 32), "uint8")
        square[8:24, 8:24] = 255
        Image.fromarray(square).save(tmp_path / "mask.png")
        mask = str(tmp_path / "mask.png")
    base = dict(init_image=models["control2"], strength=0.7, mask=mask)
    plain = generate(isolated_library, engine, prompt, InputRequest(**base))[0]
    request = InputRequest(**base, controlnets=[models["flux_cn"]], control_images=[models["control"]])
    made = generate(isolated_library, engine, prompt, request)[0]
    assert np.abs(pixels(plain) - pixels(made)).max() > 0
    with Library(isolated_library) as lib:
        params = lib.get_generation(made["id"])["params"]
        params = params if isinstance(params, dict) else json.loads(params)
        assert params["mode"] == mode and len(params["controlnets"]) == 1
        assert reproduce(lib, engine, made["id"])["match"]


def test_true_cfg_with_a_controlnet_img2img_is_one_line(models, engine):
    from promptkit.errors import PromptkitError

    unit = {"model": models["flux_cn"], "module": "none", "image": "0" * 64, "scale": 1.0, "start": 0.0, "end": 1.0}
    engine.check_request({"controlnets": [unit], "true_cfg_scale": 2.0})  # text-to-image takes true CFG
    with pytest.raises(PromptkitError, match="--true-cfg: FLUX.1's img2img ControlNet pipeline has no true CFG"):
        engine.check_request({"controlnets": [unit], "true_cfg_scale": 2.0, "init_image": "1" * 64, "strength": 0.5})


REFUSED = {
    "SD ControlNet on FLUX.1": ("flux", "sd_cn", "was made for a UNet model (SD 1.x, 2.x or SDXL"),
    "FLUX ControlNet on SD 1.x": ("sd", "flux_cn", "was made for FLUX.1, but model"),
    "ControlNet on SD 3.5": ("sd3", "flux_cn", "promptkit runs ControlNets on SD 1.x, 2.x, SDXL and FLUX.1"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_controlnet_of_another_family_is_one_line_and_writes_nothing(case, models, isolated_library, prompt):
    from promptkit.cli import main

    model, controlnet, message = REFUSED[case]
    with Library(isolated_library) as lib:
        before = lib.db["generations"].count
    result = CliRunner().invoke(main, ["generate", "lighthouse", "--model", models[model], "--seeds", "1",
                                       "--steps", "2", "--width", "32", "--height", "32", "-q",
                                       "--controlnet", models[controlnet], "--control-image", models["control"]])
    assert result.exit_code == 1, result.output
    error = result.output.strip()
    assert error.startswith("Error: ") and "\n" not in error, error
    assert "--controlnet" in error and message in error, error
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == before == 0
        assert not any(p.is_file() for p in lib.images_dir.rglob("*")) if lib.images_dir.exists() else True


def test_a_cached_hub_controlnet_is_told_by_its_config(models, tmp_path, monkeypatch):
    import shutil

    from promptkit.families import controlnet_family

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--flux-canny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(f"{models['flux_cn']}/config.json", snapshot / "config.json")
    (cache / "models--someone--flux-canny" / "refs").mkdir()
    (cache / "models--someone--flux-canny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert controlnet_family({"model": "someone/flux-canny", "config": {}}) == "flux"
    assert controlnet_family({"model": "someone/not-cached", "config": {}}) is None
