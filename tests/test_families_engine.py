"""The flow-matching families on CPU with their tiny stand-ins (SD 3.5, FLUX.1, FLUX.2 klein, Z-Image,
Qwen-Image, Chroma): generation, reproduce, seeds in batches, each family's negative-prompt and weight rules,
the T5 window, detection, a two-family A/B experiment, and bad input in one line."""

import json
import struct

import numpy as np
import pytest
from PIL import Image

from promptkit.engine import EngineOptions, PipelineCache
from promptkit.errors import PromptkitError
from promptkit.families import detect_family
from promptkit.generation import GenerationJob, reproduce, run_job
from promptkit.library import Library
from promptkit.params import GenerationParams
from promptkit.templates import Fields, PromptBuilder

KINDS = ("sd3", "flux", "flux2-klein", "zimage", "qwenimage", "chroma")
TINY = dict(steps=2, width=32, height=32, sampler="Euler")


@pytest.fixture(scope="session")
def family_engines(family_models):
    cache = PipelineCache(max_entries=len(KINDS) + 2)
    options = EngineOptions(device="cpu")
    return {kind: cache.get(folder, options) for kind, folder in family_models.items()}


@pytest.fixture
def prompt(isolated_library):
    with Library(isolated_library) as lib:
        built = PromptBuilder().render(Fields(subject="a (red:1.3) lighthouse", negative=["blurry"]))
        return lib.get_prompt(lib.save_prompt(built, name="lighthouse"))


def _run(db, engine, prompt, seeds, batch_size=1, **params):
    with Library(db) as lib:
        job = GenerationJob(prompt=prompt, params=GenerationParams(**{**TINY, "cfg": 4.0, **params}), seeds=seeds,
                            batch_size=batch_size)
        return run_job(lib, engine, job).generations


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _image(engine, positive, negative="", seeds=(3,), **params):
    result = engine.run_batch(positive, negative, list(seeds), GenerationParams(**{**TINY, "cfg": 4.0, **params}))
    return [im.tobytes() for im in result.images]


@pytest.mark.parametrize("kind", KINDS)
def test_each_family_generates_records_and_reproduces(kind, family_engines, isolated_library, prompt):
    engine = family_engines[kind]
    assert type(engine).__name__ == "FlowEngine" and engine.family == kind
    made = _run(isolated_library, engine, prompt, [1, 2], batch_size=2)
    with Library(isolated_library) as lib:
        row = lib.get_generation(made[1]["id"])
        info = json.loads(row["params"])["family_info"] if isinstance(row["params"], str) else row["params"]["family_info"]
        assert info["family"] == kind and info["guidance_arg"] in ("guidance_scale", "true_cfg_scale")
        assert {"max_sequence_length", "shift", "is_distilled", "guidance"} <= set(info)
        assert row["sampler"] == "Euler"  # the flow-matching Euler scheduler
        result = reproduce(lib, engine, made[1]["id"])
    assert result["match"], result
    from promptkit.records import GenerationRecord
    from promptkit.pnginfo import read_png_text

    chunks = read_png_text(made[0]["image_path"])
    record = GenerationRecord.from_png_chunks(chunks)
    assert record.family_info["family"] == kind and record.model.family == kind
    assert "Steps: 2" in chunks["parameters"] and "Schedule type: Simple" in chunks["parameters"]
    if kind == "flux":  # as Forge writes FLUX.1: the embedded guidance apart from the (off) true CFG
        assert "CFG scale: 1, Distilled CFG Scale: 4" in chunks["parameters"]
        assert GenerationRecord.from_infotext(chunks["parameters"]).sampling.cfg == 4.0


@pytest.mark.parametrize("kind", ("flux",))
def test_seed_alone_equals_seed_in_a_batch(kind, family_engines, isolated_library, prompt):
    engine = family_engines[kind]
    alone = _run(isolated_library, engine, prompt, [7])[0]
    batch = _run(isolated_library, engine, prompt, [5, 7], batch_size=2)
    again = _run(isolated_library, engine, prompt, [5, 7], batch_size=2)
    assert [g["image_sha256"] for g in batch] == [g["image_sha256"] for g in again]
    in_batch = next(g for g in batch if g["seed"] == 7)
    assert np.abs(_pixels(alone["image_path"]) - _pixels(in_batch["image_path"])).max() <= 1
    other = next(g for g in batch if g["seed"] == 5)
    assert np.abs(_pixels(alone["image_path"]) - _pixels(other["image_path"])).max() > 10


