"""The review page's experiment half over HTTP: pages, blind voting, the JSON API, fuzzing, concurrency."""

from __future__ import annotations

import io
import json
import re
import threading

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from sample_library import EXPERIMENT_LABELS

from promptkit.experiments import cells, experiment_votes, get_experiment
from promptkit.cli import main
from promptkit.library import Library
from promptkit.stats import experiment_stats
from promptkit.web import create_app

ORIGIN = "http://127.0.0.1:8765"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def app(experiment_library):
    return create_app(experiment_library)


@pytest.fixture
def client(app):
    with TestClient(app, base_url=ORIGIN, headers=SAME_ORIGIN) as test_client:
        yield test_client


def generation_ids(db, name="sky") -> set[int]:
    with Library(db) as lib:
        return {g["id"] for g in cells(lib, get_experiment(lib, name)).values()}


def votes_of(db, name="sky") -> list[dict]:
    with Library(db) as lib:
        return experiment_votes(lib, get_experiment(lib, name))


# -- pages ----------------------------------------------------------------------------


def test_experiment_pages_render(client, experiment_library):
    listing = client.get("/experiments")
    assert listing.status_code == 200 and "sky" in listing.text and "trio" in listing.text
    assert "0 of 4 pairs" in listing.text and "0 of 6 pairs" in listing.text
    assert '<a href="/experiments" aria-current="page">Experiments</a>' in listing.text
    results = client.get("/experiments/sky")
    assert results.status_code == 200
    assert "No votes yet" in results.text and 'class="winbar"' in results.text and "/sheet.png" in results.text
    assert results.text.count("/thumb?v=") == 8  # 2 variants x 4 seeds
    sheet = client.get("/experiments/sky/sheet.png")
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
    assert client.get("/experiments/sky/sheet.png").content == sheet.content  # cached until a vote changes it
    client.post("/api/experiments/sky/votes", json={"seed": 1, "winner": "fancy"})
    assert client.get("/experiments/sky/sheet.png").content != sheet.content
    voted = client.get("/experiments/sky").text
    assert "fancy ›" in voted and "1 of 4 pairs judged" in voted and "Not enough evidence yet" in voted
    trio = client.get("/experiments/trio").text
    assert "Ranking" in trio and "Bradley" in trio and trio.count('class="winbar"') == 3
    assert client.get("/experiments/nothing-here").status_code == 404
    assert client.get("/experiments/nothing-here/review").status_code == 404


def test_a_decided_experiment_says_so(client):
    for seed in (1, 2, 3, 4):
        for _ in range(3):
            assert client.post("/api/experiments/sky/votes", json={"seed": seed, "winner": "fancy"}).status_code == 201
    page = client.get("/experiments/sky").text
    assert "fancy beats plain" in page and 'class="ci decided"' in page


def test_review_of_an_experiment_without_images(client, experiment_library):
    with Library(experiment_library) as lib, lib.write() as db:
        db.execute("DELETE FROM generations WHERE variant = 'fancy'")
    page = client.get("/experiments/sky/review").text
    assert "No pair has both of its images yet" in page and "promptkit ab run sky" in page
    assert client.get("/api/experiments/sky/next-pair").json()["done"] is True


def test_empty_experiment_list(isolated_library):
    Library(isolated_library).close()
    with TestClient(create_app(isolated_library), base_url=ORIGIN) as http:
        assert "No experiments yet" in http.get("/experiments").text
        assert http.get("/api/experiments").json() == {"experiments": []}


# -- blindness ------------------------------------------------------------------------


def test_the_blind_page_names_no_variant_and_no_generation(client, experiment_library):
    ids = generation_ids(experiment_library)
    page = client.get("/experiments/sky/review").text
    pair = client.get("/api/experiments/sky/next-pair").json()
    for text in (page, json.dumps(pair)):
        for label in EXPERIMENT_LABELS + ("sky-plain", "sky-fancy", "lighthouse"):
            assert label not in text
        assert "/images/" not in text and "PNG" not in text and "Copy parameters" not in text
    urls = re.findall(r'src="(/experiments/[^"]+)"', page)
    assert len(urls) == 2 and set(urls) == {pair["left"]["image_url"], pair["right"]["image_url"]}
    for url in urls:
        segments = url.strip("/").split("/")
        assert segments[:3] == ["experiments", "1", "blind"] and re.fullmatch(r"[0-9a-f]{32}", segments[3])
        assert not {str(i) for i in ids} & set(segments[2:])
        image = client.get(url)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        from PIL import Image

        with Image.open(io.BytesIO(image.content)) as picture:
            assert picture.text == {} and picture.size == (64, 64)  # no prompt, no parameters
        assert b"lighthouse" not in image.content and b"promptkit" not in image.content
    assert set(pair) == {"experiment", "done", "seed", "pair", "left", "right", "voted", "total"}
    # A token from another process (another secret) or a made-up one shows nothing.
    other = create_app(experiment_library)
    with TestClient(other, base_url=ORIGIN) as second:
        assert second.get(urls[0]).status_code == 404
    assert client.get("/experiments/1/blind/" + "0" * 32).status_code == 404
    assert client.get("/experiments/trio/blind/" + urls[0].rsplit("/", 1)[1]).status_code == 404


