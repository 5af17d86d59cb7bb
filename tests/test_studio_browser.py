"""The studio in a real browser (Playwright driving the system's Chromium) with the tiny model on a
preloaded warm engine, as `promptkit serve --model` runs it. Screenshots go where test_browser.py's go."""

from __future__ import annotations

import pytest
from test_browser import browser, screenshot  # noqa: F401  (the module-scoped browser fixture)

from promptkit.library import Library

MOODY = '{% extends "base.j2" %}{% block positive %}{{ subject }}, {{ mood }} mood, {{ style }}{% endblock %}'


@pytest.fixture
def studio_server(isolated_library, tiny_model, studio_engine, tmp_path):
    from web_server import LiveServer

    templates = tmp_path / "my-templates"
    templates.mkdir()
    (templates / "moody.j2").write_text(MOODY)
    (templates / "broken.j2").write_text("{{ subject ")
    Library(isolated_library).close()
    with LiveServer(isolated_library, engine=studio_engine, default_model=tiny_model,
                    templates_dir=templates) as server:
        yield server


@pytest.fixture
def page(browser, studio_server):  # noqa: F811
    context = browser.new_context(base_url=studio_server.url, viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: errors.append(message.text)
           if message.type == "error" and "status of 404" not in message.text else None)
    yield tab
    context.close()
    assert errors == [], errors


def _rendered(page) -> str:
    return page.inner_text("#rendered-positive")


def test_typing_a_subject_shows_it_in_the_rendered_prompt(page):
    page.goto("/studio")
    page.get_by_label("Subject", exact=True).fill("a red fox in the snow")
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.includes('a red fox in the snow')")
    page.locator('.chips[data-for="field-style"] .chip[data-preset="watercolor"]').click()
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.includes('watercolor painting')")
    assert page.get_by_label("Style", exact=True).input_value() == "watercolor"
    assert "/ 75 tokens" in page.inner_text("#positive-tokens")
    for name in ("Subject", "Action", "Environment", "Style", "Quality", "Negative"):
        assert page.get_by_label(name, exact=True).count() == 1, name
    assert page.get_by_role("button", name="Generate").is_visible()
    page.get_by_label("Subject weight", exact=True).fill("1.3")
    page.wait_for_function(
        "() => document.querySelector('#rendered-positive').textContent.includes('(a red fox in the snow:1.3)')")
    page.get_by_label("Subject weight", exact=True).fill("1")
    page.wait_for_function(
        "() => document.querySelector('#rendered-positive').textContent.startsWith('a red fox in the snow,')")
    page.get_by_label("Subject weight", exact=True).fill("1.2")
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.includes(':1.2)')")
    screenshot(page, "studio-before")


def test_a_subject_past_77_tokens_marks_the_words_past_the_window(page):
    words = [f"word{n}" for n in range(60)]
    page.goto("/studio")
    page.get_by_label("Subject", exact=True).fill(" ".join(words))
    page.wait_for_selector("#rendered-positive mark.past-window")
    past = page.inner_text("#rendered-positive mark.past-window")
    before = _rendered(page)[: -len(past)]
    assert past and "word59" in past and "word0 " in before
    assert "past the window" in page.inner_text("#positive-tokens")
    assert "past the 75-token window" in page.inner_text("#lint")
    screenshot(page, "studio-overflow", full_page=False)


