"""Property-based tests: arbitrary text never breaks the prompt builder or the PNG metadata.

Run `pytest tests/test_properties.py --hypothesis-show-statistics` to see how many inputs
each property tried.
"""

import io
import json

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from promptkit.errors import PromptkitError
from promptkit.pnginfo import a1111_parameters, encode_png, parse_a1111_parameters, read_png_text
from promptkit.templates import MAX_RENDERED_CHARS, Fields, PromptBuilder

# Every code point, lone surrogates included: a command-line argument that is not valid
# UTF-8 reaches Python as surrogate escapes.
ANY_CHAR = st.characters(codec=None, categories=None, exclude_categories=())
ANY_TEXT = st.text(alphabet=ANY_CHAR, max_size=200)
AWKWARD_CHARS = st.sampled_from(list(",\n\r\t \x00\x0b\x0c\x1c\x85\u2028\u2029:\"{}%#"))


def awkward_text(longest: int):
    """Arbitrary text, text made of separators and control characters, and long runs up to LONGEST
    characters (built by repetition rather than drawn character by character)."""
    return st.one_of(
        ANY_TEXT,
        st.text(alphabet=AWKWARD_CHARS, max_size=60),
        st.text(alphabet=st.one_of(AWKWARD_CHARS, ANY_CHAR), max_size=80),
        st.builds(lambda piece, times: (piece * times)[:longest], ANY_TEXT.filter(bool), st.integers(1, longest)),
    )


ONE_MEGABYTE = "x" * 1_000_000
STYLE_NAMES = ["watercolor", "oil-painting", "sketch", "cinematic", "bokeh", "3d-render"]
QUALITY_NAMES = ["masterpiece", "best-quality", "8k", "standard"]


def _mostly(usual, rarely):
    """USUAL nine times in ten, so that most inputs render; RARELY (anything at all) otherwise."""
    return st.integers(0, 9).flatmap(lambda roll: rarely if roll == 0 else usual)


def _names(known):
    return st.lists(_mostly(st.sampled_from(known), ANY_TEXT), max_size=3)


def _fields():
    text = awkward_text(1_100_000)
    identifier = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
    return st.builds(
        Fields,
        subject=text,
        action=text,
        environment=text,
        style=_names(STYLE_NAMES),
        quality=_names(QUALITY_NAMES),
        negative=st.lists(text, max_size=3),
        negative_preset=_mostly(st.sampled_from(["", "standard", "photo", "anatomy"]), ANY_TEXT),
        extras=st.dictionaries(_mostly(identifier, ANY_TEXT), text, max_size=2),
    )


BUILDER = PromptBuilder()
FAST = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(fields=_fields(), template=st.sampled_from(["default", "photo", "base"]))
@example(fields=Fields(), template="default")
@example(fields=Fields(subject=ONE_MEGABYTE), template="default")
@example(fields=Fields(negative=[ONE_MEGABYTE]), template="photo")
@example(fields=Fields(subject="\x00\n\r\t", action="\ud800", environment=",,, ,\n,"), template="default")
@example(fields=Fields(style=[""], quality=[""], negative_preset=""), template="default")
def test_builder_gives_a_clean_prompt_or_a_promptkit_error(fields, template):
    try:
        prompt = BUILDER.render(fields, template)
    except PromptkitError as exc:
        message = str(exc)
        assert message and "\n" not in message[:500]
        event(f"refused: {type(exc).__name__}")
        return
    event("rendered")
    for text in (prompt.positive, prompt.negative):
        assert len(text) <= MAX_RENDERED_CHARS
        assert "\n" not in text and "  " not in text and text == text.strip()
        assert ", ," not in text and not text.startswith(",") and not text.endswith(",")
        text.encode("utf-8")  # storable in SQLite and in a PNG chunk
    terms = [t.lower() for t in prompt.positive.split(", ") if t]
    assert len(terms) == len(set(terms))


def _one_line(text):
    return " ".join(text.split())


SETTINGS = {"steps": 20, "sampler": "DPM++ 2M Karras", "cfg": 7.0, "seed": 42, "width": 512, "height": 768,
            "model_hash": "abc123", "versions": {"promptkit": "0.1.0"}}


@settings(max_examples=2000, deadline=None)
@given(positive=awkward_text(5000), negative=awkward_text(5000),
       model=st.text(max_size=60), gpu_noise=st.booleans())