def test_sides_are_shuffled_and_recorded(client, experiment_library):
    seen = set()
    for _ in range(40):
        pair = client.get("/api/experiments/sky/next-pair").json()
        seen.add(pair["left"]["image_url"])
    assert len(seen) == 2  # both images of seed 1 appear on the left
    pair = client.get("/api/experiments/sky/next-pair").json()
    cast = client.post("/api/experiments/sky/votes", json={"seed": pair["seed"], "pair": pair["pair"], "winner": "right"})
    assert cast.status_code == 201
    vote = cast.json()
    assert {vote["left"], vote["right"]} == set(EXPERIMENT_LABELS) and vote["winner"] == vote["right"]
    stored = votes_of(experiment_library)[-1]
    assert (stored["seed"], stored["left"], stored["right"], stored["winner"]) == (
        pair["seed"], vote["left"], vote["right"], vote["right"])


# -- the API --------------------------------------------------------------------------


def test_api_lists_shows_votes_undoes_and_counts(client, experiment_library):
    listed = client.get("/api/experiments").json()["experiments"]
    assert [(e["name"], e["variants"], e["seeds"], e["generations"]) for e in listed] == [
        ("sky", 2, 4, 8), ("trio", 3, 2, 6)]
    detail = client.get("/api/experiments/sky").json()
    assert [v["label"] for v in detail["variants"]] == list(EXPERIMENT_LABELS) and len(detail["cells"]) == 8
    assert detail["cells"][0]["image_url"].startswith("/images/") and (detail["voted"], detail["total"]) == (0, 4)
    assert client.get("/api/experiments/1").json()["name"] == "sky"  # by id too
    first = client.post("/api/experiments/sky/votes", json={"seed": 2, "winner": "tie", "left": "fancy", "right": "plain"})
    assert first.status_code == 201 and first.json()["winner"] == "tie"
    client.post("/api/experiments/sky/votes", json={"seed": 3, "winner": "plain"})
    assert client.get("/api/experiments/sky").json()["voted"] == 2
    undone = client.post("/api/experiments/sky/votes/undo")
    assert undone.status_code == 200 and undone.json()["seed"] == 3
    assert [(v["seed"], v["left"], v["right"], v["winner"]) for v in votes_of(experiment_library)] == [
        (2, "fancy", "plain", "tie")]
    trio = client.post("/api/experiments/trio/votes", json={"seed": 1, "winner": "mono", "left": "mono", "right": "warm"})
    assert trio.status_code == 201
    # The stats are what `promptkit ab stats --json` prints.
    for name in ("sky", "trio"):
        api = client.get(f"/api/experiments/{name}/stats").json()
        cli = CliRunner().invoke(main, ["--db", str(experiment_library), "ab", "stats", name, "--json"],
                                 catch_exceptions=False)
        assert api == json.loads(cli.output)
    assert "ranking" in client.get("/api/experiments/trio/stats").json()
    client.post("/api/experiments/sky/votes/undo")
    nothing = client.post("/api/experiments/sky/votes/undo")
    assert nothing.status_code == 400 and "no votes to undo" in nothing.json()["detail"]
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/api/experiments", "/api/experiments/{name}", "/api/experiments/{name}/next-pair",
            "/api/experiments/{name}/votes", "/api/experiments/{name}/votes/undo",
            "/api/experiments/{name}/stats"} <= paths