def test_generate_iterate_side_by_side_and_ab(page, isolated_library):
    page.goto("/studio")
    page.get_by_label("Subject", exact=True).fill("a lighthouse at dusk")
    page.get_by_label("Style", exact=True).fill("watercolor")
    page.get_by_label("Steps", exact=True).fill("2")
    assert page.get_by_label("Seeds", exact=True).input_value() == "1, 2, 3, 4"
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.includes('lighthouse')")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("() => document.querySelectorAll('#images .studio-shot').length === 4", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#generate').textContent === 'Generate'")
    page.wait_for_timeout(400)  # let the images' fade-in and the progress bar finish, for the picture
    screenshot(page, "studio-after")
    with Library(isolated_library) as lib:
        rows = lib.db.execute("SELECT prompt_id, seed, steps FROM generations ORDER BY id").fetchall()
        assert sorted(r[1] for r in rows) == [1, 2, 3, 4] and {r[2] for r in rows} == {2}
        parent_id = rows[0][0]
        assert lib.get_prompt(parent_id)["fields"]["style"] == ["watercolor"]

    # Iterate: change Style, Generate again -> a child on the same seeds and parameters, side by side.
    page.get_by_label("Style", exact=True).fill("cinematic")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_selector("#compare:not([hidden])", timeout=60_000)
    assert page.locator("#pairs .compare-pair").count() == 4
    assert page.locator("#pairs .compare-pair .studio-shot").count() == 8
    # parent and child are drawn at the same size (issue 18: the review page's grid once squeezed the child)
    widths = page.evaluate("""() => Array.from(document.querySelectorAll('#pairs .compare-pair')).map(
        (pair) => Array.from(pair.querySelectorAll('.studio-shot img')).map((img) => img.getBoundingClientRect().width))""")
    assert len(widths) == 4 and all(len(w) == 2 and w[0] > 150 and abs(w[0] - w[1]) < 1 for w in widths), widths
    assert "watercolor" in page.inner_text("#diff del") and "cinematic" in page.inner_text("#diff .changed-fields ins")
    assert page.locator("#diff .diff-prompts ins").count() >= 1
    page.wait_for_timeout(400)
    screenshot(page, "studio-side-by-side")
    with Library(isolated_library) as lib:
        child = lib.db.execute("SELECT id, parent_id FROM prompts ORDER BY id DESC LIMIT 1").fetchone()
        assert child[1] == parent_id
        child_rows = lib.db.execute("SELECT seed, steps, cfg, sampler FROM generations WHERE prompt_id = ?",
                                    [child[0]]).fetchall()
        parent_rows = lib.db.execute("SELECT seed, steps, cfg, sampler FROM generations WHERE prompt_id = ?",
                                     [parent_id]).fetchall()
        assert sorted(child_rows) == sorted(parent_rows)

    # One action: parent versus child as an A/B experiment, then its blind review.
    page.get_by_role("button", name="Make A/B test").click()
    name = f"studio-{parent_id}-vs-{child[0]}"
    page.wait_for_url(f"**/experiments/{name}/review")
    from promptkit.experiments import get_experiment, missing_cells

    with Library(isolated_library) as lib:
        experiment = get_experiment(lib, name)
        assert experiment["seeds"] == [1, 2, 3, 4]
        assert [(v["label"], v["prompt_id"]) for v in experiment["variants"]] == [("A", parent_id), ("B", child[0])]
        assert missing_cells(lib, experiment) == {"A": [], "B": []}

    # "See it in my library": the watercolor preset now has images of the person's own.
    page.goto("/studio")
    page.get_by_text("See styles in my library").click()
    assert page.locator('.style-row[data-style="watercolor"] img').count() == 4
    assert page.locator('.style-row[data-style="cinematic"] img').count() == 4


def test_a_template_error_is_one_line_and_the_page_keeps_working(page):
    page.goto("/studio")
    page.get_by_label("Subject", exact=True).fill("a castle")
    page.get_by_label("Template", exact=True).select_option("moody")
    page.wait_for_selector("#template-error:not([hidden])")
    message = page.inner_text("#template-error")
    assert "mood" in message and "undefined" in message and "\n" not in message
    box = page.locator("#template-error").bounding_box()
    assert box and box["height"] < 40  # one line
    screenshot(page, "studio-template-error", full_page=False)
    page.get_by_label("mood", exact=True).fill("gloomy")
    page.wait_for_selector("#template-error", state="hidden")
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.includes('gloomy mood')")
    page.get_by_label("Template", exact=True).select_option("broken")
    page.wait_for_selector("#template-error:not([hidden])")
    assert "broken" in page.inner_text("#template-error")
    page.get_by_label("Template", exact=True).select_option("default")
    page.wait_for_selector("#template-error", state="hidden")
    page.get_by_label("Subject", exact=True).fill("a castle on a hill")
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.startsWith('a castle on a hill')")


@pytest.fixture
def phone(browser, studio_server):  # noqa: F811
    context = browser.new_context(base_url=studio_server.url, viewport={"width": 390, "height": 844})
    tab = context.new_page()
    yield tab
    context.close()


