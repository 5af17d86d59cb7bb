"""promptkit.track: a diffusers pipeline a person holds, recorded exactly as `promptkit generate` records."""

from __future__ import annotations

import pytest

VOLATILE = {"id", "created_at", "seconds"}
SETTINGS = dict(steps=2, cfg=5.0, sampler="Euler", width=32, height=32)


@pytest.fixture(scope="module")
def held_pipe(tiny_model):
    """The pipeline a person loaded themselves, with the sampler they chose."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def lib(saved_prompt, isolated_library):
    from promptkit.library import Library

    with Library(isolated_library) as library:
        yield library


def _rows(lib, generations):
    return [{k: v for k, v in lib.get_generation(g["id"]).items() if k not in VOLATILE} for g in generations]


def _generate(lib, tiny_model, seeds, inputs=None):
    import promptkit

    return promptkit.generate(lib, "lighthouse", model=tiny_model, seeds=seeds, batch_size=len(seeds),
                              inputs=inputs, use_engine=False, engine_options={"device": "cpu"},
                              **SETTINGS)["generations"]


def _call(tracked, prompt, **kwargs):
    return tracked(prompt["positive"], prompt["negative"], num_inference_steps=2, guidance_scale=5.0, **kwargs)


def test_track_records_what_generate_records(lib, tiny_model, held_pipe, saved_prompt):
    import promptkit

    expected = _generate(lib, tiny_model, [1, 2])
    tracked = promptkit.track(held_pipe, library=lib)
    out = _call(tracked, saved_prompt, width=32, height=32, generator=promptkit.seeded([1, 2]),
                num_images_per_prompt=2)
    assert out.reproducible and len(out.images) == 2 and out.images[0].size == (32, 32)
    assert _rows(lib, out.generations) == _rows(lib, expected)  # same prompt row, record and image sha256
    assert [g["image_sha256"] for g in out.generations] == [g["image_sha256"] for g in expected]
    # seeds= says the same; the user's scheduler is theirs again after the call.
    again = _call(tracked, saved_prompt, width=32, height=32, seeds=[2])
    assert again.generations[0]["image_sha256"] != expected[1]["image_sha256"]  # batch of one: another record
    assert _rows(lib, again.generations)[0]["seed"] == 2
    assert type(held_pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    assert promptkit.reproduce(lib, again.generations[0]["id"], {"device": "cpu"})["match"]


def test_untracked_seed_is_stored_and_flagged(lib, held_pipe, saved_prompt):
    import promptkit

    tracked = promptkit.track(held_pipe, library=lib)
    generators = promptkit.seeded([5])
    first = _call(tracked, saved_prompt, width=32, height=32, generator=generators)
    assert first.reproducible
    # The same generators again: they moved on (as the pipeline moves them), so the noise is not seed 5's.
    used = _call(tracked, saved_prompt, width=32, height=32, generator=generators)
    none = _call(tracked, {"positive": "a fox", "negative": ""}, width=32, height=32)
    for out, why in ((used, "already used"), (none, "global random state")):
        assert not out.reproducible and len(out.images) == 1
        row = lib.get_generation(out.generations[0]["id"])
        assert row["reproducible"] == 0 and row["source"] == "diffusers"
        flag = row["params"]["flags"][0]
        assert flag.startswith("untracked seed") and why in flag and why in out.notes[0]
    assert lib.get_prompt(lib.get_generation(none.generations[0]["id"])["prompt_id"])["template"] == "tracked"
    assert lib.get_generation(used.generations[0]["id"])["seed"] == 5
    with pytest.raises(promptkit.PromptkitError, match="cannot be reproduced: it was made by 'diffusers'"):
        promptkit.reproduce(lib, none.generations[0]["id"])


def test_img2img_and_inpainting_match_generate(lib, tiny_model, held_pipe, saved_prompt, tmp_path):
    import promptkit

    for auto, request, call in _img2img_and_inpaint_calls(tmp_path):
        expected = _generate(lib, tiny_model, [3], inputs=request)
        tracked = promptkit.track(auto.from_pipe(held_pipe), library=lib)
        out = _call(tracked, saved_prompt, seeds=[3], **call)
        assert out.reproducible and _rows(lib, out.generations) == _rows(lib, expected)


def test_family_lookup_goes_through_the_family_table(lib, tiny_model, monkeypatch):
    import promptkit
    from promptkit.errors import PromptkitError
    from promptkit.plugins.manager import Plugins

    class FluxPipeline:  # noqa: D401 - stands in for diffusers' class of that name
        name_or_path = tiny_model

    # FLUX.1 is adopted by the built-in backend now (see the flow tests below); a family no installed
    # backend claims is refused in one line: simulated by a plugin manager that finds none for FLUX.1.
    claimed = Plugins.backend_for_family
    monkeypatch.setattr(Plugins, "backend_for_family",
                        lambda self, family: None if family == "flux" else claimed(self, family))
    with pytest.raises(PromptkitError, match=r"no installed backend runs FLUX.1 pipelines \(FluxPipeline\) yet"):
        promptkit.track(FluxPipeline(), library=lib)

    class PaintPipeline:
        name_or_path = tiny_model

    with pytest.raises(PromptkitError, match="PaintPipeline is not a pipeline of a family promptkit knows"):
        promptkit.track(PaintPipeline(), library=lib)


# -- the flow-matching families (tiny random-weight stand-ins, loaded with diffusers as a person would) --------

FLOW_PIPELINES = {"flux": "FluxPipeline", "qwenimage": "QwenImagePipeline", "flux2-klein": "Flux2KleinPipeline",
                  "sd3": "StableDiffusion3Pipeline", "zimage": "ZImagePipeline", "chroma": "ChromaPipeline"}


@pytest.fixture(scope="module")
def flow_models(family_models):
    return {kind: family_models[kind] for kind in FLOW_PIPELINES}


@pytest.fixture(scope="module")
def flow_pipes(flow_models):
    import diffusers

    pipes = {}
    for kind, folder in flow_models.items():
        pipes[kind] = getattr(diffusers, FLOW_PIPELINES[kind]).from_pretrained(folder)
        pipes[kind].set_progress_bar_config(disable=True)
    return pipes


# kind -> (the tracked call's guidance arguments, `promptkit generate`'s cfg and InputRequest fields)
FLOW_CALLS = {
    # FLUX.1: guidance_scale is the cfg; true CFG above 1 reads the negative prompt (--true-cfg), and
    # --max-sequence-length is recorded too
    "flux": (dict(guidance_scale=4.0, true_cfg_scale=1.5, max_sequence_length=64),
             dict(true_cfg_scale=1.5, max_sequence_length=64)),
    # Qwen-Image: the guidance is true_cfg_scale (the family table's guidance_arg)
    "qwenimage": (dict(true_cfg_scale=4.0), {}),
    # the others: guidance_scale is the cfg (FLUX.2 klein takes no negative prompt: none is passed)
    "sd3": (dict(guidance_scale=4.0), {}),
    "zimage": (dict(guidance_scale=4.0), {}),
    "chroma": (dict(guidance_scale=4.0), {}),
    "flux2-klein": (dict(guidance_scale=4.0), {}),
}


@pytest.mark.parametrize("kind", sorted(FLOW_CALLS))
def test_flow_pipeline_records_what_generate_records(kind, lib, flow_models, flow_pipes, saved_prompt):
    import numpy as np

    import promptkit
    from promptkit.inputs import InputRequest

    call, request = FLOW_CALLS[kind]
    pipe, folder = flow_pipes[kind], flow_models[kind]
    expected = promptkit.generate(lib, "lighthouse", model=folder, seeds=[1, 2], batch_size=2,
                                  inputs=InputRequest(**request), use_engine=False, engine_options={"device": "cpu"},
                                  steps=2, cfg=4.0, sampler="Euler", width=32, height=32)["generations"]
    scheduler = pipe.scheduler
    tracked = promptkit.track(pipe, library=lib)
    assert type(tracked.backend).__name__ == "FlowEngine" and tracked.backend.family == kind
    out = tracked(saved_prompt["positive"], saved_prompt["negative"], num_inference_steps=2, width=32, height=32,
                  generator=promptkit.seeded([1, 2]), num_images_per_prompt=2, **call)
    assert out.reproducible and len(out.images) == 2 and out.images[0].size == (32, 32)
    rows = _rows(lib, out.generations)
    assert rows == _rows(lib, expected)  # same prompt row, seed, steps, cfg, sampler, size, params and sha256
    assert [g["image_sha256"] for g in out.generations] == [g["image_sha256"] for g in expected]
    assert [r["seed"] for r in rows] == [1, 2] and rows[0]["sampler"] == "Euler" and rows[0]["cfg"] == 4.0
    assert rows[0]["width"] == rows[0]["height"] == 32 and rows[0]["steps"] == 2
    assert rows[0]["params"]["family_info"]["family"] == kind
    assert {k: rows[0]["params"].get(k) for k in request} == request  # as --true-cfg/--max-sequence-length
    assert pipe.scheduler is scheduler  # the user's scheduler is theirs again
    # The held pipeline called directly with the same arguments and seeds makes the very same pixels.
    negative = {} if kind == "flux2-klein" else {"negative_prompt": saved_prompt["negative"]}
    direct = pipe(prompt=saved_prompt["positive"], num_inference_steps=2, width=32, height=32,
                  generator=promptkit.seeded([1, 2]), num_images_per_prompt=2, **negative, **call).images
    assert [np.asarray(im).tobytes() for im in direct] == [np.asarray(im.convert("RGB")).tobytes()
                                                           for im in out.images]
    assert promptkit.reproduce(lib, out.generations[1]["id"], {"device": "cpu"})["match"]


def test_flow_img2img_and_inpainting_match_generate(lib, flow_models, flow_pipes, saved_prompt, tmp_path):
    import promptkit

    for auto, request, call in _img2img_and_inpaint_calls(tmp_path):
        expected = promptkit.generate(lib, "lighthouse", model=flow_models["flux"], seeds=[3], batch_size=1,
                                      inputs=request, use_engine=False, engine_options={"device": "cpu"},
                                      steps=2, cfg=4.0, sampler="Euler", width=32, height=32)["generations"]
        held = auto.from_pipe(flow_pipes["flux"])  # FluxImg2ImgPipeline, FluxInpaintPipeline
        held.set_progress_bar_config(disable=True)
        out = promptkit.track(held, library=lib)(saved_prompt["positive"], saved_prompt["negative"], seeds=[3],
                                                 num_inference_steps=2, guidance_scale=4.0, width=32, height=32,
                                                 **call)
        assert out.reproducible and _rows(lib, out.generations) == _rows(lib, expected)


def test_flow_untracked_calls_are_stored_and_flagged(lib, flow_pipes, saved_prompt):
    from PIL import Image

    import promptkit

    klein, qwen, flux = (promptkit.track(flow_pipes[k], library=lib) for k in ("flux2-klein", "qwenimage", "flux"))
    settings = dict(num_inference_steps=2, width=32, height=32)
    # FLUX.2 klein takes no negative prompt: a tracked call records it as ignored, an untracked one
    # never passes it (the pipeline's __call__ would refuse it).
    seeded = klein("a lighthouse", "blurry", seeds=[4], **settings)
    assert seeded.reproducible
    info = lib.get_generation(seeded.generations[0]["id"])["params"]["family_info"]
    assert "takes no negative prompt" in info["negative_ignored"]
    shifted = flow_pipes["flux"].scheduler.__class__.from_config(flow_pipes["flux"].scheduler.config,
                                                                   use_dynamic_shifting=False, shift=2.0)
    calls = [(klein, dict(), "global random state"),
             (qwen, dict(guidance_scale=2.0, seeds=[4]), "guidance_scale on Qwen-Image"),
             (flux, dict(prompt_2="a harbour", seeds=[4]), "'prompt_2' is not one promptkit records"),
             (flux, dict(generator=promptkit.seeded([4])[0], num_images_per_prompt=2), "one generator for 2 images"),
             # klein's `image=` is a reference image, not an init image: run as called, not recorded as one
             (klein, dict(image=Image.new("RGB", (64, 64), (9, 90, 200)), seeds=[4]),
              "`image=` on Flux2KleinPipeline is not an init image")]
    outs = [(tracked(f"a lighthouse {i}", "blurry", **settings, **kwargs), why)
            for i, (tracked, kwargs, why) in enumerate(calls)]
    original = flow_pipes["flux"].scheduler
    flow_pipes["flux"].scheduler = shifted
    try:
        outs.append((flux("a lighthouse", "", seeds=[4], **settings), "scheduler's settings differ"))
    finally:
        flow_pipes["flux"].scheduler = original
    for out, why in outs:
        assert not out.reproducible and len(out.images) >= 1
        row = lib.get_generation(out.generations[0]["id"])
        assert row["reproducible"] == 0 and row["source"] == "diffusers"
        flag = row["params"]["flags"][0]
        assert flag.startswith("untracked seed") and why in flag and why in out.notes[0], (why, flag)
    assert "Flux2KleinPipeline takes no negative prompt" in outs[0][0].notes[1]
    assert lib.get_generation(outs[1][0].generations[0]["id"])["seed"] == 4
    assert "init_image" not in lib.get_generation(outs[4][0].generations[0]["id"])["params"]


def test_flow_scheduler_is_euler():
    from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

    from promptkit.track import sampler_of

    assert sampler_of(FlowMatchEulerDiscreteScheduler()) == "Euler"
    assert sampler_of(EulerDiscreteScheduler()) == "Euler"


def test_seeded_generators_are_recognised():
    import torch

    import promptkit
    from promptkit.track import known_seed

    generators = promptkit.seeded("7-8")
    assert [known_seed(g) for g in generators] == [7, 8]
    torch.randn(2, generator=generators[0])
    assert known_seed(generators[0]) is None and known_seed(None) is None


def _img2img_and_inpaint_calls(tmp_path):
    """(AutoPipeline class, promptkit's InputRequest, the pipeline call's arguments) for img2img and inpainting
    on the same 32 px init image (and a square mask), written to TMP_PATH for the request."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting
    from PIL import Image, ImageDraw

    from promptkit.inputs import InputRequest

    init = Image.new("RGB", (32, 32), (200, 120, 40))
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((8, 8, 24, 24), fill=255)
    init.save(tmp_path / "init.png")
    mask.save(tmp_path / "mask.png")
    return [(AutoPipelineForImage2Image, InputRequest(init_image=str(tmp_path / "init.png"), strength=0.6),
             dict(image=init, strength=0.6)),
            (AutoPipelineForInpainting, InputRequest(init_image=str(tmp_path / "init.png"),
                                                     mask=str(tmp_path / "mask.png"), strength=0.9),
             dict(image=init, mask_image=mask, strength=0.9))]