@pytest.mark.parametrize("kind, params, used", [
    ("sd3", {"cfg": 4.0}, True), ("zimage", {"cfg": 4.0}, True), ("qwenimage", {"cfg": 4.0}, True), ("flux", {"cfg": 3.5, "extra": {"true_cfg_scale": 2.0}}, True),
    ("zimage", {"cfg": 1.0}, False), ("flux", {"cfg": 3.5}, False),
])
def test_negative_prompt_changes_the_image_only_where_the_family_uses_it(kind, params, used, family_engines):
    engine = family_engines[kind]
    one = _image(engine, "a red cat", "blurry, ugly", **params)
    two = _image(engine, "a red cat", "dark forest at night", **params)
    assert (one != two) == used
    values = engine.family_values("blurry", GenerationParams(**{**TINY, **params}))
    assert ("negative_ignored" in values) == (not used)


def test_flux2_klein_is_never_given_a_negative_prompt(family_engines):
    engine = family_engines["flux2-klein"]
    params = GenerationParams(**{**TINY, "cfg": 4.0})
    values = engine.family_values("blurry", params)
    assert "no negative prompt" in values["negative_ignored"]
    assert "negative_prompt" not in engine._call_args("a red cat", "blurry", params, values)


@pytest.mark.parametrize("kind", ("flux",))
def test_words_past_the_t5_window_change_nothing(kind, family_engines):
    engine = family_engines[kind]
    long = "a red cat " * 200  # 600 T5 tokens: past the 512-token window
    assert _image(engine, long + "sea sky") == _image(engine, long + "dark forest")
    assert _image(engine, "a red cat sea sky") != _image(engine, "a red cat dark forest")


@pytest.mark.parametrize("kind", ("zimage",))
def test_weight_markup_is_stripped_for_families_that_cannot_read_it(kind, family_engines):
    engine = family_engines[kind]
    assert _image(engine, "a (red:1.3) [cat] on ((the)) sea") == _image(engine, "a red cat on the sea")


def test_detection_from_each_tiny_folder_and_from_a_single_file(family_models):
    from pathlib import Path

    from promptkit.engine.flow import flow_family
    from promptkit.engine.loading import transformer_file_family

    for kind, folder in family_models.items():
        assert detect_family(folder)["family"] == kind
        transformer = next((Path(folder) / "transformer").glob("*.safetensors"))
        assert transformer_file_family(transformer) == {"family": kind, "component": "transformer"}
        assert flow_family(str(transformer)) == kind
    vae = next((Path(family_models["flux"]) / "vae").glob("*.safetensors"))
    assert transformer_file_family(vae)["component"] == "VAE"


def test_a_transformer_file_loads_with_the_folder_as_config(family_models, isolated_library, prompt, family_engines):
    from pathlib import Path

    from promptkit.engine.cache import load_diffusers_backend

    file = next((Path(family_models["flux"]) / "transformer").glob("*.safetensors"))
    engine = load_diffusers_backend(str(file), EngineOptions(device="cpu", config=family_models["flux"]))
    assert engine.family == "flux"
    assert _image(engine, "a red cat") == _image(family_engines["flux"], "a red cat")


