"""Beyond text-to-image on tiny models: families, img2img, inpainting, ControlNet, LoRA, prompt weighting."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from promptkit.generation import GenerationJob, reproduce, run_job
from promptkit.inputs import InputRequest, prepare_inputs
from promptkit.library import Library
from promptkit.params import GenerationParams
from promptkit.pnginfo import parse_a1111_parameters, read_png_text

FAST = dict(steps=3, cfg=5.0, sampler="Euler")


@pytest.fixture(scope="session")
def models(tmp_path_factory, tiny_model):
    from promptkit.tinymodel import write_tiny_pipeline

    root = tmp_path_factory.mktemp("kinds")
    paths = {"sd": tiny_model}
    for kind in ("sd2", "sdxl", "sdxl-refiner", "inpaint"):
        paths[kind] = str(write_tiny_pipeline(root / kind, kind))
    paths["controlnet"] = str(write_tiny_pipeline(root / "cn", "controlnet"))
    paths["controlnet_xl"] = str(write_tiny_pipeline(root / "cnxl", "controlnet", base="sdxl"))
    paths["lora"] = str(write_tiny_pipeline(root / "loras" / "style.safetensors", "lora"))
    paths["lora_xl"] = str(write_tiny_pipeline(root / "loras-xl" / "xlstyle.safetensors", "lora", base="sdxl"))
    return paths


def engine_for(path):
    from promptkit.engine import Engine, EngineOptions

    return Engine.get(path, EngineOptions(device="cpu"))


@pytest.fixture(scope="session")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype("uint8")).save(root / "init.png")
    mask = np.zeros((64, 64), "uint8")
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(root / "mask.png")
    Image.fromarray(mask[:32, :32]).save(root / "small-mask.png")
    (root / "not-an-image.png").write_text("not a picture")
    return {name: str(root / f"{name}.png") for name in ("init", "mask", "small-mask", "not-an-image")}


def generate(db, engine, prompt, request=None, seeds=(1,), batch_size=1, **params):
    with Library(db) as lib:
        prepared = prepare_inputs(request or InputRequest(), prompt["positive"])
        engine.check_request(prepared.extra)
        extra = prepared.store(lib)
        job = GenerationJob(prompt=prompt, params=GenerationParams(**{**FAST, **params}, extra=extra),
                            seeds=list(seeds), batch_size=batch_size)
        return run_job(lib, engine, job).generations


def pixels(gen):
    return np.asarray(Image.open(gen["image_path"]).convert("RGB"), dtype=np.int16)


def test_families_detected_from_configs_and_recorded(models, isolated_library, saved_prompt):
    from promptkit.families import detect_family

    assert detect_family(models["sd"])["family"] == "sd1"
    assert detect_family(models["sd2"])["family"] == "sd2"
    assert detect_family(models["sd2"])["prediction_type"] == "v_prediction"
    assert detect_family(models["sdxl"])["family"] == "sdxl"
    assert detect_family(models["inpaint"])["inpainting"] is True
    for kind, family in (("sd", "sd1"), ("sd2", "sd2"), ("sdxl", "sdxl")):
        engine = engine_for(models[kind])
        assert engine.family == family
        gen = generate(isolated_library, engine, saved_prompt)[0]
        meta = json.loads(read_png_text(gen["image_path"])["promptkit"])
        assert meta["family"] == family and meta["mode"] == "txt2img"
        with Library(isolated_library) as lib:
            assert lib.get_generation(gen["id"])["params"]["family"] == family


CASES = {
    "sd2-v-prediction": ("sd2", lambda m, p: InputRequest()),
    "sdxl": ("sdxl", lambda m, p: InputRequest()),
    "img2img": ("sd", lambda m, p: InputRequest(init_image=p["init"], strength=0.6)),
    "sdxl-img2img": ("sdxl", lambda m, p: InputRequest(init_image=p["init"], strength=0.6)),
    "inpaint-4-channel": ("sd", lambda m, p: InputRequest(init_image=p["init"], mask=p["mask"], mask_blur=2)),
    "inpaint-9-channel": ("inpaint", lambda m, p: InputRequest(init_image=p["init"], mask=p["mask"])),
    "controlnet-canny": ("sd", lambda m, p: InputRequest(controlnets=[m["controlnet"]], control_images=[p["init"]],
                                                         control_modules=["canny"], control_scales=[0.8])),
    "sdxl-controlnet": ("sdxl", lambda m, p: InputRequest(controlnets=[m["controlnet_xl"]],
                                                          control_images=[p["init"]])),
    "lora": ("sd", lambda m, p: InputRequest(loras=[m["lora"] + ":0.7"])),
    "sdxl-lora": ("sdxl", lambda m, p: InputRequest(loras=[m["lora_xl"]])),
    "sdxl-refiner": ("sdxl", lambda m, p: InputRequest(refiner=m["sdxl-refiner"], refiner_switch=0.7)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_mode_generates_and_reproduces_byte_for_byte(case, models, pictures, isolated_library, saved_prompt):
    kind, make_request = CASES[case]
    engine = engine_for(models[kind])
    gens = generate(isolated_library, engine, saved_prompt, make_request(models, pictures), seeds=[3, 4],
                    batch_size=2)
    with Library(isolated_library) as lib:
        result = reproduce(lib, engine, gens[1]["id"])
    assert result["match"], result


def test_weighted_prompt_reproduces(models, isolated_library):
    from promptkit.templates import Fields, Prompt

    engine = engine_for(models["sd"])
    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(lib.save_prompt(Prompt(positive="a (red:1.4) lighthouse BREAK [storm]",
                                                       negative="blurry", template="raw", template_digest="x", fields=Fields())))
    gen = generate(isolated_library, engine, prompt)[0]
    meta = json.loads(read_png_text(gen["image_path"])["promptkit"])
    assert meta["prompt_mode"] == "weighted"
    with Library(isolated_library) as lib:
        assert reproduce(lib, engine, gen["id"])["match"]


def test_one_load_serves_txt2img_img2img_and_inpainting(models, pictures, isolated_library, saved_prompt,
                                                        monkeypatch):
    import diffusers
    import transformers

    engine = engine_for(models["sd"])
    loads = []
    for cls in (diffusers.ModelMixin, transformers.PreTrainedModel, diffusers.DiffusionPipeline):
        original = cls.from_pretrained.__func__

        def counting(klass, *args, _original=original, **kwargs):
            loads.append(klass.__name__)
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(counting))
    generate(isolated_library, engine, saved_prompt)
    generate(isolated_library, engine, saved_prompt, InputRequest(init_image=pictures["init"]))
    generate(isolated_library, engine, saved_prompt, InputRequest(init_image=pictures["init"], mask=pictures["mask"]))
    assert loads == []
    for mode in ("img2img", "inpaint"):
        pipe = engine.pipeline_for(mode)
        assert pipe.unet is engine.pipe.unet and pipe.vae is engine.pipe.vae
        assert pipe.text_encoder is engine.pipe.text_encoder


def test_inpainting_changes_outside_the_mask_far_less_than_inside(models, pictures, isolated_library, saved_prompt):
    engine = engine_for(models["sd"])
    gen = generate(isolated_library, engine, saved_prompt,
                   InputRequest(init_image=pictures["init"], mask=pictures["mask"]), steps=4)[0]
    out = pixels(gen)
    init = np.asarray(Image.open(pictures["init"]).convert("RGB"), dtype=np.int16)
    inside = np.zeros((64, 64), bool)
    inside[16:48, 16:48] = True
    change = np.abs(out - init).mean(axis=2)
    assert change[inside].mean() > 5 * change[~inside].mean()


def test_lora_scale_zero_equals_no_lora_and_unloading_restores_the_base(models):
    from promptkit.inputs import check_lora

    engine = engine_for(models["sd"])
    lora = check_lora(models["lora"], 1.0)

    def image(loras):
        params = GenerationParams(**FAST, extra={"loras": loras} if loras else {})
        return np.asarray(engine.run_batch("a lighthouse", "blurry", [5], params).images[0], dtype=np.int16)

    base = image([])
    assert np.array_equal(image([{**lora, "scale": 0.0}]), base)
    assert np.abs(image([{**lora, "scale": 1.0}]) - base).max() > 0
    assert np.array_equal(image([]), base)  # disabled adapters: exactly the base again
    engine.unload_loras()
    assert np.array_equal(image([]), base)


def test_a_lora_with_text_encoder_weights_changes_the_text_features_and_unloads(models):
    """Most LoRAs train the text encoder too; with peft older than transformers wants, the engine
    loads those layers through peft itself, and scale / unload govern them like the UNet's."""
    import torch

    from promptkit.inputs import check_lora

    engine = engine_for(models["sd"])
    engine.unload_loras()
    lora = check_lora(models["lora"], 1.0)

    def features(scale):
        engine.apply_loras([{**lora, "scale": scale}] if scale is not None else [])
        return engine.encode("a lighthouse", "blurry", True)["prompt_embeds"].clone()

    base = features(None)
    assert torch.equal(features(0.0), base)
    assert sum(name.endswith("lora_A") for name, _ in engine.pipe.text_encoder.named_modules()) > 0
    assert (features(1.0) - base).abs().max() > 1e-4
    engine.unload_loras()
    assert not any("lora" in name for name, _ in engine.pipe.text_encoder.named_modules())
    assert torch.equal(features(None), base)


