"""ControlNet on FLUX.1 with tiny random-weight models on CPU: the tiny FLUX ControlNet and its family."""

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
def models(tmp_path_factory, tiny_model):
    from promptkit.tinyfamilies import write_tiny_family
    from promptkit.tinymodel import write_tiny_pipeline

    root = tmp_path_factory.mktemp("flowcn")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(root / "control.png")
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(root / "control2.png")
    return {"flux": str(write_tiny_family(root / "flux", "flux")),
            "sd3": str(write_tiny_family(root / "sd3", "sd3")),
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
