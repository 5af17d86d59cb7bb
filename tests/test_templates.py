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


# -- the weight filter and --weight -----------------------------------------------------------------


def _render(tmp_path, source, **fields):
    (tmp_path / "w.j2").write_text(source)
    return PromptBuilder(tmp_path).render(Fields(negative_preset="", **fields), "w")


def test_weight_filter_writes_a1111_weights(tmp_path):
    from promptkit.weighting import parse_attention

    assert _render(tmp_path, "{{ subject | weight(1.3) }}, at dusk", subject="a fox").positive == "(a fox:1.3), at dusk"
    assert _render(tmp_path, "{{ subject | weight(0.75) }}", subject="a fox").positive == "(a fox:0.75)"
    # weight 1 (or 1.0) and an empty field: the text unchanged, no brackets
    for weight in ("1", "1.0"):
        assert _render(tmp_path, f"{{{{ subject | weight({weight}) }}}}", subject="a (red) fox").positive == "a (red) fox"
    assert _render(tmp_path, "{{ action | weight(1.3) }}, {{ subject }}", subject="a fox").positive == "a fox"
    # a --set value is text: "1.3" counts as a number
    assert _render(tmp_path, "{{ subject | weight(w) }}", subject="a fox", extras={"w": "1.3"}).positive == "(a fox:1.3)"
    # many decimals are rounded to 4 and never written with an exponent
    assert _render(tmp_path, "{{ subject | weight(1.23456789) }}", subject="x").positive == "(x:1.2346)"
    assert _render(tmp_path, "{{ subject | weight(0.0001) }}", subject="x").positive == "(x:0.0001)"


@pytest.mark.parametrize("text", ["a (red:1.2) fox", "a [small] fox", "back\\slash (a)", "time 12:30", "x:2",
                                  "ends with a colon:", "weird ((", "a, b"])
def test_weight_filter_escapes_the_text_so_it_parses_as_one_weighted_run(tmp_path, text):
    from promptkit.weighting import parse_attention

    positive = _render(tmp_path, "{{ subject | weight(1.3) }}", subject=text).positive
    assert parse_attention(positive) == [(text, 1.3)], positive


def test_weight_filter_escaping_is_exact():
    from promptkit.templates import weight_text

    assert weight_text("a (red:1.2) [fox]", 1.5) == "(a \\(red:1.2\\) \\[fox\\]:1.5)"
    assert weight_text("c:\\dir", 2) == "(c:\\\\dir:2)"
    assert weight_text(["watercolor", "sketch"], 0.5) == "(watercolor, sketch:0.5)"


@pytest.mark.parametrize("call,message", [
    ("weight(3)", "weight 3 is out of range: give a number above 0 and at most 2"),
    ("weight(0)", "weight 0 is out of range"),
    ("weight(-1)", "out of range"),
    ("weight('strong')", "weight 'strong' is not a number"),
    ("weight(true)", "weight True is not a number"),
    ("weight(none)", "weight None is not a number"),
    ("weight('nan')", "is not a number"),
])
def test_weight_filter_refuses_bad_weights_in_one_line(tmp_path, call, message):
    with pytest.raises(TemplateProblem) as caught:
        _render(tmp_path, f"{{{{ subject | {call} }}}}", subject="a fox")
    text = str(caught.value)
    assert "\n" not in text and message in text and text.startswith("template 'w': the weight filter"), text


def test_weight_option_weights_fields_in_any_template(tmp_path):
    from promptkit.templates import parse_weights

    fields = Fields(subject="a (red) fox", style=["watercolor"], weights=parse_weights(["subject=1.4", "style=0.8"]))
    prompt = PromptBuilder().render(fields)
    assert prompt.positive.startswith("(a \\(red\\) fox:1.4), (watercolor painting")
    assert prompt.positive.endswith(":0.8)")
    # stored with the fields (iterate and X/Y field axes re-render with them); unweighted fields store as before
    assert Fields.from_dict(fields.to_dict()).weights == {"subject": 1.4, "style": 0.8}
    assert "weights" not in Fields(subject="x").to_dict()
    (tmp_path / "mine.j2").write_text("{{ subject }} with {{ hat }}")
    mine = PromptBuilder(tmp_path).render(Fields(subject="a fox", extras={"hat": "a top hat"},
                                                 weights={"hat": 1.2}), "mine")
    assert mine.positive == "a fox with (a top hat:1.2)"
    with pytest.raises(TemplateProblem, match="--weight lighting: no such field"):
        PromptBuilder().render(Fields(subject="x", weights={"lighting": 1.2}))
    for bad, message in (("subject", "expects FIELD=WEIGHT"), ("subject=2.5", "out of range"),
                         ("subject=much", "is not a number")):
        with pytest.raises(TemplateProblem, match=message):
            parse_weights([bad])


def test_build_weight_option_and_lint_token_counts(isolated_library):
    import json

    from click.testing import CliRunner

    from promptkit.cli import main
    from promptkit.library import Library

    runner = CliRunner()

    def build(*args):
        result = runner.invoke(main, ["build", "--subject", "a red fox", "--environment", "time 12:30",
                                      "--negative-preset", "none", "--json", *args])
        return result.exit_code, (json.loads(result.output) if result.exit_code == 0 else result.output)

    _, plain = build()
    _, weighted = build("--weight", "subject=1.3", "--weight", "environment=0.7", "--save", "wfox")
    assert weighted["positive"] == "(a red fox:1.3), (time 12:30:0.7)"
    # the lint counts the words the encoder reads: weights do not add tokens
    assert weighted["tokens"]["positive"] == plain["tokens"]["positive"] == 10  # a red fox , time 12 : 30
    assert any("weighted mode" in f["message"] and f["level"] == "note" for f in weighted["findings"])
    with Library(isolated_library) as lib:
        assert lib.get_prompt("wfox")["fields"]["weights"] == {"subject": 1.3, "environment": 0.7}
        count = lib.db["prompts"].count
    code, output = build("--weight", "subject=9", "--save", "bad")
    assert code == 1 and output.strip().count("\n") == 0
    assert output.startswith("Error: --weight subject=9: weight '9' is out of range")
    with Library(isolated_library) as lib:
        assert lib.db["prompts"].count == count


def test_lint_counts_tokens_without_weight_syntax():
    from promptkit.lint import lint_prompt

    plain = lint_prompt("a red lighthouse at dusk", "blurry")
    weighted = lint_prompt("a (red:1.4) ((lighthouse)) at [dusk]", "(blurry:1.2)")
    assert weighted.positive.count == plain.positive.count == 5
    assert weighted.negative.count == plain.negative.count == 1
    long_weighted = lint_prompt("(" + ", ".join(f"word{i}" for i in range(60)) + ":1.2)", "")
    assert long_weighted.positive.overflow_text and not long_weighted.positive.overflow_text.endswith(":1.2)")
