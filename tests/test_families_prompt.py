"""The prompt side of the model families: lint per family (token windows per encoder, weights, negative
prompts), weight stripping, the sentence template, `promptkit families`, one-line refusals, README's table.

Model folders here are configs and tokenizers only (no weights): what lint and the checks read."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.errors import BadParameter
from promptkit.families import TABLE
from promptkit.family_rules import check_family_options, default_template, family_for, negative_ignored
from promptkit.lint import lint_prompt
from promptkit.weighting import strip_weights

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["w" + str(i).translate(str.maketrans("0123456789", "abcdefghij")) for i in range(600)]  # letters only
LONG = " ".join(WORDS)


def _t5_tokenizer():
    """A T5-style Unigram tokenizer (Metaspace pieces) in which every test word is one piece."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0), (",", -3.0), (".", -3.0)]
    vocab += [(f"▁{word}", -1.0) for word in WORDS + ["a", "red", "fox", "in", "snow"]]
    vocab += [(ch, -8.0) for ch in "abcdefghijklmnopqrstuvwxyz0123456789()[]:"]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    return tokenizer


def _qwen_tokenizer():
    """A Qwen-style byte-level BPE, trained here on the test words (one token each)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([LONG] * 3 + ["user\n"] * 3, trainer)
    return tokenizer


def _model_folder(root: Path, pipeline: str, tokenizers: dict[str, object] | None = None) -> str:
    """A model folder with its model_index.json and tokenizer folders (no weights)."""
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    for sub, tokenizer in (tokenizers or {}).items():
        (root / sub).mkdir()
        tokenizer.save(str(root / sub / "tokenizer.json"))
    return str(root)


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory):
    return _model_folder(tmp_path_factory.mktemp("m") / "flux", "FluxPipeline", {"tokenizer_2": _t5_tokenizer()})


@pytest.fixture(scope="module")
def zimage_folder(tmp_path_factory):
    return _model_folder(tmp_path_factory.mktemp("m") / "zimage", "ZImagePipeline", {"tokenizer": _qwen_tokenizer()})


@pytest.fixture(scope="module")
def sd15_folder(tmp_path_factory):
    root = Path(_model_folder(tmp_path_factory.mktemp("m") / "sd15", "StableDiffusionPipeline"))
    (root / "unet").mkdir()
    (root / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768, "sample_size": 8}))
    return str(root)


# -- weights -------------------------------------------------------------------------


@pytest.mark.parametrize("text, plain", [
    ("(a red fox:1.3) in [deep] snow", "a red fox in deep snow"),
    ("((masterpiece)), a fox, (snow:0.8)", "masterpiece, a fox, snow"),
    ("a fox (word:1.0) here", "a fox word here"),
    ("a cat BREAK a dog", "a cat, a dog"),
    ("<lora:ink:0.7> a fox", "a fox"),
    (r"a \(literal\) bracket", "a (literal) bracket"),
    ("plain text, ratio 3:2", "plain text, ratio 3:2"),
])
def test_strip_weights_removes_the_markup_never_leaving_brackets(text, plain):
    assert strip_weights(text) == plain


# -- lint per family ---------------------------------------------------------------------


@pytest.mark.parametrize("family", [f.key for f in TABLE])
def test_weights_finding_only_where_the_family_cannot_use_them(family):
    fam = family_for(family=family)
    report = lint_prompt("(a red fox:1.3) in snow", "", family=family)
    said = [m for m in report.warnings if "A1111 weight syntax" in m]
    assert bool(said) == (not fam.a1111_weights)
    if said:
        assert fam.label in said[0] and "'a red fox in snow'" in said[0]


@pytest.mark.parametrize("family, settings, ignored", [
    ("flux", {}, True), ("flux", {"true_cfg": 4.0}, False), ("flux2-klein", {"guidance": 4.0}, True),
    ("zimage", {}, False), ("zimage", {"guidance": 0.0}, True), ("qwenimage", {}, False),
    ("qwenimage", {"guidance": 1.0}, True), ("chroma", {}, False), ("sd3", {}, False), ("sd1", {"guidance": 1.0}, True),
    ("sd1", {}, False),
])
def test_negative_prompt_ignored_finding(family, settings, ignored):
    report = lint_prompt("a red fox in snow", "blurry", family=family, **settings)
    said = [m for m in report.warnings if "negative prompt is ignored" in m]
    assert bool(said) == ignored
    assert (negative_ignored(family, settings.get("guidance"), settings.get("true_cfg")) is not None) == ignored
    assert not [m for m in lint_prompt("a fox", "", family=family, **settings).warnings if "negative" in m]


def test_flux_names_the_words_past_clip_and_past_t5_with_its_own_tokenizer(flux_folder):
    report = lint_prompt(LONG, "", model=flux_folder)
    assert report.family == "flux"
    clip, t5 = report.encoders["positive"]
    assert (clip.label, clip.window, t5.label, t5.window) == ("CLIP-L", 75, "T5", 511)
    assert t5.exact and t5.count == 600 and t5.first_cut == WORDS[511]
    assert t5.overflow_text.startswith(f"{WORDS[511]} {WORDS[512]}")
    assert "tokenizer_2 of" in t5.tokenizer
    assert clip.exact and clip.first_cut  # the bundled CLIP vocabulary
    note = next(m for m in report.notes if "CLIP" in m)
    assert f"from {clip.first_cut!r} on only T5 reads it" in note and "pooled vector" in note
    cut = next(m for m in report.warnings if "T5 tokens" in m)
    assert repr(WORDS[511]) in cut and "511-token" in cut
    assert report.positive.limit == 511 and report.positive.count == 600  # the longest window leads


def test_max_sequence_length_moves_the_t5_cut(flux_folder):
    t5 = lint_prompt(LONG, "", model=flux_folder, max_sequence_length=256).encoders["positive"][1]
    assert (t5.window, t5.first_cut) == (255, WORDS[255])


def test_qwen_window_less_its_chat_template_with_its_own_tokenizer(zimage_folder):
    report = lint_prompt(LONG, "", model=zimage_folder)
    (qwen,) = report.encoders["positive"]
    assert report.family == "zimage" and qwen.exact and qwen.count == 600
    assert (qwen.window, qwen.first_cut) == (509, WORDS[509])  # <|im_start|>, user, \n: 3 of the 512


def test_without_a_tokenizer_the_count_is_an_approximation_that_says_so():
    report = lint_prompt(LONG, "", family="chroma")
    (t5,) = report.encoders["positive"]
    assert not t5.exact and "approximate" in t5.tokenizer and t5.first_cut in WORDS
    assert any("approximate count" in m for m in report.warnings)


def test_sd_families_keep_the_clip_lint():
    report = lint_prompt(LONG, "", family="sdxl")
    assert report.family == "sdxl" and report.positive.limit == 75 and not report.encoders
    assert any("77-token chunks" in m for m in report.warnings)


# -- templates -------------------------------------------------------------------------------


def test_sentence_template_is_the_default_for_sentence_families(flux_folder):
    from promptkit.service.prompts import render_prompt

    assert [default_template(f) for f in ("sd1", "sdxl", "flux", "zimage")] == ["default", "default", "sentence",
                                                                                 "sentence"]
    fields = {"subject": "a lighthouse on a cliff", "action": "glowing at dusk", "style": ["watercolor"]}
    built = render_prompt(family="flux", **fields)
    assert built.template == "sentence"
    assert built.positive == ("A lighthouse on a cliff glowing at dusk. "
                              "Painted in watercolor, with soft washes on textured paper.")
    assert render_prompt(model=flux_folder, **fields).template == "sentence"
    assert render_prompt(**fields).template == "default"
    assert render_prompt(template="default", family="flux", **fields).positive.startswith("a lighthouse on a cliff, ")


def test_presets_hold_a_phrase_form_where_it_differs():
    from promptkit.service.prompts import presets

    by_name = {p["name"]: p for p in presets()}
    assert by_name["watercolor"]["phrase"] != by_name["watercolor"]["positive"]
    assert by_name["highly-detailed"]["phrase"] == by_name["highly-detailed"]["positive"]


def test_build_and_lint_take_family():
    runner = CliRunner()
    out = runner.invoke(main, ["build", "--subject", "a fox", "--family", "flux2-klein", "--json"],
                        catch_exceptions=False)
    data = json.loads(out.output)
    assert data["template"] == "sentence" and data["tokens"]["family"] == "flux2-klein"
    assert any("no negative prompt" in f["message"] for f in data["findings"])
    out = runner.invoke(main, ["lint", "(a fox:1.2)", "--negative", "blurry", "--family", "zimage", "--cfg", "0"])
    assert out.exit_code == 0 and "Qwen3" in out.output and "negative prompt is ignored" in out.output
    bad = runner.invoke(main, ["lint", "a fox", "--family", "sd4"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1 and "--family" in bad.output


# -- families command and README -------------------------------------------------------------


def test_families_command_prints_the_table():
    runner = CliRunner()
    rows = json.loads(runner.invoke(main, ["families", "--json"], catch_exceptions=False).output)
    assert [r["key"] for r in rows] == [f.key for f in TABLE]
    flux = next(r for r in rows if r["key"] == "flux")
    assert [e["window"] for e in flux["encoders"]] == [75, 511] and flux["guidance_label"] == "Guidance"
    text = runner.invoke(main, ["families"], catch_exceptions=False).output
    assert all(f.label in text for f in TABLE) and "Flux2KleinPipeline" in text


def test_readme_family_table_matches_the_table():
    from promptkit.cli.families import with_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert with_table(readme) == readme, "run `promptkit families --update-readme README.md`"
    for family in TABLE[3:]:
        assert f"promptkit model tiny --kind {family.key} --out" in readme


# -- one-line refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("family, options, flag", [
    ("sd1", {"true_cfg_scale": 3.0}, "`true_cfg_scale`"),
    ("flux", {"sampler": "DPM++ 2M Karras"}, "`sampler`"),
    ("sd1", {"sampler": "FlowMatchEuler"}, "`sampler`"),
    ("flux2-klein", {"strength": 0.5}, "`strength`"),
    ("sd1", {"max_sequence_length": 256}, "`max_sequence_length`"),
    ("flux", {"max_sequence_length": 1024}, "`max_sequence_length`"),
])
def test_options_a_family_cannot_take_are_refused(family, options, flag):
    with pytest.raises(BadParameter) as caught:
        check_family_options(family, **options)
    assert flag in str(caught.value) and "\n" not in str(caught.value)


def test_options_a_family_takes_pass():
    check_family_options("flux", sampler="euler", true_cfg_scale=4.0, max_sequence_length=256)
    check_family_options("qwenimage", true_cfg_scale=4.0, max_sequence_length=1024, strength=0.6)
    check_family_options("flux2-klein", strength=0.9, mask="mask.png")
    check_family_options("sd1", sampler="euler_a", strength=0.5)


@pytest.mark.parametrize("model, args, flag", [
    ("sd15", ["--true-cfg", "3"], "--true-cfg"),
    ("flux", ["--sampler", "DPM++ 2M Karras"], "--sampler"),
    ("klein", ["--strength", "0.5"], "--strength"),
    ("sd15", ["--max-sequence-length", "256"], "--max-sequence-length"),
])
def test_generate_refuses_in_one_line_and_writes_nothing(tmp_path, sd15_folder, flux_folder, model, args, flag):
    folders = {"sd15": sd15_folder, "flux": flux_folder,
               "klein": _model_folder(tmp_path / "klein", "Flux2KleinPipeline")}
    db = tmp_path / "lib.db"
    out = CliRunner().invoke(main, ["--db", str(db), "generate", "p", "--model", folders[model], *args])
    assert out.exit_code == 1 and flag in out.output
    assert len(out.output.strip().splitlines()) == 1
    assert not db.exists()


def test_console_script_lint_uses_this_checkout():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "promptkit", "lint", "a fox", "--family", "flux", "--json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out)["family"] == "flux"


# -- the studio follows the family --------------------------------------------------------------


@pytest.fixture
def page(isolated_library):
    from fastapi.testclient import TestClient

    from promptkit.library import Library
    from promptkit.web import create_app

    Library(isolated_library).close()
    with TestClient(create_app(isolated_library), base_url="http://127.0.0.1:8765",
                    headers={"Sec-Fetch-Site": "same-origin"}) as client:
        yield client


def _preview(page, **body):
    answer = page.post("/api/studio/preview", json={"fields": {"subject": "a (red:1.2) fox", "negative": ["blurry"]},
                                                    **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_studio_preview_follows_the_family(page, flux_folder):
    flux = _preview(page, template=None, family="flux")
    assert flux["template"] == "sentence" and flux["positive"].startswith("A (red:1.2) fox.")
    family = flux["family"]
    assert family["guidance_label"] == "Guidance" and family["true_cfg"] and family["samplers"] == ["Euler"]
    assert family["negative_ignored"] and [e["window"] for e in family["encoders"]] == [75, 511]
    assert [w["label"] for w in flux["lint"]["encoders"]["positive"]] == ["CLIP-L", "T5"]
    assert _preview(page, template=None, family="flux", true_cfg=4)["family"]["negative_ignored"] is None
    assert _preview(page, template=None, model=flux_folder)["family"]["key"] == "flux"
    plain = _preview(page, template="default")
    assert plain["family"] is None and plain["template"] == "default"
    assert _preview(page, family="qwenimage")["family"]["guidance_label"] == "True CFG"
    html = page.get("/studio").text
    assert 'id="setting-family"' in html and 'value="flux2-klein"' in html and 'id="label-cfg"' in html


@pytest.mark.parametrize("model, settings, label", [
    ("flux", {"sampler": "DPM++ 2M"}, "\u201cSampler\u201d"), ("sd15", {"true_cfg": 3}, "\u201cTrue CFG\u201d"),
])
def test_studio_generate_refuses_what_the_family_cannot_take(page, isolated_library, flux_folder, sd15_folder, model,
                                                             settings, label):
    from promptkit.library import Library

    folder = {"flux": flux_folder, "sd15": sd15_folder}[model]
    answer = page.post("/api/studio/generate", json={"fields": {"subject": "a fox"}, "model": folder, "seeds": [1],
                                                     "settings": settings})
    assert answer.status_code == 400 and label in answer.text, answer.text
    with Library(isolated_library) as library:
        assert library.list_prompts(10) == []  # nothing saved


def test_a_variant_named_by_the_model_brings_its_defaults():
    schnell = lint_prompt(LONG, "blurry", model="black-forest-labs/FLUX.1-schnell")
    assert schnell.family == "flux" and schnell.encoders["positive"][1].window == 255
    turbo = lint_prompt("a fox", "blurry", model="Tongyi-MAI/Z-Image-Turbo")
    assert any("guidance above 1" in m for m in turbo.warnings)  # Turbo runs at guidance 0
    assert not lint_prompt("a fox", "blurry", model="Tongyi-MAI/Z-Image").warnings


def test_a_folder_without_tokenizer_json_is_read_by_transformers(tmp_path):
    """vocab.json + merges.txt only: transformers' AutoTokenizer builds the fast tokenizer lint counts with."""
    root = Path(_model_folder(tmp_path / "zimage", "ZImagePipeline"))
    (root / "tokenizer").mkdir()
    _qwen_tokenizer().model.save(str(root / "tokenizer"))
    (root / "tokenizer" / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Qwen2Tokenizer"}))
    (qwen,) = lint_prompt(LONG, "", model=str(root)).encoders["positive"]
    assert qwen.exact and qwen.count == 600 and "tokenizer of" in qwen.tokenizer
    assert qwen.first_cut == WORDS[qwen.window] and qwen.window < 512


@pytest.mark.parametrize("model, expected", [
    (None, (25, 7.0)),
    ("runwayml/stable-diffusion-v1-5", (25, 7.0)),
    ("black-forest-labs/FLUX.1-dev", (28, 3.5)),
    ("black-forest-labs/FLUX.1-schnell", (4, 0.0)),
    ("Tongyi-MAI/Z-Image-Turbo", (8, 0.0)),
])
def test_steps_and_cfg_not_given_take_the_family_defaults(model, expected):
    from promptkit.cli.options import params_from
    from promptkit.family_rules import family_defaults

    assert family_defaults(model) == expected
    params = params_from(None, None, "Euler", None, None, "cpu", model)
    assert (params.steps, params.cfg) == expected
    # what the person typed always wins
    given = params_from(12, 2.5, "Euler", None, None, "cpu", model)
    assert (given.steps, given.cfg) == (12, 2.5)
