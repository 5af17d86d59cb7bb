from promptkit.lint import lint_prompt, load_tokenizer


def test_bundled_tokenizer_is_real_clip_vocabulary():
    tokenizer, name = load_tokenizer(None)
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == 49408
    assert "bundled" in name


def test_long_prompt_flags_words_past_window():
    words = [f"word{i}" for i in range(60)]
    text = ", ".join(words)  # each 'wordN,' is 3+ tokens, far past 75
    report = lint_prompt(text, "")
    assert report.positive.count > 75
    overflow = report.positive.overflow_text
    assert overflow and overflow.endswith("word59")
    assert "word0," not in overflow
    assert any("past the 75-token window" in w and "word59" in w and "chunks" in w for w in report.warnings)


def test_short_prompt_has_no_overflow():
    report = lint_prompt("a photo of a cat", "blurry")
    assert report.positive.count == 5 and report.positive.overflow_text == ""
    assert not any("window" in w for w in report.warnings)


def test_contradicting_terms():
    # a term that stands whole in both prompts (issue 18: a shared word alone is no contradiction)
    report = lint_prompt("a red car, blurry", "blurry, text")
    assert any("'blurry' is in both" in w for w in report.warnings)
    assert not any("'car'" in w for w in report.warnings)


def test_model_tokenizer_used_when_given(tiny_model):
    report = lint_prompt("a photo of a cat", "", model=tiny_model)
    assert report.tokenizer == f"tokenizer of {tiny_model}"
    assert report.positive.count == 5


# -- issue 18: whole-term contradictions, levels, one line per finding, no transformers -------------

import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from promptkit.lint import contradictions, lint_tokenizer, token_report  # noqa: E402


def test_a_shared_word_is_not_a_contradiction_but_a_shared_term_is():
    assert contradictions("best quality, sharp focus", "blurry, low quality") == []
    assert contradictions("portrait of a fox, detailed face", "bad anatomy, deformed face") == []
    assert contradictions("a red car, blurry background", "blurry, text") == []
    assert contradictions("a fox, Blurry", "(blurry:1.2), text") == ["Blurry"]
    assert contradictions("(a fox:1.3), <lora:x:0.5> snow", "snow,  a  fox") == ["a fox", "snow"]


def test_the_readme_lighthouse_builds_without_a_warning():
    from promptkit.templates import Fields, PromptBuilder

    prompt = PromptBuilder().render(Fields(subject="a lighthouse on a cliff", environment="stormy sea at dusk",
                                           style=["watercolor"], quality=["standard"]))
    report = lint_prompt(prompt.positive, prompt.negative, notes=prompt.notes)
    assert report.findings == []


def _combinations(names: list[str]) -> list[list[str]]:
    return [[]] + [[n] for n in names] + [list(c) for c in itertools.combinations(names, 2)] + [names]


def test_every_packaged_template_with_every_packaged_preset_has_no_contradiction():
    from promptkit.templates import Fields, PromptBuilder

    builder = PromptBuilder()
    styles = [p.name for p in builder.presets("style")]
    qualities = [p.name for p in builder.presets("quality")]
    negatives = [p.name for p in builder.presets("negative")]
    assert builder.template_names() and styles and qualities and negatives
    checked = 0
    for template in builder.template_names():
        for negative in negatives:
            for style in _combinations(styles):
                for quality in _combinations(qualities):
                    fields = Fields(subject="a fox", action="running", environment="snowy forest", style=style,
                                    quality=quality, negative_preset="" if negative == "none" else negative)
                    prompt = builder.render(fields, template)
                    found = contradictions(prompt.positive, prompt.negative)
                    assert found == [], (template, negative, style, quality, found)
                    checked += 1
    assert checked > 1000


