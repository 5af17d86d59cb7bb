"""Typed records: every field round-trips through the library row, the PNG chunks and A1111's text
(read with A1111's own grammar); the PNG carries no local paths; jobs serialise as JobRequest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from promptkit.a1111 import parse_generation_parameters, read_infotext
from promptkit.errors import BadParameter, PromptkitError
from promptkit.params import SAMPLERS, GenerationParams, check_extra
from promptkit.pnginfo import encode_png, read_png_record, read_png_text
from promptkit.records import (Batch, ControlUnit, GenerationInputs, GenerationRecord, InitImage, JobRequest, Lora,
                               Mask, ModelRef, PromptText, Refiner, Sampling, public_model_name)

SHA = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(lambda n: not n.endswith("."))
WORDS = st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=6).map(" ".join)
PROMPT_TEXT = st.lists(WORDS, min_size=1, max_size=4).map(", ".join)
NUMBER = st.floats(0, 1, allow_nan=False).map(lambda x: round(x, 3))
MODEL_REF = st.one_of(NAME.map(lambda n: f"/home/someone/models/{n}"), st.tuples(NAME, NAME).map("/".join),
                      NAME.map(lambda n: f"/home/someone/models/{n}.safetensors"))


@st.composite
def loras(draw):
    name = draw(NAME)
    return Lora(name=name, sha256=draw(SHA), scale=draw(st.floats(-10, 10).map(lambda x: round(x, 2))),
                path=f"/home/someone/loras/{name}.safetensors", stored=draw(st.booleans()),
                context_dim=draw(st.sampled_from([None, 768, 1024, 2048])), text_encoder_2=draw(st.booleans()))


@st.composite
def control_units(draw):
    start = draw(st.floats(0, 0.5).map(lambda x: round(x, 2)))
    end = draw(st.floats(0.6, 1).map(lambda x: round(x, 2)))
    module = draw(st.sampled_from(["canny", "none"]))
    return ControlUnit(model=f"/home/someone/cn/{draw(NAME)}", module=module, image=draw(SHA),
                       source=draw(SHA) if module == "canny" else None,
                       scale=draw(st.floats(0, 10).map(lambda x: round(x, 2))), start=start, end=end,
                       model_hash=draw(st.from_regex(r"[0-9a-f]{10}", fullmatch=True)),
                       config=draw(st.sampled_from([None, {"cross_attention_dim": 768}])))


@st.composite
def inputs(draw):
    made = GenerationInputs(loras=draw(st.lists(loras(), max_size=3, unique_by=lambda l: l.name)),
                            controlnets=draw(st.lists(control_units(), max_size=2)))
    if draw(st.booleans()):
        made.init_image = InitImage(draw(SHA), draw(st.floats(0.01, 1).map(lambda x: round(x, 2))))
        if draw(st.booleans()):
            made.mask = Mask(draw(SHA), draw(st.integers(0, 64)))
    if draw(st.booleans()):
        made.refiner = Refiner(model=f"/home/someone/models/{draw(NAME)}",
                               switch=draw(st.floats(0.05, 0.95).map(lambda x: round(x, 2))),
                               model_hash=draw(st.from_regex(r"[0-9a-f]{10}", fullmatch=True)))
    return made


@st.composite
def records(draw):
    seeds = draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4))
    index = draw(st.integers(0, len(seeds) - 1))
    made_inputs = draw(inputs())
    fields = draw(st.one_of(st.none(), st.dictionaries(NAME, WORDS, max_size=3)))
    return GenerationRecord(
        prompt=PromptText(positive=draw(PROMPT_TEXT), negative=draw(st.one_of(st.just(""), PROMPT_TEXT)),
                          template=draw(st.one_of(st.none(), NAME)), template_digest=draw(st.one_of(st.none(), SHA)),
                          fields=fields),
        model=ModelRef.from_ref(draw(MODEL_REF), draw(st.from_regex(r"[0-9a-f]{10}", fullmatch=True)),
                                draw(st.sampled_from(["sd1", "sd2", "sdxl", None]))),
        sampling=Sampling(draw(st.sampled_from(sorted(SAMPLERS))), draw(st.integers(1, 150)),
                          draw(st.floats(0, 30).map(lambda x: round(x, 2))), draw(st.integers(1, 64)) * 8,
                          draw(st.integers(1, 64)) * 8, draw(st.sampled_from(["cpu", "gpu"]))),
        seed=seeds[index], batch=Batch(size=len(seeds), index=index, seeds=seeds), inputs=made_inputs,
        mode=made_inputs.mode, prompt_mode=draw(st.sampled_from(["plain", "weighted"])),
        flags=draw(st.sampled_from([[], ["all-black image"]])), device=draw(st.sampled_from(["cpu", "cuda"])),
        dtype=draw(st.sampled_from(["float32", "float16"])), versions={"promptkit": "0.1.0", "torch": "2.4.0"},
    )


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FACTS = {"prompt_id": 3, "experiment_id": None, "variant": None, "image_sha256": "ab" * 32,
         "image_path": "images/ab/abab.png", "seconds": 1.5, "created_at": "2026-01-01T00:00:00Z"}


def _prompt_row(record):
    prompt = record.prompt
    return {"id": 3, "positive": prompt.positive, "negative": prompt.negative, "template": prompt.template,
            "template_digest": prompt.template_digest, "fields": prompt.fields}


@PROPERTY
@given(record=records())
def test_record_row_record(record):
    row = record.to_row(**FACTS)
    stored = json.loads(json.dumps(row))  # what SQLite's JSON columns give back
    assert GenerationRecord.from_row(stored, _prompt_row(record)) == record
    assert {k: row[k] for k in FACTS} == FACTS
    record.inputs.check()
    check_extra(record.extra())  # what GenerationParams.extra would hold passes the same check


@PROPERTY
@given(record=records())
def test_record_png_record(record):
    png = encode_png(Image.new("RGB", (8, 8)), record)
    assert read_png_record(png) == record.public()
    chunks = read_png_text(png)
    assert "/home/someone" not in chunks["parameters"] + chunks["promptkit"]


@PROPERTY
@given(record=records())
def test_record_a1111_text_a1111_parser(record):
    text = record.infotext()
    a1111 = parse_generation_parameters(text)  # A1111's own reading, no promptkit departure
    loras = "".join(f" <lora:{lora.name}:{lora.scale:g}>" for lora in record.inputs.loras)
    assert a1111["Prompt"] == record.prompt.positive + loras
    assert a1111["Negative prompt"] == record.prompt.negative
    sampling = record.sampling
    assert (int(a1111["Steps"]), a1111["Sampler"], float(a1111["CFG scale"]), int(a1111["Seed"])) == \
        (sampling.steps, sampling.sampler, sampling.cfg, record.seed)
    assert (int(a1111["Size-1"]), int(a1111["Size-2"])) == (sampling.width, sampling.height)
    assert (a1111["Model"], a1111["Model hash"]) == (record.model.name, record.model.hash)
    assert a1111.get("RNG") == ("GPU" if sampling.noise_device == "gpu" else None)

    back = GenerationRecord.from_infotext(text)
    assert back.sampling == sampling and back.seed == record.seed
    assert (back.model.name, back.model.hash) == (record.model.name, record.model.hash)
    want = record.inputs
    assert [(l.name, l.sha256, l.scale) for l in back.inputs.loras] == \
        [(l.name, l.sha256[:12], l.scale) for l in want.loras]
    assert [(u.module, u.model, u.scale, u.start, u.end) for u in back.inputs.controlnets] == \
        [(u.module, Path(u.model).name, u.scale, u.start, u.end) for u in want.controlnets]
    if want.refiner:
        assert back.inputs.refiner == Refiner(Path(want.refiner.model).name, want.refiner.switch,
                                              want.refiner.model_hash)
    else:
        assert back.inputs.refiner is None
    strength = want.init_image.strength if want.init_image else None
    assert (back.inputs.init_image.strength if back.inputs.init_image else None) == strength
    blur = want.mask.blur if want.mask and want.mask.blur else None
    assert (back.inputs.mask.blur if back.inputs.mask else None) == blur


def test_a1111_grammar_reads_a1111s_own_text():
    text = ('a knight, <lora:add_detail:0.7>\nNegative prompt: lowres\nSteps: 30, Sampler: DPM++ 2M Karras, '
            'CFG scale: 7, Seed: 1, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, '
            'Lora hashes: "add_detail: 7c6bad76eb54", Hires upscaler: R-ESRGAN 4x+, Version: v1.10.1')
    parsed = parse_generation_parameters(text)
    assert parsed["Prompt"] == "a knight, <lora:add_detail:0.7>" and parsed["Negative prompt"] == "lowres"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54" and parsed["Hires upscaler"] == "R-ESRGAN 4x+"
    record = GenerationRecord.from_infotext(text)
    assert [(l.name, l.sha256, l.scale) for l in record.inputs.loras] == [("add_detail", "7c6bad76eb54", 0.7)]
    assert read_infotext(text)["settings"]["Size"] == "512x768"


def test_a_lora_tag_already_in_the_prompt_is_not_written_twice():
    record = GenerationRecord(PromptText("a fox <lora:style:0.5>"), ModelRef("m"), Sampling("Euler", 2, 5.0, 64, 64),
                              1, Batch.single(1), GenerationInputs(loras=[Lora("style", "a" * 64, 0.5)]))
    assert record.infotext().splitlines()[0] == "a fox <lora:style:0.5>"


def test_public_model_names():
    assert public_model_name("/home/me/models/tiny-sd/") == "tiny-sd"
    assert public_model_name("/home/me/models/v1-5-pruned.safetensors") == "v1-5-pruned"
    assert public_model_name("stable-diffusion-v1-5/stable-diffusion-v1-5") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert ModelRef.from_ref("/x/tiny").ref == "/x/tiny" and ModelRef.from_ref("org/name").path is None


def test_check_is_the_one_place():
    with pytest.raises(BadParameter, match="`strength` applies to img2img"):
        check_extra({"strength": 0.5})
    with pytest.raises(BadParameter, match="`control_start` and `control_end`"):
        GenerationParams(extra={"controlnets": [{"model": "m", "image": "x", "start": 0.9, "end": 0.1}]})
    with pytest.raises(BadParameter, match="`lora` scale must be between -10 and 10"):
        GenerationInputs(loras=[Lora("x", "a" * 64, 11.0)]).check()


def test_job_request_round_trips_and_refuses_unknown_fields():
    params = GenerationParams(steps=2, sampler="Euler", width=64, height=64)
    job = JobRequest.generate("/lib.db", "/models/tiny", 4, params, [1, 2], batch_size=2,
                              engine_options={"dtype": "float32"})
    spec = json.loads(json.dumps(job.to_dict()))
    assert JobRequest.from_dict(spec) == job
    assert spec["params"] == params.to_dict() and spec["kind"] == "generate"
    check = JobRequest.check("/models/tiny", {"strength": 0.5, "init_image": "x"})
    assert JobRequest.from_dict(check.to_dict()) == check
    assert JobRequest.from_dict(JobRequest.ab_run("/lib.db", "/m", "exp").to_dict()).name == "exp"
    with pytest.raises(PromptkitError, match="unknown job kind"):
        JobRequest.from_dict({"kind": "nope", "model": "m"})
    with pytest.raises(PromptkitError, match="unknown job field"):
        JobRequest.from_dict({**spec, "sed": [1]})


def test_png_chunks_carry_no_local_paths(tiny_engine, tiny_model, isolated_library, tmp_path):
    """Issue 18 item 19: a generated PNG names its model and LoRA; the row keeps the paths reproduce needs."""
    from promptkit.generation import GenerationJob, reproduce, run_job
    from promptkit.inputs import InputRequest, prepare_inputs
    from promptkit.library import Library
    from promptkit.templates import Fields, PromptBuilder
    from promptkit.tinymodel import write_tiny_pipeline

    lora = write_tiny_pipeline(tmp_path / "loras" / "style.safetensors", "lora")
    with Library(isolated_library) as lib:
        prompt = lib.get_prompt(lib.save_prompt(PromptBuilder().render(Fields(subject="a fox")), name="fox"))
        prepared = prepare_inputs(InputRequest(loras=[f"{lora}:0.6"]), prompt["positive"])
        params = GenerationParams(steps=2, cfg=5.0, sampler="Euler", width=64, height=64, extra=prepared.store(lib))
        (made,) = run_job(lib, tiny_engine, GenerationJob(prompt=prompt, params=params, seeds=[5])).generations
        row = lib.get_generation(made["id"])
        assert row["model"] == tiny_engine.model and row["params"]["loras"][0]["path"] == str(Path(lora).resolve())
        assert reproduce(lib, tiny_engine, made["id"])["match"]
    tiny_engine.unload_loras()
    data = Path(made["image_path"]).read_bytes()
    chunks = read_png_text(data)
    folders = {str(Path(isolated_library).resolve().parent), str(Path(tiny_model).resolve()),
               str(Path(tiny_model).resolve().parent), str(Path(lora).resolve().parent), str(tmp_path)}
    for folder in folders:
        assert folder.encode() not in data
        assert all(folder not in text for text in chunks.values()), folder
    assert "Model: tiny-sd" in chunks["parameters"] and " <lora:style:0.6>" in chunks["parameters"]
    meta = json.loads(chunks["promptkit"])
    assert meta["model"] == Path(tiny_model).name and "path" not in meta["extra"]["loras"][0]