@example(positive="Negative prompt: not really", negative="", model="m", gpu_noise=False)
@example(positive="Negative prompt: a", negative="Negative prompt: b", model="m", gpu_noise=False)
@example(positive="", negative="", model="", gpu_noise=True)
@example(positive="a: 1, b: 2, c: 3", negative="", model="x", gpu_noise=False)
@example(positive="line one\nNegative prompt: injected", negative="real\nnegative", model="a, b: \"c\"", gpu_noise=False)
def test_a1111_parameters_round_trip(positive, negative, model, gpu_noise):
    meta = dict(SETTINGS, positive=positive, negative=negative, model=model,
                noise_device="gpu" if gpu_noise else "cpu")
    text = a1111_parameters(meta)
    parsed = parse_a1111_parameters(text)
    assert parsed["positive"] == _one_line(positive)
    assert parsed["negative"] == _one_line(negative)
    assert parsed["model"] == _one_line(model)
    assert (parsed["steps"], parsed["sampler"], parsed["cfg"], parsed["seed"]) == (20, "DPM++ 2M Karras", 7.0, 42)
    assert (parsed["width"], parsed["height"]) == (512, 768)
    assert parsed["settings"].get("RNG") == ("GPU" if gpu_noise else None)


@settings(max_examples=300, deadline=None)
@given(positive=awkward_text(5000), negative=awkward_text(5000))
def test_png_chunks_round_trip_through_a_real_png(positive, negative):
    from PIL import Image

    meta = dict(SETTINGS, positive=positive, negative=negative, model="tiny", noise_device="cpu")
    try:
        png = encode_png(Image.new("RGB", (8, 8)), meta)
    except PromptkitError:
        return  # text a PNG cannot carry (lone surrogates) is refused in one line
    chunks = read_png_text(png)
    parsed = parse_a1111_parameters(chunks["parameters"])
    assert (parsed["positive"], parsed["negative"]) == (_one_line(positive), _one_line(negative))
    assert json.loads(chunks["promptkit"])["positive"] == positive


def _sample_png():
    from PIL import Image

    meta = dict(SETTINGS, positive="a lighthouse", negative="blurry", model="tiny", noise_device="cpu")
    return encode_png(Image.new("RGB", (8, 8), "teal"), meta)


SAMPLE_PNG = _sample_png()


@settings(max_examples=500, deadline=None)
@given(cut=st.one_of(st.just(len(SAMPLE_PNG)), st.integers(0, len(SAMPLE_PNG))),
       changes=st.lists(st.tuples(st.integers(0, len(SAMPLE_PNG) - 1), st.integers(0, 255)), max_size=4),
       junk=st.binary(max_size=64))
def test_read_png_text_on_damaged_pngs_is_a_promptkit_error_or_text(cut, changes, junk):
    data = bytearray(SAMPLE_PNG)
    for index, value in changes:
        data[index] = value
    data = bytes(data[:cut]) + junk
    try:
        chunks = read_png_text(data)
    except PromptkitError as exc:
        assert "\n" not in str(exc)
        event("refused")
        return
    event("read")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in chunks.items())


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(awkward_text(5000), st.builds(
    lambda prompt, values: prompt + "\n" + ", ".join(f"{k}: {v}" for k, v in zip(("Steps", "Seed", "Size", "CFG scale"),
                                                                               values)),
    ANY_TEXT, st.lists(st.one_of(ANY_TEXT, st.from_regex(r"\d+(x\d+)?", fullmatch=True)), min_size=3, max_size=4))))
@example(text="a castle\nSteps: 2, Seed: 3, Size: axb")
@example(text="a castle\nSteps: 2, Seed: 3, Size: 512x")
def test_parse_a1111_parameters_on_arbitrary_text(text):
    try:
        parsed = parse_a1111_parameters(text)
    except PromptkitError:
        return
    assert isinstance(parsed["positive"], str) and isinstance(parsed["negative"], str)


def test_truncated_png_is_a_promptkit_error():
    from PIL import Image

    meta = dict(SETTINGS, positive="a", negative="b", model="tiny", noise_device="cpu")
    png = encode_png(Image.new("RGB", (8, 8)), meta)
    for cut in (8, 20, len(png) // 2, len(png) - 5):
        try:
            read_png_text(io.BytesIO(png[:cut]).getvalue())
        except PromptkitError as exc:
            assert "not a readable PNG" in str(exc) or "not a PNG" in str(exc)
        else:
            raise AssertionError(f"a PNG cut at {cut} bytes was read without error")
