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
    report = lint_prompt("a red car, blurry background", "blurry, text")
    assert any("'blurry' is in both" in w for w in report.warnings)
    assert not any("'car'" in w for w in report.warnings)


def test_model_tokenizer_used_when_given(tiny_model):
    report = lint_prompt("a photo of a cat", "", model=tiny_model)
    assert report.tokenizer == f"tokenizer of {tiny_model}"
    assert report.positive.count == 5