def test_skip_and_done(client):
    first = client.get("/api/experiments/sky/next-pair").json()
    skipped = client.get("/api/experiments/sky/next-pair", params={"skip": first["pair"]}).json()
    assert skipped["seed"] != first["seed"]
    for seed in (1, 2, 3, 4):
        client.post("/api/experiments/sky/votes", json={"seed": seed, "winner": "plain"})
    done = client.get("/api/experiments/sky/next-pair").json()
    assert done["done"] is True and (done["voted"], done["total"]) == (4, 4) and done["pair"] is None


BAD_VOTES = [
    ({"seed": 1, "winner": "nobody"}, 400, "no variant 'nobody'"),
    ({"seed": 99, "winner": "plain"}, 400, "seed 99 is not in experiment"),
    ({"seed": 1, "winner": "plain", "left": "plain", "right": "plain"}, 400, "two different variants"),
    ({"seed": 1, "winner": "plain", "left": "fancy"}, 400, "both the left and the right"),
    ({"winner": "plain"}, 422, "seed: Field required"),
    ({"seed": 1}, 422, "winner: Field required"),
    ({"seed": "1", "winner": "plain"}, 422, "seed: Input should be a valid integer"),
    ({"seed": 1.5, "winner": "plain"}, 422, "seed"),
    ({"seed": -1, "winner": "plain"}, 422, "greater than or equal to 0"),
    ({"seed": 2**70, "winner": "plain"}, 422, "less than or equal to"),
    ({"seed": 1, "winner": 1}, 422, "winner"),
    ({"seed": 1, "winner": ""}, 422, "winner"),
    ({"seed": 1, "winner": "plain", "extra": True}, 422, "extra"),
    ({"seed": 1, "winner": "left", "pair": "f" * 32}, 400, "is not a pair of seed 1"),
    ({"seed": 1, "winner": "plain", "pair": "f" * 32}, 422, "'left', 'right' or 'tie'"),
    ({"seed": 1, "winner": "left", "pair": "f" * 32, "left": "plain"}, 422, "not both"),
    ([1, "plain"], 422, "valid dictionary"),
    (None, 422, "body"),
]


@pytest.mark.parametrize("body,status,message", BAD_VOTES)
def test_bad_vote_bodies_get_a_4xx_with_a_message(client, experiment_library, body, status, message):
    response = client.post("/api/experiments/sky/votes", json=body)
    assert response.status_code == status and message in response.json()["detail"], response.text
    assert votes_of(experiment_library) == []


def test_votes_need_both_images_and_a_named_pair_with_three_variants(client, experiment_library):
    with Library(experiment_library) as lib, lib.write() as db:
        db.execute("UPDATE experiments SET seeds = '[1, 2, 3, 4, 5]' WHERE name = 'sky'")
    missing = client.post("/api/experiments/sky/votes", json={"seed": 5, "winner": "plain"})
    assert missing.status_code == 400 and "seed 5 was not generated" in missing.json()["detail"]
    unnamed = client.post("/api/experiments/trio/votes", json={"seed": 1, "winner": "warm"})
    assert unnamed.status_code == 400 and "say which pair was shown" in unnamed.json()["detail"]
    outside = client.post("/api/experiments/trio/votes", json={"seed": 1, "winner": "cool", "left": "warm",
                                                               "right": "mono"})
    assert outside.status_code == 400 and "neither of the pair shown" in outside.json()["detail"]
    stranger = client.post("/api/experiments/nope/votes", json={"seed": 1, "winner": "plain"})
    assert stranger.status_code == 404
    assert votes_of(experiment_library) == [] and votes_of(experiment_library, "trio") == []


def test_votes_are_changes_guarded_like_any_other(app, experiment_library):
    with TestClient(app, base_url=ORIGIN) as plain_client:
        hostile = plain_client.post("/api/experiments/sky/votes", json={"seed": 1, "winner": "plain"},
                                    headers={"Origin": "http://evil.example"})
        assert hostile.status_code == 403
        assert plain_client.post("/api/experiments/sky/votes/undo").status_code == 403  # no Origin at all
    assert votes_of(experiment_library) == []


def test_fuzz_the_experiment_api(experiment_library):
    """Generated requests (valid and broken) against every experiment operation, half of them
    aimed at a real experiment: no 5xx, and every answer is one the document declares."""
    import schemathesis
    from hypothesis import Phase
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    app = create_app(experiment_library, host="testserver", port=80)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if "/experiments" not in operation.path:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case):
                nonlocal cases
                cases += 1
                if case.path_parameters and cases % 2:
                    case.path_parameters["name"] = "sky" if cases % 4 == 1 else "trio"
                case.call_and_validate(headers=SAME_ORIGIN, checks=checks)

            try:
                call()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without input has nothing to break
    assert cases >= 250, cases


