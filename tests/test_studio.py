"""The studio's logic and JSON endpoints: previews, generate jobs, iterate, A/B, and bad bodies."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from promptkit.experiments import get_experiment, missing_cells
from promptkit.cli import main
from promptkit.library import Library
from promptkit.templates import Fields, PromptBuilder
from promptkit.web import create_app

ORIGIN = "http://127.0.0.1:8765"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def client(isolated_library, studio_engine, tiny_model, tmp_path):
    templates = tmp_path / "my-templates"
    templates.mkdir()
    (templates / "moody.j2").write_text('{% extends "base.j2" %}{% block positive %}{{ subject }}, {{ mood }}'
                                        '{% if lens is defined %}, {{ lens }}{% endif %}{% endblock %}')
    Library(isolated_library).close()
    app = create_app(isolated_library, engine=studio_engine, default_model=tiny_model, templates_dir=templates)
    with TestClient(app, base_url=ORIGIN, headers=SAME_ORIGIN) as test_client:
        yield test_client


def _generate(client, tiny_model, fields, parent_id=None, seeds=(1, 2, 3, 4), **settings):
    body = {"template": "default", "fields": fields, "model": tiny_model, "seeds": list(seeds),
            "settings": {"steps": 2, **settings}, "parent_id": parent_id}
    queued = client.post("/api/studio/generate", json=body)
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(queued.json()["status_url"]).json()
        if job["state"] in ("done", "failed"):
            assert job["state"] == "done", job
            return queued.json(), job
        time.sleep(0.1)
    raise AssertionError("the job did not finish")


def test_declared_fields_follow_extends(tmp_path):
    (tmp_path / "child.j2").write_text('{% extends "mid.j2" %}{% block positive %}{{ subject }}, {{ lens }}{% endblock %}')
    (tmp_path / "mid.j2").write_text('{% extends "base.j2" %}{% block negative %}{{ negative }}, {{ avoid }}{% endblock %}')
    builder = PromptBuilder(tmp_path)
    assert builder.declared_fields("child") == ["avoid", "lens"]
    assert builder.declared_fields("default") == [] and builder.declared_fields("photo") == []


def test_preview_renders_lints_and_reports_template_errors_in_one_line(client):
    ok = client.post("/api/studio/preview", json={"fields": {"subject": "a fox", "style": ["watercolor"],
                                                             "negative": ["a fox"]}}).json()
    assert ok["error"] is None and ok["positive"].startswith("a fox, watercolor painting")
    assert ok["lint"]["positive"]["limit"] == 75 and ok["lint"]["positive"]["overflow"] == ""
    assert any("'a fox' is in both" in f["message"] and f["level"] == "warning" for f in ok["lint"]["findings"])
    long = client.post("/api/studio/preview", json={"fields": {"subject": " ".join(f"w{n}" for n in range(90))}}).json()
    assert long["lint"]["positive"]["overflow"].endswith("w89")
    for template, fields, expected in [("moody", {"subject": "x"}, "'mood' is undefined"),
                                       ("nope", {"subject": "x"}, "unknown template 'nope'"),
                                       ("default", {"style": ["watercolour"]}, "unknown style preset")]:
        response = client.post("/api/studio/preview", json={"template": template, "fields": fields})
        assert response.status_code == 200 and expected in response.json()["error"]
        assert "\n" not in response.json()["error"] and response.json()["positive"] is None
    filled = client.post("/api/studio/preview", json={"template": "moody",
                                                      "fields": {"subject": "x", "extras": {"mood": "grim", "lens": ""}}})
    assert filled.json()["positive"] == "x, grim" and filled.json()["template_fields"] == ["lens", "mood"]
    assert client.get("/api/studio/templates/moody").json()["fields"] == ["lens", "mood"]
    assert client.get("/api/studio/templates/nope").status_code == 400


def test_weights_from_the_form_reach_the_prompt_and_come_back_to_the_form(client, isolated_library):
    weighted = client.post("/api/studio/preview", json={"fields": {"subject": "a fox (red)", "action": "running",
                                                                   "weights": {"subject": 1.3, "action": 1}}}).json()
    assert weighted["error"] is None and weighted["positive"].startswith("(a fox \\(red\\):1.3), running")
    for bad in (0, 2.5, -1):
        assert client.post("/api/studio/preview", json={"fields": {"subject": "x", "weights": {"subject": bad}}}
                           ).status_code == 422
    unknown = client.post("/api/studio/preview", json={"fields": {"subject": "x", "weights": {"lens": 1.2}}}).json()
    assert "--weight lens" in unknown["error"] and unknown["positive"] is None
    # A prompt built with --weight opens in the studio with its weights in the form.
    from promptkit.templates import Fields, PromptBuilder

    with Library(isolated_library) as lib:
        prompt_id = lib.save_prompt(PromptBuilder().render(Fields(subject="a heron", weights={"subject": 1.4})))
    page = client.get(f"/studio/{prompt_id}").text
    assert 'id="weight-subject"' in page and 'value="1.4"' in page.split('id="weight-subject"')[1].split(">")[0]
    assert 'data-weights="{&#34;subject&#34;: 1.4}"' in page


@pytest.mark.parametrize("url, body", [
    ("/api/studio/preview", {"fields": {"subject": 3}}),
    ("/api/studio/preview", {"fields": {}, "surprise": 1}),
    ("/api/studio/preview", {"fields": {"subject": "x" * 5000}}),
    ("/api/studio/preview", {"fields": {"style": "watercolor"}}),
    ("/api/studio/preview", {}),
    ("/api/studio/generate", {"fields": {"subject": "x"}, "seeds": [1]}),  # no model
    ("/api/studio/generate", {"fields": {"subject": "x"}, "model": "m", "seeds": []}),
    ("/api/studio/generate", {"fields": {"subject": "x"}, "model": "m", "seeds": ["one"]}),
    ("/api/studio/generate", {"fields": {"subject": "x"}, "model": "m", "seeds": [1], "settings": {"steps": 0}}),
    ("/api/studio/generate", {"fields": {"subject": "x"}, "model": "m", "seeds": [1], "parent_id": 0}),
    ("/api/studio/experiments", {"parent_id": 1, "child_id": 2}),
])
def test_bad_bodies_are_422(client, url, body):
    response = client.post(url, json=body)
    assert response.status_code == 422 and response.json()["detail"], response.text


def test_bad_values_are_refused_before_anything_is_saved(client, tiny_model, isolated_library):
    base = {"fields": {"subject": "x"}, "model": tiny_model, "seeds": [1, 2]}
    for change, expected in [({"seeds": [1, 1]}, "repeats a seed"), ({"seeds": [2**32]}, "outside"),
                             ({"model": "/no/such/model"}, "not found"), ({"model": "evil.ckpt"}, "not found"),
                             ({"settings": {"sampler": "nope"}}, "unknown sampler"),
                             ({"settings": {"width": 100}}, "multiple of 8"),
                             ({"fields": {"style": ["watercolour"]}}, "unknown style preset"),
                             ({"parent_id": 99}, "no prompt")]:
        response = client.post("/api/studio/generate", json={**base, **change})
        assert response.status_code in (400, 404) and expected in response.json()["detail"], (change, response.text)
    assert client.get("/api/studio/jobs/12345").status_code == 404
    assert client.post("/api/studio/preview", json={"fields": {}}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    with Library(isolated_library) as lib:
        assert lib.count_prompts() == 0


def test_errors_on_the_page_name_the_field_not_the_parameter(client, tiny_model):
    """issue 18 #14: the studio's error names the field a person filled in ("Steps"), not `steps`."""
    from promptkit.web.app import name_fields

    response = client.post("/api/studio/generate", json={"fields": {"subject": "x"}, "model": tiny_model,
                                                         "seeds": [1], "settings": {"width": 100}})
    detail = response.json()["detail"]
    assert response.status_code == 400 and "\u201cSize (width)\u201d" in detail and "`width`" not in detail, detail
    assert name_fields("`steps` must be at most 1000 but is 5000") == "\u201cSteps\u201d must be at most 1000 but is 5000"
    assert name_fields("`unknown_thing` stays") == "`unknown_thing` stays"