def test_the_studio_at_phone_width(phone):
    """390 px: no sideways overflow, the navigation fits, the weight boxes line up with their fields and
    carry labels, and the error line shows the whole list of presets."""
    page = phone
    page.goto("/studio")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    for link in page.locator(".topbar .tabs a").all():
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (link.inner_text(), box)
    search = page.locator(".topbar .search").bounding_box()
    assert search and search["x"] + search["width"] <= 390
    for name, field in (("Subject", "#field-subject"), ("Action", "#field-action"),
                        ("Environment", "#field-environment")):
        weight = page.get_by_label(f"{name} weight", exact=True)
        assert weight.count() == 1
        box, target, label = (weight.bounding_box(), page.locator(field).bounding_box(),
                              page.get_by_text(name, exact=True).bounding_box())
        assert abs((box["x"] + box["width"]) - (target["x"] + target["width"])) < 1.5, (name, box, target)
        assert box["y"] + box["height"] <= target["y"] + 1, (name, box, target)  # above its field, not beside
        assert box["y"] < label["y"] + label["height"] and label["y"] < box["y"] + box["height"]  # on the label's line
    page.get_by_label("Subject", exact=True).fill("a fox")
    page.get_by_label("Style", exact=True).fill("cin")
    page.wait_for_selector("#template-error:not([hidden])")
    error = page.locator("#template-error")
    message = error.inner_text()
    assert "unknown style preset 'cin'" in message and "\n" not in message
    assert all(name in message for name in ("cinematic", "concept-art", "watercolor"))
    assert page.evaluate("(el) => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight + 1",
                         error.element_handle())
    box = error.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(page, "studio-phone", full_page=False)


def test_the_page_follows_the_chosen_family(page):
    page.goto("/studio")
    page.get_by_label("Subject", exact=True).fill("a red fox in the snow")
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.includes('a red fox')")
    assert page.inner_text("#label-cfg") == "CFG" and page.is_visible("#negative-block")
    page.fill("#setting-model", "black-forest-labs/FLUX.1-dev")  # a hub id: its family by name
    page.dispatch_event("#setting-model", "change")
    page.wait_for_function("() => document.querySelector('#label-cfg').textContent === 'Guidance'")
    page.wait_for_function("() => document.querySelector('#rendered-positive').textContent.startsWith('A red fox')")
    assert page.input_value("#field-template") == "sentence"
    assert not page.is_visible("#negative-block") and page.is_visible("#negative-ignored")
    assert page.is_visible("#true-cfg-setting") and page.input_value("#setting-sampler") == "Euler"
    assert (page.input_value("#setting-cfg"), page.input_value("#setting-steps")) == ("3.5", "28")  # FLUX.1's
    assert "T5" in page.inner_text("#positive-encoders") and "/ 511" in page.inner_text("#positive-encoders")
    page.fill("#setting-true-cfg", "4")
    page.dispatch_event("#setting-true-cfg", "change")
    page.wait_for_function("() => !document.querySelector('#negative-block').hidden")
    page.select_option("#setting-family", "qwenimage")
    page.wait_for_function("() => document.querySelector('#label-cfg').textContent === 'True CFG'")


def test_a_prompt_matrix_from_the_studio(page, isolated_library):
    """/studio/ID shows the matrix panel for that prompt; two terms make a 4-variant matrix on the seeds
    shown, generated before the blind review opens (a bad term's refusal: test_matrix_studio.py)."""
    import promptkit
    from promptkit.experiments import get_experiment, missing_cells

    with promptkit.open_library(isolated_library) as lib:
        prompt_id = promptkit.build_prompt(lib, subject="a lighthouse", save="lighthouse").id
    page.goto("/studio")
    assert page.locator("#matrix").is_hidden()  # no saved prompt yet
    page.goto(f"/studio/{prompt_id}")
    assert page.locator("#matrix").is_visible() and f"#{prompt_id}" in page.inner_text("#matrix-base")
    page.get_by_label("Seeds", exact=True).fill("3")
    page.get_by_label("Steps", exact=True).fill("2")
    page.get_by_role("button", name="Make prompt matrix").click()  # no terms yet: said, nothing sent
    page.wait_for_selector("#toast.show.error")
    assert "at least one term" in page.inner_text("#toast")
    page.get_by_label("Terms, one per line").fill("golden hour\nstyle=bokeh\n")
    screenshot(page, "studio-matrix", full_page=False)
    page.get_by_role("button", name="Make prompt matrix").click()
    name = f"studio-matrix-{prompt_id}"
    page.wait_for_url(f"**/experiments/{name}/review", timeout=120_000)
    with Library(isolated_library) as lib:
        experiment = get_experiment(lib, name)
        assert experiment["seeds"] == [3] and len(experiment["variants"]) == 4
        assert all(not missing for missing in missing_cells(lib, experiment).values())
        assert lib.db.execute("SELECT count(*) FROM experiments").fetchone()[0] == 1