def test_two_family_experiment_runs_and_resumes(family_models, family_engines, isolated_library, prompt,
                                                monkeypatch):
    from promptkit.experiments import VariantSpec, create_experiment, get_experiment, missing_cells, run_experiment

    flux, zimage = family_engines["flux"], family_engines["zimage"]
    monkeypatch.setattr("promptkit.engine.cache.get_backend", lambda model, options=None, cache=None: zimage)
    with Library(isolated_library) as lib:
        specs = [VariantSpec("F", "lighthouse"), VariantSpec("Z", "lighthouse", {"model": family_models["zimage"]})]
        create_experiment(lib, "families", specs, [1, 2], GenerationParams(**TINY, cfg=3.0),
                          model=family_models["flux"])
        original, calls = type(flux).run_batch, {"n": 0}

        def flaky(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("power cut (simulated)")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(type(flux), "run_batch", flaky)
        with pytest.raises(RuntimeError, match="power cut"):
            run_experiment(lib, flux, "families", batch_size=1)
        monkeypatch.setattr(type(flux), "run_batch", original)
        experiment = get_experiment(lib, "families")
        assert sum(len(v) for v in missing_cells(lib, experiment).values()) == 3
        resumed = run_experiment(lib, flux, "families", batch_size=1)
        assert len(resumed.generations) == 3
        rows = list(lib.db.query("SELECT variant, seed, width, params FROM generations ORDER BY variant, seed"))
    families = {row["variant"]: json.loads(row["params"])["family"] for row in rows}
    assert families == {"F": "flux", "Z": "zimage"}
    assert {row["width"] for row in rows} == {32}


def _write_gguf(path, names):
    with open(path, "wb") as handle:
        handle.write(b"GGUF" + struct.pack("<IQQ", 3, len(names), 1))
        key = b"general.architecture"
        handle.write(struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", 2) + b"t5")
        for name in names:
            raw = name.encode()
            handle.write(struct.pack("<Q", len(raw)) + raw + struct.pack("<I", 1) + struct.pack("<Q", 4)
                         + struct.pack("<IQ", 0, 0))


def test_bad_input_is_one_line(family_engines, family_models, tmp_path):
    from promptkit.engine.cache import load_diffusers_backend
    from promptkit.tinymodel import write_tiny_lora

    gguf = tmp_path / "t5-encoder-Q8_0.gguf"
    _write_gguf(gguf, ["encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight"])
    with pytest.raises(PromptkitError) as caught:
        load_diffusers_backend(str(gguf), EngineOptions(device="cpu", config=family_models["flux"]))
    assert "not a diffusion transformer" in str(caught.value) and "\n" not in str(caught.value)
    flux = family_engines["flux"]
    with pytest.raises(PromptkitError, match="--sampler 'DDIM' cannot drive FLUX.1") as caught:
        flux.resolve_params(GenerationParams(**{**TINY, "sampler": "DDIM"}))
    assert "\n" not in str(caught.value)
    lora = write_tiny_lora(tmp_path / "sd-lora.safetensors")
    sd_lora = {"name": "sd-lora", "sha256": "0" * 64, "path": str(lora), "scale": 1.0, "context_dim": 32}
    with pytest.raises(PromptkitError, match="LoRA 'sd-lora' was made for .*, but model .* is FLUX.1"):
        flux.check_request({"loras": [sd_lora]})
    with pytest.raises(PromptkitError, match="--init-image/--strength: FLUX.2 klein has no img2img pipeline"):
        family_engines["flux2-klein"].check_request({"init_image": "0" * 64, "strength": 0.5})
    with pytest.raises(PromptkitError, match="--true-cfg applies to FLUX.1, Qwen-Image; model .* is Z-Image"):
        family_engines["zimage"].check_request({"true_cfg_scale": 2.0})


def test_model_tiny_kind_writes_a_loadable_folder(tmp_path):
    from click.testing import CliRunner

    from promptkit.cli import main

    result = CliRunner().invoke(main, ["model", "tiny", "--kind", "chroma", "--out", str(tmp_path / "c"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "chroma"
    assert detect_family(tmp_path / "c")["family"] == "chroma"


def test_quantized_path_is_opt_in_and_recorded(family_models, family_engines):
    import importlib.util

    from promptkit.engine.cache import load_diffusers_backend

    assert "approximate" not in family_engines["zimage"].family_values("", GenerationParams(**TINY))
    options = EngineOptions(device="cpu", quantize="int8")
    if importlib.util.find_spec("torchao") is None:
        with pytest.raises(PromptkitError, match=r"--quantize int8 needs torchao: pip install 'promptkit\[quantize\]'"):
            load_diffusers_backend(family_models["flux"], options)
        return
    engine = load_diffusers_backend(family_models["flux"], options)
    values = engine.family_values("", GenerationParams(**TINY))
    assert values["approximate"].startswith("int8 weight-only")
    assert len(_image(engine, "a red cat")) == 1


def test_img2img_on_a_family_that_has_it(family_engines):
    from promptkit.inputs.request import RunInputs

    engine = family_engines["flux"]
    init = Image.new("RGB", (32, 32), (200, 40, 40))
    params = GenerationParams(**{**TINY, "cfg": 3.5, "extra": {"init_image": "0" * 64, "strength": 0.6}})
    result = engine.run_batch("a red cat", "", [1], params, inputs=RunInputs(init_image=init))
    assert result.info["mode"] == "img2img" and result.images[0].size == (32, 32)


def test_a_family_lora_loads_and_one_of_another_family_is_refused(family_engines, tmp_path):
    from promptkit.inputs.loras import check_lora
    from promptkit.tinyfamilies import write_tiny_family_lora

    flux, zimage = family_engines["flux"], family_engines["zimage"]
    lora = check_lora(write_tiny_family_lora(tmp_path / "flux-lora", "flux"), 1.0)
    plain = _image(flux, "a red cat")
    with_lora = _image(flux, "a red cat", extra={"loras": [lora]})
    assert with_lora != plain
    assert _image(flux, "a red cat") == plain  # off again: the base model's image exactly
    with pytest.raises(PromptkitError, match="LoRA 'flux-lora' was made for FLUX.1, but model .* is Z-Image") as caught:
        zimage.check_request({"loras": [lora]})
    assert "\n" not in str(caught.value)


def test_a_family_option_on_sd_is_refused_in_one_line(tiny_engine, isolated_library, prompt):
    with Library(isolated_library) as lib:
        job = GenerationJob(prompt=prompt, params=GenerationParams(steps=1, extra={"true_cfg_scale": 2.0}), seeds=[1])
        with pytest.raises(PromptkitError, match=r"--true-cfg applies to FLUX.1, Qwen-Image; model .* is SD 1.x"):
            run_job(lib, tiny_engine, job)
        assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == 0


def test_a_gguf_transformer_loads_and_is_recorded_as_approximate(family_models, family_engines, tmp_path):
    gguf = pytest.importorskip("gguf", reason="the `gguf` extra is not installed")
    from pathlib import Path

    from safetensors.torch import load_file

    from promptkit.engine.cache import load_diffusers_backend

    weights = load_file(next((Path(family_models["flux"]) / "transformer").glob("*.safetensors")))
    file = tmp_path / "flux-tiny-F32.gguf"
    writer = gguf.GGUFWriter(str(file), "flux")
    for name, tensor in weights.items():
        writer.add_tensor(name, tensor.float().numpy())
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    engine = load_diffusers_backend(str(file), EngineOptions(device="cpu", config=family_models["flux"]))
    assert engine.family == "flux"
    assert engine.family_values("", GenerationParams(**TINY))["approximate"].startswith("GGUF-quantized")
    assert _image(engine, "a red cat", cfg=3.5) == _image(family_engines["flux"], "a red cat", cfg=3.5)  # F32: exact


def test_a_cross_family_variant_needs_one_fixed_size(family_models, family_engines, isolated_library, prompt,
                                                     monkeypatch):
    from promptkit.experiments import VariantSpec, create_experiment, run_experiment

    monkeypatch.setattr("promptkit.engine.cache.get_backend",
                        lambda model, options=None, cache=None: family_engines["zimage"])
    with Library(isolated_library) as lib:
        specs = [VariantSpec("F", "lighthouse"), VariantSpec("Z", "lighthouse", {"model": family_models["zimage"]})]
        create_experiment(lib, "sizeless", specs, [1], GenerationParams(steps=2, sampler="Euler"),
                          model=family_models["flux"])
        with pytest.raises(PromptkitError, match="one fixed size for every variant"):
            run_experiment(lib, family_engines["flux"], "sizeless")
        assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == 0