def test_generate_iterate_and_make_an_ab_test(client, tiny_model, isolated_library):
    first, job = _generate(client, tiny_model, {"subject": "a fox", "style": ["watercolor"]})
    assert first["created"] and first["parent_id"] is None and job["comparison"] is None
    assert [image["seed"] for image in job["images"]] == [1, 2, 3, 4]
    assert client.get(job["images"][0]["url"]).headers["content-type"] == "image/png"
    # The same prompt again: no new prompt, the same one generated again.
    again, _ = _generate(client, tiny_model, {"subject": "a fox", "style": ["watercolor"]}, parent_id=first["prompt_id"])
    assert again["prompt_id"] == first["prompt_id"] and not again["created"]
    # A change: a child prompt on the same seeds and parameters, compared side by side.
    child, job = _generate(client, tiny_model, {"subject": "a fox", "style": ["cinematic"]}, parent_id=first["prompt_id"])
    assert child["created"] and child["parent_id"] == first["prompt_id"]
    comparison = job["comparison"]
    assert comparison["fields"] == {"style": {"from": ["watercolor"], "to": ["cinematic"]}}
    assert "watercolor painting" in comparison["positive"]["removed"] and "cinematic still" in comparison["positive"]["added"]
    assert [(p["seed"], bool(p["parent"]), bool(p["child"])) for p in comparison["pairs"]] == [(s, True, True) for s in (1, 2, 3, 4)]
    with Library(isolated_library) as lib:
        assert lib.get_prompt(child["prompt_id"])["parent_id"] == first["prompt_id"]
        assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == 12

    body = {"parent_id": first["prompt_id"], "child_id": child["prompt_id"], "model": tiny_model, "seeds": [1, 2, 3, 4],
            "settings": {"steps": 2}}
    made = client.post("/api/studio/experiments", json=body)
    assert made.status_code == 201, made.text
    name = f"studio-{first['prompt_id']}-vs-{child['prompt_id']}"
    assert made.json() == {"name": name, "generated": 0, "review_url": f"/experiments/{name}/review"}
    with Library(isolated_library) as lib:
        experiment = get_experiment(lib, name)
        assert missing_cells(lib, experiment) == {"A": [], "B": []}
        # The cells are new rows on the images already made; the originals stay outside the experiment.
        cells = lib.db.execute("SELECT variant, seed, image_sha256 FROM generations WHERE experiment_id = ?",
                               [experiment["id"]]).fetchall()
        originals = {(s, sha) for s, sha in lib.db.execute(
            "SELECT seed, image_sha256 FROM generations WHERE experiment_id IS NULL AND prompt_id = ?",
            [child["prompt_id"]])}
        assert len(cells) == 8 and {(s, sha) for v, s, sha in cells if v == "B"} <= originals
    # Again, with a seed neither prompt has: a new name, and the missing cells made on the warm engine.
    again = client.post("/api/studio/experiments", json={**body, "seeds": [1, 2, 3, 4, 5]})
    assert again.status_code == 201 and again.json()["name"] == f"{name}-2" and again.json()["generated"] == 2
    with Library(isolated_library) as lib:
        assert missing_cells(lib, get_experiment(lib, f"{name}-2")) == {"A": [], "B": []}
    same = client.post("/api/studio/experiments", json={**body, "child_id": first["prompt_id"]})
    assert same.status_code == 400