# -- concurrency ----------------------------------------------------------------------


def test_votes_land_while_a_generation_run_writes(live_experiment_server, experiment_library, tiny_engine):
    """4 clients post 200 votes each while a real tiny-model run writes generations: every vote lands."""
    import httpx

    from promptkit.generation import GenerationJob, run_job
    from promptkit.params import GenerationParams

    generated: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def generate():
        try:
            with Library(experiment_library) as lib:
                prompt = lib.get_prompt("sky-mono")
                for start in range(100, 10_000, 4):
                    job = GenerationJob(prompt=prompt, seeds=list(range(start, start + 4)), batch_size=2,
                                        params=GenerationParams(steps=2, cfg=5.0, sampler="Euler", width=64, height=64))
                    generated.extend(g["id"] for g in run_job(lib, tiny_engine, job).generations)
                    if stop.is_set():
                        break
        except BaseException as exc:  # reported below
            errors.append(exc)

    statuses: list[int] = []

    def vote_many(worker: int):
        with httpx.Client(base_url=live_experiment_server.url, headers=SAME_ORIGIN, timeout=60) as http:
            for i in range(200):
                seed = 1 + (worker + i) % 4
                winner = EXPERIMENT_LABELS[i % 2] if i % 5 else "tie"
                left, right = EXPERIMENT_LABELS if i % 3 else EXPERIMENT_LABELS[::-1]
                # one rater per vote: a rater's second vote on a pair would replace the first
                response = http.post("/api/experiments/sky/votes",
                                     json={"seed": seed, "winner": winner, "left": left, "right": right,
                                           "rater": f"voter-{worker}-{i}"})
                statuses.append(response.status_code)

    writer = threading.Thread(target=generate)
    voters = [threading.Thread(target=vote_many, args=(w,)) for w in range(4)]
    writer.start()
    for thread in voters:
        thread.start()
    for thread in voters:
        thread.join()
    stop.set()
    writer.join()
    assert errors == []
    assert statuses == [201] * 800
    votes = votes_of(experiment_library)
    assert len(votes) == 800
    expected = sorted((1 + (w + i) % 4, EXPERIMENT_LABELS[i % 2] if i % 5 else "tie") for w in range(4) for i in range(200))
    assert sorted((v["seed"], v["winner"]) for v in votes) == expected
    assert len(generated) >= 4
    with Library(experiment_library) as lib:
        assert experiment_stats(lib, "sky")["votes"] == 800 and all(lib.get_generation(g) for g in generated)



# -- per-seed marks (issue 18) ----------------------------------------------------------


def test_seed_marks_follow_each_images_own_votes():
    from promptkit.web.experiments import seed_marks

    votes = [{"left": "A", "right": "B", "winner": "tie"}, {"left": "C", "right": "A", "winner": "A"},
             {"left": "B", "right": "C", "winner": "B"}]
    marks = seed_marks(["A", "B", "C", "D"], votes)
    assert {label: m["mark"] for label, m in marks.items()} == {"A": "won", "B": "won", "C": "lost", "D": None}
    assert marks["A"]["title"] == "won 1, tied 1" and marks["C"]["title"] == "lost 2" and marks["D"]["title"] == "no votes"
    only_tie = seed_marks(["A", "B", "C"], [{"left": "A", "right": "B", "winner": "tie"}])
    assert [only_tie[x]["mark"] for x in "ABC"] == ["tie", "tie", None]


def test_results_page_marks_the_loser_of_a_three_way_seed_as_lost(client):
    for body in ({"seed": 1, "winner": "tie", "left": "warm", "right": "cool"},
                 {"seed": 1, "winner": "warm", "left": "warm", "right": "mono"},
                 {"seed": 1, "winner": "cool", "left": "cool", "right": "mono"}):
        assert client.post("/api/experiments/trio/votes", json=body).status_code == 201
    page = client.get("/experiments/trio").text
    classes = dict(re.findall(r'class="thumb ?([a-z ]*)" title="(\w+), seed 1', page)[i][::-1] for i in range(3))
    assert classes == {"warm": "won", "cool": "won", "mono": "lost"}
    assert 'title="mono, seed 1: lost 2"' in page
    assert re.findall(r'class="thumb ?([a-z ]*)" title="\w+, seed 2', page) == ["", "", ""]
