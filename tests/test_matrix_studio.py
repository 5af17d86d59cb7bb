"""The studio's prompt matrix (`POST /api/studio/matrix`): created from a saved prompt and terms, generated on
the warm engine; bad terms refused with nothing stored."""

import pytest
from fastapi.testclient import TestClient

from promptkit.library import Library
from promptkit.web import create_app

ORIGIN = "http://127.0.0.1:8765"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def client(isolated_library, saved_prompt, studio_engine, tiny_model):
    app = create_app(isolated_library, engine=studio_engine, default_model=tiny_model)
    with TestClient(app, base_url=ORIGIN, headers=SAME_ORIGIN) as test_client:
        yield test_client


def test_studio_makes_a_matrix_and_generates_its_cells(client, saved_prompt, tiny_model, isolated_library):
    body = {"prompt_id": saved_prompt["id"], "terms": ["golden hour", "style=bokeh"], "model": tiny_model,
            "seeds": [1], "settings": {"steps": 2, "width": 32, "height": 32}}
    made = client.post("/api/studio/matrix", json=body)
    assert made.status_code == 201, made.text
    data = made.json()
    assert data["name"] == f"studio-matrix-{saved_prompt['id']}" and data["generated"] == 4
    assert data["design"]["kind"] == "full" and [t["letter"] for t in data["terms"]] == ["A", "B"]
    with Library(isolated_library) as lib:
        assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == 4
    page = client.get(data["results_url"])
    assert page.status_code == 200
    stats = client.get(f"/api/experiments/{data['name']}/stats").json()
    assert [t["term"] for t in stats["terms"]] == ["golden hour", "style=bokeh"]
    bad = client.post("/api/studio/matrix", json={**body, "terms": ["colour=red"]})
    assert bad.status_code == 400 and "colour" in bad.text
    with Library(isolated_library) as lib:
        assert lib.db.execute("SELECT count(*) FROM experiments").fetchone()[0] == 1