def test_studio_pages(client, tiny_model, isolated_library):
    page = client.get("/studio")
    assert page.status_code == 200
    for label in ("Subject", "Action", "Environment", "Style", "Quality", "Negative"):
        assert f">{label}</label>" in page.text
    assert "Soft watercolor painting on textured paper" in page.text and tiny_model in page.text
    assert 'data-fields="lens,mood"' in page.text
    first, _ = _generate(client, tiny_model, {"subject": "a <b>fox</b>", "style": ["sketch"]}, seeds=(5, 6), cfg=3.5)
    started = client.get(f"/studio/{first['prompt_id']}").text
    assert "a &lt;b&gt;fox&lt;/b&gt;" in started and 'value="5, 6"' in started and 'value="3.5"' in started
    assert f'data-prompt-id="{first["prompt_id"]}"' in started
    assert started.count('alt="Image #') == 2  # "see it in my library" for the sketch preset
    assert client.get("/studio/999").status_code == 404


def test_the_studio_waits_for_other_writers(client, tiny_model, isolated_library):
    """Another process holding the write lock for a while: the page waits instead of failing."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock():
        conn = sqlite3.connect(isolated_library)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO experiments (name, seeds, params, created_at) VALUES ('x', '[]', '{}', 'now')")
        holding.set()
        release.wait(10)
        conn.commit()
        conn.close()

    writer = threading.Thread(target=hold_the_lock)
    writer.start()
    holding.wait(5)
    threading.Timer(1.0, release.set).start()
    _queued, job = _generate(client, tiny_model, {"subject": "busy day"}, seeds=(1,))
    writer.join()
    assert len(job["images"]) == 1
    with Library(isolated_library) as lib:
        assert lib.db.execute("SELECT count(*) FROM experiments").fetchone()[0] == 1


def test_serve_refuses_a_bad_model_in_one_line(isolated_library):
    Library(isolated_library).close()
    result = CliRunner().invoke(main, ["serve", "--model", "weights.ckpt", "--port", "1"])
    assert result.exit_code != 0 and "weights.ckpt" in result.output and "Traceback" not in result.output


def test_save_for_generation_reuses_an_unchanged_prompt(isolated_library):
    from promptkit.studio import save_for_generation

    builder = PromptBuilder()
    with Library(isolated_library) as lib:
        first, created = save_for_generation(lib, builder, Fields(subject="a"), "default")
        same, again = save_for_generation(lib, builder, Fields(subject="a"), "default", first["id"])
        child, made = save_for_generation(lib, builder, Fields(subject="b"), "default", first["id"])
    assert created and not again and same["id"] == first["id"]
    assert made and child["parent_id"] == first["id"]


def test_serve_with_model_preloads_it_for_the_studio(isolated_library, tiny_model, monkeypatch):
    """`promptkit serve --model M`: M is loaded before the page listens, and the studio defaults to it."""
    import socket

    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.update(app=self.config.app))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    Library(isolated_library).close()
    result = CliRunner().invoke(main, ["serve", "--model", tiny_model, "--device", "cpu", "--port", str(port)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "the studio's Generate uses it" in result.output
    app = served["app"]
    assert app.state.default_model == tiny_model and app.state.studio.worker is not None
    assert tiny_model in app.state.studio.worker.cache.models()
    page = TestClient(app, base_url=f"http://127.0.0.1:{port}").get("/studio").text
    assert f'value="{tiny_model}"' in page