def test_lora_scale_sweep_loads_the_file_once(models, monkeypatch):
    from promptkit.inputs import check_lora

    engine = engine_for(models["sd"])
    engine.unload_loras()
    calls = []
    original = type(engine.pipe).load_lora_weights
    monkeypatch.setattr(type(engine.pipe), "load_lora_weights",
                        lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    lora = check_lora(models["lora"], 1.0)
    for scale in (0.0, 0.5, 1.0):
        for seed in (1, 2, 3, 4):
            engine.run_batch("a fox", "", [seed], GenerationParams(**FAST, extra={"loras": [{**lora, "scale": scale}]}))
    assert len(calls) == 1


def test_lora_tag_in_prompt_resolves_in_lora_dir_and_leaves_the_encoder_text(models, isolated_library):
    from pathlib import Path

    from promptkit.templates import Fields, Prompt
    from promptkit.weighting import strip_lora_tags

    lora_dir = str(Path(models["lora"]).parent)
    prepared = prepare_inputs(InputRequest(lora_dir=lora_dir), "a fox <lora:style:0.6>, snow")
    assert [(l["name"], l["scale"]) for l in prepared.extra["loras"]] == [("style", 0.6)]
    assert strip_lora_tags("a fox <lora:style:0.6>, snow") == "a fox, snow"
    engine = engine_for(models["sd"])
    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(lib.save_prompt(Prompt(positive="a fox <lora:style:0.6>, snow", negative="",
                                                       template="raw", template_digest="x", fields=Fields())))
    gen = generate(isolated_library, engine, prompt, InputRequest(lora_dir=lora_dir))[0]
    parsed = parse_a1111_parameters(read_png_text(gen["image_path"])["parameters"])
    assert parsed["settings"]["Lora hashes"].startswith("style: ")
    direct = engine.run_batch("a fox, snow", "", [1], GenerationParams(**FAST, extra=prepared.extra)).images[0]
    assert np.array_equal(pixels(gen), np.asarray(direct, dtype=np.int16))


def test_weight_changes_the_image_and_long_prompts_are_chunked_not_cut(models):
    engine = engine_for(models["sd"])

    def image(text):
        return np.asarray(engine.run_batch(text, "", [9], GenerationParams(**FAST)).images[0], dtype=np.int16)

    assert np.abs(image("a (lighthouse:1.5) at dusk") - image("a lighthouse at dusk")).max() > 0
    head = ", ".join(f"word{i}" for i in range(45))  # ~135 tokens
    assert engine.prompt_mode(head + ", a red fox") == "long"
    assert np.abs(image(head + ", a red fox") - image(head + ", a blue whale")).max() > 0


def test_a1111_syntax_converts_to_the_same_weights_under_compel():
    from compel.prompt_parser import PromptParser

    from promptkit.weighting import parse_attention, to_compel_segments

    cases = ["a (red:1.3) cat", "((nested)) and [less] here", "a \\(literal\\) (weighted:0.5), rock-n-roll-",
             "[[twice down]] (x (y:1.2) z)", "plain text only", "say \"hi\" (loud)"]
    parser = PromptParser()
    for text in cases:
        expected = [(t, w) for t, w in parse_attention(text) if t.strip()]
        (segment,) = to_compel_segments(text)
        got = [(f.text, f.weight) for p in parser.parse_conjunction(segment).prompts for f in p.children
               if f.text.strip()]
        squash = lambda s: "".join(ch for ch in s if ch.isalnum())  # noqa: E731 (spacing differs, tokens do not)
        assert [squash(t) for t, _ in got] == [squash(t) for t, _ in expected], text
        assert [round(w, 4) for _, w in got] == [round(w, 4) for _, w in expected], text
    assert to_compel_segments("a cat BREAK a dog") == ["a cat", "a dog"]
    assert parse_attention("(a:1.5)") == [("a", 1.5)]
    assert parse_attention("(a)")[0][1] == pytest.approx(1.1)
    assert parse_attention("[a]")[0][1] == pytest.approx(1 / 1.1)


def test_lint_says_which_prompt_mode_applies():
    from promptkit.lint import lint_prompt

    assert any("weighted" in w for w in lint_prompt("a (red:1.2) cat", "").notes)
    long_text = ", ".join(f"word{i}" for i in range(60))
    assert any("77-token chunks" in w for w in lint_prompt(long_text, "").warnings)


def test_png_parameters_carry_a1111_keys(models, pictures, isolated_library, saved_prompt):
    engine = engine_for(models["sd"])
    gen = generate(isolated_library, engine, saved_prompt,
                   InputRequest(init_image=pictures["init"], strength=0.6, loras=[models["lora"] + ":0.5"],
                                controlnets=[models["controlnet"]], control_images=[pictures["init"]],
                                control_modules=["canny"]))[0]
    settings = parse_a1111_parameters(read_png_text(gen["image_path"])["parameters"])["settings"]
    assert settings["Denoising strength"] == "0.6"
    assert settings["Lora hashes"].startswith("style: ")
    assert settings["ControlNet 0"].startswith("Module: canny, Model: cn, Weight: 1")


def test_refiner_changes_the_image_and_is_recorded(models, isolated_library, saved_prompt):
    engine = engine_for(models["sdxl"])
    plain = generate(isolated_library, engine, saved_prompt, steps=4)[0]
    refined = generate(isolated_library, engine, saved_prompt, InputRequest(refiner=models["sdxl-refiner"]),
                       steps=4)[0]
    assert np.abs(pixels(plain) - pixels(refined)).max() > 0
    settings = parse_a1111_parameters(read_png_text(refined["image_path"])["parameters"])["settings"]
    assert settings["Refiner"].startswith("sdxl-refiner [") and settings["Refiner switch at"] == "0.8"


BAD = {
    "init image not an image": (["--init-image", "{not-an-image}"], "--init-image"),
    "mask not an image": (["--init-image", "{init}", "--mask", "{not-an-image}"], "--mask"),
    "mask of another size": (["--init-image", "{init}", "--mask", "{small-mask}"], "must be the same size"),
    "strength 0": (["--init-image", "{init}", "--strength", "0"], "--strength must be in (0, 1] but is 0"),
    "strength 1.5": (["--init-image", "{init}", "--strength", "1.5"], "but is 1.5"),
    "missing LoRA": (["--lora", "missing.safetensors"], "does not exist"),
    "pickle LoRA": (["--lora", "style.ckpt"], "refusing pickle LoRA"),
    "LoRA for another family": (["--lora", "{lora_xl}"], "was made for"),
    "ControlNet for another family": (["--controlnet", "{controlnet_xl}", "--control-image", "{init}"],
                                      "was made for SDXL"),
    "ControlNet without control image": (["--controlnet", "{controlnet}"], "has no control image"),
    "refiner on an SD 1.x model": (["--refiner", "{sdxl-refiner}"], "--refiner needs an SDXL base model"),
    "refiner switch 1": (["--refiner", "{sdxl-refiner}", "--refiner-switch", "1"], "--refiner-switch must be"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(case, models, pictures, isolated_library, saved_prompt, tmp_path):
    from promptkit.cli import main

    (tmp_path / "style.ckpt").write_bytes(b"pickle")
    args, message = BAD[case]
    names = {**models, **pictures}
    args = [a.format(**names) for a in args]
    result = CliRunner().invoke(main, ["generate", "lighthouse", "--model", models["sd"], "--seeds", "1",
                                       "--steps", "2", "-q", *args])
    assert result.exit_code == 1, result.output
    error = result.output.strip()
    assert error.startswith("Error: ") and "\n" not in error and message in error, error
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == 0
        assert not any(p.is_file() for p in lib.images_dir.rglob("*")) if lib.images_dir.exists() else True


def test_lora_scale_xy_sweep_runs_and_loads_the_lora_once(models, isolated_library, saved_prompt, monkeypatch):
    from promptkit.experiments import create_xy_experiment, parse_axis, run_experiment

    engine = engine_for(models["sd"])
    engine.unload_loras()
    calls = []
    original = type(engine.pipe).load_lora_weights
    monkeypatch.setattr(type(engine.pipe), "load_lora_weights",
                        lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    extra = prepare_inputs(InputRequest(loras=[models["lora"]])).extra
    with Library(isolated_library) as lib:
        create_xy_experiment(lib, "sweep", "lighthouse", parse_axis("lora_scale=0,0.5,1"), parse_axis("seed=1-4"),
                             [1], GenerationParams(steps=2, cfg=5.0, sampler="Euler", extra=extra))
        outcome = run_experiment(lib, engine, "sweep", batch_size=4)
        scales = sorted({lib.get_generation(g["id"])["params"]["loras"][0]["scale"] for g in outcome.generations})
    assert len(outcome.generations) == 12 and scales == [0.0, 0.5, 1.0]
    assert len(calls) == 1


def test_variant_override_of_strength_and_missing_lora_is_refused():
    from promptkit.experiments import params_with_overrides
    from promptkit.errors import BadParameter

    base = GenerationParams(extra={"init_image": "abc", "strength": 0.5}).to_dict()
    assert params_with_overrides(base, {"strength": 0.9}).extra["strength"] == 0.9
    with pytest.raises(BadParameter, match="`strength` must be in"):
        params_with_overrides(base, {"strength": 1.5})
    with pytest.raises(BadParameter, match="lora_scale"):
        params_with_overrides(base, {"lora_scale": 0.5})


def test_model_as_an_xy_axis_runs_each_checkpoint_on_the_same_seeds(models, isolated_library, saved_prompt):
    from promptkit.experiments import create_xy_experiment, parse_axis, run_experiment

    axis = parse_axis(f"model={models['sd']},{models['sd2']}")
    with Library(isolated_library) as lib:
        create_xy_experiment(lib, "models", "lighthouse", axis, parse_axis("seed=1-2"), [1],
                             GenerationParams(steps=2, cfg=5.0, sampler="Euler"))
        outcome = run_experiment(lib, engine_for(models["sd"]), "models", batch_size=2)
        rows = [lib.get_generation(g["id"]) for g in outcome.generations]
    assert sorted((r["model"], r["seed"]) for r in rows) == sorted(
        (m, s) for m in (models["sd"], models["sd2"]) for s in (1, 2))
    assert {r["params"]["family"] for r in rows} == {"sd1", "sd2"}


def test_single_file_pipeline_class_from_keys_or_config(models, tmp_path):
    from promptkit.engine import single_file_pipeline_class
    from promptkit.errors import ModelProblem

    sd = {"model.diffusion_model.input_blocks.0.0.weight": {"shape": [320, 4, 3, 3]}}
    inpaint = {"model.diffusion_model.input_blocks.0.0.weight": {"shape": [320, 9, 3, 3]}}
    xl = {**sd, "conditioner.embedders.1.model.ln_final.weight": {"shape": [1280]}}
    assert single_file_pipeline_class(sd) == "StableDiffusionPipeline"
    assert single_file_pipeline_class(inpaint) == "StableDiffusionInpaintPipeline"
    assert single_file_pipeline_class(xl) == "StableDiffusionXLPipeline"
    assert single_file_pipeline_class(sd, models["sdxl"]) == "StableDiffusionXLPipeline"
    with pytest.raises(ModelProblem, match="has no model_index.json"):
        single_file_pipeline_class(sd, str(tmp_path))


# -- the refiner as an A/B variant override and an X/Y axis ---------------------------------------


def _refiner_rows(lib, outcome):
    return {(g["id"]): lib.get_generation(g["id"]) for g in outcome.generations}


def test_refiner_variant_overrides_are_seed_locked_recorded_and_reproducible(models, isolated_library,
                                                                            saved_prompt):
    from promptkit.experiments import cells, create_experiment, get_experiment, parse_variant, run_experiment
    from promptkit.params import model_fingerprint

    engine = engine_for(models["sdxl"])
    params = GenerationParams(**{**FAST, "steps": 4})
    with Library(isolated_library) as lib:
        params.extra = prepare_inputs(InputRequest(refiner=models["sdxl-refiner"])).store(lib)
        specs = [parse_variant(v) for v in ("on=lighthouse", "off=lighthouse:refiner=off",
                                             "early=lighthouse:refiner_switch=0.5",
                                             f"named=lighthouse:refiner={models['sdxl-refiner']},refiner_switch=0.5")]
        create_experiment(lib, "refine", specs, [1, 2], params, models["sdxl"])
        outcome = run_experiment(lib, engine, "refine", batch_size=2)
        done = cells(lib, get_experiment(lib, "refine"))
        rows = {key: lib.get_generation(cell["id"]) for key, cell in done.items()}
        # Every image records the refiner it used (or none), in the row and in A1111's PNG keys.
        assert len(outcome.generations) == 8
        for seed in (1, 2):
            assert "refiner" not in rows[("off", seed)]["params"]
            assert rows[("on", seed)]["params"]["refiner"]["switch"] == 0.8
            assert rows[("early", seed)]["params"]["refiner"]["switch"] == 0.5
            named = rows[("named", seed)]["params"]["refiner"]
            assert named["model_hash"] == model_fingerprint(models["sdxl-refiner"]) != ""
        settings = {label: parse_a1111_parameters(read_png_text(lib.path.parent / done[(label, 1)]["image_path"])
                                                  ["parameters"])["settings"] for label in ("on", "off", "early")}
        assert settings["on"]["Refiner switch at"] == "0.8" and settings["early"]["Refiner switch at"] == "0.5"
        assert "Refiner" not in settings["off"]
        # Seed-locked: the off cell is byte for byte the prompt generated alone without a refiner, and
        # the named refiner at 0.5 is the experiment's refiner at 0.5 (the same folder).
        alone = generate(isolated_library, engine, saved_prompt, seeds=[1, 2], batch_size=2, steps=4)
        assert [g["image_sha256"] for g in alone] == [done[("off", s)]["image_sha256"] for s in (1, 2)]
        assert done[("named", 1)]["image_sha256"] == done[("early", 1)]["image_sha256"]
        assert len({done[(label, 1)]["image_sha256"] for label in ("on", "off", "early")}) == 3
        for label in ("on", "off", "early"):
            result = reproduce(lib, engine, done[(label, 2)]["id"])
            assert result["match"], (label, result)


def test_refiner_and_refiner_switch_as_xy_axes(models, isolated_library, saved_prompt):
    from promptkit.experiments import cells, create_xy_experiment, get_experiment, parse_axis, run_experiment

    engine = engine_for(models["sdxl"])
    params = GenerationParams(**{**FAST, "steps": 5})
    with Library(isolated_library) as lib:
        # No refiner on the experiment: the axis names one.
        create_xy_experiment(lib, "which", "lighthouse", parse_axis(f"refiner=off,{models['sdxl-refiner']}"),
                             parse_axis("seed=1-2"), [1], params, models["sdxl"])
        outcome = run_experiment(lib, engine, "which", batch_size=2)
        used = sorted(str(lib.get_generation(g["id"])["params"].get("refiner", {}).get("model")) for g in
                      outcome.generations)
        assert used == sorted(["None", "None", models["sdxl-refiner"], models["sdxl-refiner"]])
        # With the experiment's refiner: on/off against the switch point; the off cells ignore the switch.
        params.extra = prepare_inputs(InputRequest(refiner=models["sdxl-refiner"])).store(lib)
        create_xy_experiment(lib, "switch", "lighthouse", parse_axis("refiner_switch=0.4,0.8"),
                             parse_axis("refiner=off,on"), [3], params, models["sdxl"])
        experiment = get_experiment(lib, "switch")
        assert [v["label"] for v in experiment["variants"]] == [
            "refiner switch 0.4 · refiner off", "refiner switch 0.8 · refiner off",
            "refiner switch 0.4 · refiner on", "refiner switch 0.8 · refiner on"]
        run_experiment(lib, engine, "switch", batch_size=1)
        done = cells(lib, experiment)
        sha = {label: done[(label, 3)]["image_sha256"] for label, _seed in done}
        assert sha["refiner switch 0.4 · refiner off"] == sha["refiner switch 0.8 · refiner off"]
        assert len({sha["refiner switch 0.4 · refiner on"], sha["refiner switch 0.8 · refiner on"],
                    sha["refiner switch 0.4 · refiner off"]}) == 3
        switches = {label: lib.get_generation(done[(label, 3)]["id"])["params"].get("refiner", {}).get("switch")
                    for label in sha}
        assert switches == {"refiner switch 0.4 · refiner off": None, "refiner switch 0.8 · refiner off": None,
                            "refiner switch 0.4 · refiner on": 0.4, "refiner switch 0.8 · refiner on": 0.8}


REFINER_BAD = {
    "refiner override on an SD 1.x experiment": (
        ["ab", "new", "e", "--variant", "A=lighthouse", "--variant", "B=lighthouse:refiner={sdxl-refiner}",
         "--model", "{sd}"], "`refiner` needs an SDXL base model"),
    "refiner axis on an SD 1.x experiment": (
        ["ab", "xy", "e", "--prompt", "lighthouse", "--x", "refiner=off,{sdxl-refiner}", "--y", "seed=1-2",
         "--model", "{sd}"], "`refiner` needs an SDXL base model"),
    "refiner=on without a refiner": (
        ["ab", "new", "e", "--variant", "A=lighthouse", "--variant", "B=lighthouse:refiner=on", "--model", "{sdxl}"],
        "`refiner=on` uses the experiment's refiner"),
    "refiner_switch without a refiner": (
        ["ab", "new", "e", "--variant", "A=lighthouse", "--variant", "B=lighthouse:refiner_switch=0.5"],
        "`refiner_switch` needs a refiner"),
    "refiner off with a switch": (
        ["ab", "new", "e", "--variant", "A=lighthouse", "--variant", "B=lighthouse:refiner=off,refiner_switch=0.5",
         "--refiner", "{sdxl-refiner}"], "(this variant has refiner=off)"),
    "refiner switch 1": (
        ["ab", "new", "e", "--variant", "A=lighthouse", "--variant", "B=lighthouse:refiner_switch=1",
         "--refiner", "{sdxl-refiner}"], "`refiner_switch` must be between 0 and 1"),
    "refiner switch not a number": (
        ["ab", "xy", "e", "--prompt", "lighthouse", "--x", "refiner_switch=0.5,late", "--y", "seed=1"],
        "is not a number"),
    "refiner that does not exist": (
        ["ab", "new", "e", "--variant", "A=lighthouse", "--variant", "B=lighthouse:refiner=./no-such-refiner"],
        "`refiner` './no-such-refiner': model './no-such-refiner' not found"),
    "refiner override with an init image": (
        ["ab", "new", "e", "--variant", "A=lighthouse", "--variant", "B=lighthouse:refiner={sdxl-refiner}",
         "--init-image", "{init}"], "`refiner` applies to SDXL text-to-image"),
}


@pytest.mark.parametrize("case", sorted(REFINER_BAD))
def test_bad_refiner_override_is_one_line_and_writes_nothing(case, models, pictures, isolated_library,
                                                             saved_prompt):
    from promptkit.cli import main

    args, message = REFINER_BAD[case]
    args = [a.format(**models, **pictures) for a in args]
    with Library(isolated_library) as lib:
        before = {t: lib.db[t].count for t in ("prompts", "experiments", "variants", "generations")}
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    error = result.output.strip()
    assert error.startswith("Error: ") and "\n" not in error and message in error, error
    with Library(isolated_library) as lib:
        assert {t: lib.db[t].count for t in before} == before
        assert not any(p.is_file() for p in lib.images_dir.rglob("*")) if lib.images_dir.exists() else True


def test_refiner_variant_on_an_sd1_model_at_run_time_writes_nothing(models, isolated_library, saved_prompt):
    """Made without --model, the experiment learns its base at `ab run`: every variant is checked first."""
    from promptkit.cli import main

    runner = CliRunner()
    made = runner.invoke(main, ["ab", "new", "late", "--variant", "A=lighthouse", "--variant",
                                f"B=lighthouse:refiner={models['sdxl-refiner']}", "--seeds", "1-2", "--steps", "2"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(main, ["ab", "run", "late", "--model", models["sd"], "--no-engine", "-q"])
    assert result.exit_code == 1, result.output
    error = result.output.strip()
    assert "\n" not in error and "`refiner` needs an SDXL base model" in error, error
    with Library(isolated_library) as lib:
        assert lib.db["generations"].count == 0


def test_template_weights_change_the_image_and_reproduce(models, isolated_library):
    from promptkit.templates import Fields, PromptBuilder

    engine = engine_for(models["sd"])
    builder = PromptBuilder()
    with Library(isolated_library) as lib:
        def saved(**weights):
            fields = Fields(subject="a lighthouse", environment="at dusk", negative_preset="", weights=weights)
            return lib.get_prompt(lib.save_prompt(builder.render(fields)))

        plain, same, heavy = saved(), saved(subject=1.0), saved(subject=1.5)
    assert heavy["positive"] == "(a lighthouse:1.5), at dusk" and same["positive"] == plain["positive"]
    images = {name: generate(isolated_library, engine, prompt, seeds=[9])[0]
              for name, prompt in (("plain", plain), ("same", same), ("heavy", heavy))}
    assert np.array_equal(pixels(images["same"]), pixels(images["plain"]))  # weight 1: the same text
    assert np.abs(pixels(images["heavy"]) - pixels(images["plain"])).max() > 0
    meta = json.loads(read_png_text(images["heavy"]["image_path"])["promptkit"])
    assert meta["prompt_mode"] == "weighted" and meta["fields"]["weights"] == {"subject": 1.5}
    with Library(isolated_library) as lib:
        assert reproduce(lib, engine, images["heavy"]["id"])["match"]


# -- a single .safetensors file with --config -------------------------------------------------------


def _ldm_checkpoint(folder):
    """The tiny SD pipeline's weights in one state dict of the original (LDM / A1111) layout.

    The inverse of diffusers' single-file conversion, written for any layers_per_block; the test
    checks it by converting back with diffusers' own functions."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    per = unet.config.layers_per_block + 1
    unet_sd = unet.state_dict()
    resnet_names = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
                    "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}

    def inner(kind, rest):
        head, _, tail = rest.partition(".")
        return f"{resnet_names.get(head, head)}.{tail}" if kind == "resnets" else rest

    out = {}
    fixed = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    for key, tensor in unet_sd.items():
        parts = key.split(".")
        if key in fixed:
            new = fixed[key]
        elif parts[0] == "down_blocks" and parts[2] == "downsamplers":
            new = f"input_blocks.{per * (int(parts[1]) + 1)}.0.op.{parts[-1]}"
        elif parts[0] == "down_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            new = f"input_blocks.{per * i + j + 1}.{0 if kind == 'resnets' else 1}.{inner(kind, rest)}"
        elif parts[0] == "up_blocks" and parts[2] == "upsamplers":
            i = int(parts[1])
            attention = any(k.startswith(f"up_blocks.{i}.attentions.") for k in unet_sd)
            new = f"output_blocks.{per * i + per - 1}.{2 if attention else 1}.conv.{parts[-1]}"
        elif parts[0] == "up_blocks":
            i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
            new = f"output_blocks.{per * i + j}.{0 if kind == 'resnets' else 1}.{inner(kind, rest)}"
        else:
            assert parts[0] == "mid_block", key
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            new = f"middle_block.{2 * j if kind == 'resnets' else 1}.{inner(kind, rest)}"
        out[f"model.diffusion_model.{new}"] = tensor
    vae_sd = vae.state_dict()
    count = len(vae.config.down_block_types)
    vae_fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    attention_names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for key, tensor in vae_sd.items():
        parts = key.split(".")
        if key in vae_fixed:
            new = vae_fixed[key]
        elif parts[1] in ("down_blocks", "up_blocks"):
            i = int(parts[2]) if parts[1] == "down_blocks" else count - 1 - int(parts[2])
            where = "down" if parts[1] == "down_blocks" else "up"
            if parts[3] in ("downsamplers", "upsamplers"):
                new = f"{parts[0]}.{where}.{i}.{'downsample' if where == 'down' else 'upsample'}.conv.{parts[-1]}"
            else:
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                new = f"{parts[0]}.{where}.{i}.block.{parts[4]}.{rest}"
        elif parts[2] == "resnets":
            rest = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            new = f"{parts[0]}.mid.block_{int(parts[3]) + 1}.{rest}"
        else:
            assert parts[1:4] == ["mid_block", "attentions", "0"], key
            name, leaf = ".".join(parts[4:-1]), parts[-1]
            new = f"{parts[0]}.mid.attn_1.{attention_names[name]}.{leaf}"
        out[f"first_stage_model.{new}"] = tensor
    # As in A1111 checkpoints: cond_stage_model.transformer.text_model.… (transformers 5 drops the
    # text_model. prefix from CLIPTextModel's own state dict).
    text_sd = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in text.state_dict().items()}
    for key, tensor in text_sd.items():
        out[f"cond_stage_model.transformer.{key}"] = tensor
    return out, {"unet": (unet_sd, unet.config), "vae": (vae_sd, vae.config), "text": text_sd}


def test_single_safetensors_file_with_config_loads_offline_and_matches_the_folder(models, isolated_library,
                                                                                  saved_prompt, tmp_path,
                                                                                  monkeypatch):
    import torch
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    from safetensors.torch import save_file

    from promptkit.cli import main

    folder = models["sd"]
    checkpoint, parts = _ldm_checkpoint(folder)
    # The file is what diffusers' own single-file conversion turns back into the folder's weights.
    for converted, original in ((convert_ldm_unet_checkpoint(checkpoint, parts["unet"][1]), parts["unet"][0]),
                                (convert_ldm_vae_checkpoint(checkpoint, parts["vae"][1]), parts["vae"][0]),
                                (convert_ldm_clip_checkpoint(checkpoint), parts["text"])):
        assert sorted(converted) == sorted(original)
        assert all(torch.equal(converted[k].reshape(original[k].shape), original[k]) for k in original)
    single = tmp_path / "tiny-sd.safetensors"
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(single))
    # Offline: any attempt to reach the hub fails.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = CliRunner()
    common = ["lighthouse", "--seeds", "1-2", "--steps", "3", "--sampler", "Euler", "--batch-size", "2", "-q",
              "--no-engine", "--device", "cpu", "--json"]
    from_file = runner.invoke(main, ["generate", *common, "--model", str(single), "--config", folder])
    assert from_file.exit_code == 0, from_file.output
    from_folder = runner.invoke(main, ["generate", *common, "--model", folder])
    assert from_folder.exit_code == 0, from_folder.output
    a, b = json.loads(from_file.output), json.loads(from_folder.output)
    for x, y in zip(a, b):
        assert np.array_equal(pixels(x), pixels(y))
    with Library(isolated_library) as lib:
        row = lib.get_generation(a[0]["id"])
        assert row["model"] == str(single) and row["params"]["family"] == "sd1"
        assert reproduce(lib, _engine_with_config(str(single), folder), a[1]["id"])["match"]


def _engine_with_config(model, config):
    from promptkit.engine import Engine, EngineOptions

    return Engine.get(model, EngineOptions(device="cpu", config=config))
