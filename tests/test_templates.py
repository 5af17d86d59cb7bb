import pytest

from promptkit.errors import TemplateProblem, UnknownPreset
from promptkit.templates import Fields, PromptBuilder, normalise_terms, packaged_templates_dir, parse_extras


def test_normalise_drops_empty_segments_doubled_spaces_and_duplicates():
    text, dropped = normalise_terms("a cat,  , ,  sitting   down,\nA Cat, , 8k,")
    assert text == "a cat, sitting down, 8k"
    assert dropped == ["A Cat"]


def test_default_template_renders_fields_and_presets():
    prompt = PromptBuilder().render(
        Fields(subject="a lighthouse", action="glowing", style=["watercolor", "cinematic"], quality=["8k"])
    )
    assert prompt.positive.startswith("a lighthouse, glowing, watercolor painting")
    assert "cinematic still" in prompt.positive and prompt.positive.endswith("8k")
    assert ", ," not in prompt.positive and "  " not in prompt.positive
    # negative: the standard preset plus the style's own negative terms
    assert prompt.negative.startswith("blurry, low quality, distorted, watermark, text")
    assert "photograph" in prompt.negative


def test_user_negative_terms_and_no_preset():
    prompt = PromptBuilder().render(Fields(subject="x", negative=["fog", "rain"], negative_preset=""))
    assert prompt.negative == "fog, rain"


def test_packaged_presets_cover_design_vocabulary():
    builder = PromptBuilder()
    names = {(p.kind, p.name) for p in builder.presets()}
    for name in ("watercolor", "oil-painting", "sketch", "photorealistic", "cinematic", "bokeh",
                 "digital-art", "3d-render", "concept-art"):
        assert ("style", name) in names
    for name in ("masterpiece", "best-quality", "highly-detailed", "8k", "sharp-focus"):
        assert ("quality", name) in names
    standard = builder.preset("negative", "standard").negative
    for term in ("blurry", "low quality", "distorted", "watermark", "text"):
        assert term in standard
    assert all(p.description for p in builder.presets())


def test_unknown_preset_names_the_preset():
    with pytest.raises(UnknownPreset, match="watercolour"):
        PromptBuilder().render(Fields(subject="x", style=["watercolour"]))


def test_template_negative_block_is_separate_from_positive():
    prompt = PromptBuilder().render(Fields(subject="a fox"), "photo")
    assert prompt.positive.startswith("photograph of a fox")
    assert "illustration" not in prompt.positive
    assert prompt.negative.endswith("illustration, painting, cartoon")


def test_user_folder_overrides_and_extends_packaged(tmp_path):
    user = tmp_path / "mytemplates"
    user.mkdir()
    (user / "mine.j2").write_text('{% extends "base.j2" %}{% block positive %}{{ subject }} in {{ mood }} mood{% endblock %}')
    (user / "default.j2").write_text("OVERRIDE {{ subject }}")
    builder = PromptBuilder(user)
    assert "mine" in builder.template_names() and "photo" in builder.template_names()
    prompt = builder.render(Fields(subject="a cat", extras={"mood": "calm"}), "mine")
    assert prompt.positive == "a cat in calm mood"
    assert prompt.negative.startswith("blurry")  # the packaged base's negative block
    assert builder.render(Fields(subject="a cat")).positive == "OVERRIDE a cat"


def test_digest_covers_extended_templates(tmp_path):
    user = tmp_path / "t"
    user.mkdir()
    before = PromptBuilder(user).template_digest("default")
    (user / "base.j2").write_text("{% block positive %}{{ subject }}{% endblock %}")
    after = PromptBuilder(user).template_digest("default")
    assert before != after  # default.j2 is unchanged, but the base it extends changed
    assert PromptBuilder(user).render(Fields(subject="q")).template_digest == after


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ subject.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% set x = [] %}{{ x.append(1) }}",
    ],
)
def test_sandbox_refuses_escapes(tmp_path, source):
    (tmp_path / "evil.j2").write_text(source)
    with pytest.raises(TemplateProblem):
        PromptBuilder(tmp_path).render(Fields(subject="x"), "evil")


def test_undefined_field_is_a_clear_error(tmp_path):
    (tmp_path / "needs.j2").write_text("{{ subject }} {{ lighting }}")
    with pytest.raises(TemplateProblem, match="lighting.*--set"):
        PromptBuilder(tmp_path).render(Fields(subject="x"), "needs")


def test_runaway_template_is_capped(tmp_path):
    (tmp_path / "big.j2").write_text("{{ 'a' * 10000000 }}")
    with pytest.raises(TemplateProblem, match="too large"):
        PromptBuilder(tmp_path).render(Fields(subject="x"), "big")
    (tmp_path / "loop.j2").write_text("{% for i in range(99999) %}{{ subject }} {% endfor %}")
    with pytest.raises(TemplateProblem, match="more than"):
        PromptBuilder(tmp_path).render(Fields(subject="x" * 50), "loop")


def test_unknown_template_lists_available():
    with pytest.raises(TemplateProblem, match="available: .*default"):
        PromptBuilder().render(Fields(subject="x"), "nope")


def test_parse_extras():
    assert parse_extras(["mood=calm", "a_b=x=y"]) == {"mood": "calm", "a_b": "x=y"}
    with pytest.raises(TemplateProblem, match="NAME=VALUE"):
        parse_extras(["novalue"])


def test_packaged_templates_dir_holds_templates_and_presets():
    folder = packaged_templates_dir()
    assert (folder / "default.j2").is_file()
    assert (folder / "presets" / "style.json").is_file()