def test_findings_have_levels_and_each_is_said_once():
    from promptkit.templates import Fields, PromptBuilder

    prompt = PromptBuilder().render(Fields(subject="(a fox:1.2), snow, snow, Snow", negative=["snow"],
                                           style=["watercolor", "oil-painting", "digital-art"]))
    report = lint_prompt(prompt.positive, prompt.negative, notes=prompt.notes)
    levels = [(f.level, f.message) for f in report.findings]
    assert [m for level, m in levels if "dropped" in m] == [
        "duplicate term 'snow' dropped from the positive prompt",
        "duplicate term 'photograph' dropped from the negative prompt"]
    assert {level for level, m in levels if "dropped" in m} == {"note"}
    assert ("warning", "'snow' is in both the positive and the negative prompt") in levels
    assert ("note", "positive prompt uses A1111 weights or BREAK: weighted mode, encoded through compel") in levels
    assert report.warnings == ["'snow' is in both the positive and the negative prompt"]
    assert {f["level"] for f in report.to_dict()["findings"]} <= {"error", "warning", "note"}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)


def test_build_prints_each_finding_with_its_level(isolated_library):
    result = _cli("-m", "promptkit", "build", "--subject", "(a fox:1.2), snow, snow, Snow", "--negative", "snow",
                  "--style", "watercolor", "--style", "oil-painting", "--style", "sketch")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "warning:  'snow' is in both the positive and the negative prompt" in lines
    assert any(line.startswith("note:") and "weighted mode" in line for line in lines)
    assert not any(line.startswith("warning:") and "weighted" in line for line in lines)
    dropped = [line for line in lines if "dropped" in line]
    assert dropped == ["note:     duplicate term 'snow' dropped from the positive prompt",
                       "note:     duplicate term 'photograph' dropped from the negative prompt"]


def test_build_with_no_fields_is_refused_in_one_line(isolated_library):
    for args in ([], ["--subject", "  ", "--negative-preset", "none"]):
        result = _cli("-m", "promptkit", "build", *args)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "--subject" in result.stderr, result.stderr


def test_build_in_a_fresh_interpreter_imports_neither_transformers_nor_torch(isolated_library):
    code = ("import sys; from promptkit.cli import main\n"
            "try:\n    main(['build', '--subject', 'a lighthouse', '--style', 'watercolor', '--json'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('transformers', 'torch', 'diffusers') if m in sys.modules))")
    result = _cli("-c", code)
    assert result.returncode == 0, result.stderr
    *_, last = result.stdout.strip().splitlines()
    assert json.loads(last.replace("'", '"')) == []


PROMPTS = [
    "a photo of a cat",
    "A Lighthouse on a CLIFF,   stormy sea\tat dusk\n8k, masterpiece",
    "(a red fox:1.3), [snow], ((forest)), BREAK night, <lora:x:0.5>",
    "café crème, Zürich, naïve art, 東京の夜景, emoji 🦊🔥, ÆØÅ, ﬁne ligature",
    "it's the cat's toy, they'll've done it, 12:30 pm, 3.14159, #hashtag @user $5 100%",
    ", ".join(f"word{i}" for i in range(120)),
    " ".join(["supercalifragilisticexpialidocious"] * 30),
    "",
]


@pytest.mark.parametrize("text", PROMPTS)
def test_token_counts_match_transformers_clip_tokenizer(text):
    from promptkit.lint import load_tokenizer

    reference, _ = load_tokenizer(None)
    expected = reference(text, add_special_tokens=False, truncation=False)["input_ids"]
    tokenizer, _ = lint_tokenizer(None)
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert ids == expected
    assert token_report(tokenizer, text).count == len(expected)


def test_a_model_folder_tokenizer_matches_transformers(tiny_model):
    from promptkit.lint import load_tokenizer

    reference, _ = load_tokenizer(tiny_model)
    tokenizer, name = lint_tokenizer(tiny_model)
    assert name == f"tokenizer of {tiny_model}"
    for text in PROMPTS:
        assert tokenizer.encode(text, add_special_tokens=False).ids == \
            reference(text, add_special_tokens=False, truncation=False)["input_ids"]
