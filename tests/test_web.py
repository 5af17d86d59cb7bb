"""The review page over HTTP: pages, API, images, and the guards (Host, cross-site, bodies, paths)."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit.cli import main
from promptkit.library import Library
from promptkit.web import create_app
from sample_library import XSS, add_picture

ORIGIN = "http://127.0.0.1:8765"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
PACKAGE = Path(__file__).resolve().parent.parent / "promptkit"


@pytest.fixture
def app(isolated_library, sample_library):
    return create_app(isolated_library)


@pytest.fixture
def client(app):
    """A browser-like client: the page's own Host, and same-origin on every request."""
    with TestClient(app, base_url=ORIGIN, headers=SAME_ORIGIN) as test_client:
        yield test_client


def asgi_request(app, raw_path: bytes, method: str = "GET", headers=(), body: bytes = b"", chunks=None):
    """Call the app the way uvicorn does (path = the percent-decoded raw path, not normalised),
    so that `..` and encoded slashes reach it exactly as a hostile client sent them."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(raw_path.decode("ascii")), "raw_path": raw_path, "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8765"), *headers], "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8765),
    }
    pending = list(chunks) if chunks is not None else [body]
    status, content = [], []

    async def receive():
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            content.append(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return status[0], b"".join(content)


# -- pages -----------------------------------------------------------------------


def test_library_pages_render(client, sample_library):
    home = client.get("/")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert home.text.count("<article class=\"card") == 5 and "lighthouse-v2" in home.text
    assert "/images/" in home.text and "/thumb?v=" in home.text
    starred = client.get("/?starred=true").text
    assert "lighthouse-v2" in starred and "red-fox" not in starred
    found = client.get("/search", params={"q": "fox snow"}).text
    assert "red-fox" in found and "lighthouse" not in found
    assert "Search" in client.get("/search").text  # no query: an empty form, not an error
    page = client.get("/prompts/lighthouse-v2").text
    parent_id, v2_id = sample_library["lighthouse"]["id"], sample_library["lighthouse_v2"]["id"]
    assert f'href="/prompts/{parent_id}"' in page and "iterated from" in page
    assert page.count('class="shot"') == 4 and 'aria-pressed="true"' in page
    assert client.get(f"/prompts/{v2_id}").text == page
    missing = client.get("/prompts/no-such-prompt")
    assert missing.status_code == 404 and "no-such-prompt" in missing.text and "<html" in missing.text


def test_user_text_is_escaped_everywhere(client, sample_library):
    evil = sample_library["evil"]
    for url in ("/", "/search?q=cat", f"/prompts/{evil['id']}"):
        response = client.get(url)
        assert XSS not in response.text, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text, url
        assert "script-src 'self'" in response.headers["content-security-policy"]
    api = client.get(f"/api/prompts/{evil['id']}").json()
    assert XSS in api["positive"] and api["tags"] == [XSS]  # JSON keeps the text; pages escape it


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_pages_never_fail_on_odd_input(client, text):
    for url in (f"/prompts/{quote(text, safe='')}", f"/search?q={quote(text, safe='')}",
                f"/?page={quote(text, safe='')}"):
        response = client.get(url)
        assert response.status_code < 500, (url, response.text)


# -- images and static files ---------------------------------------------------------


def test_images_are_served_by_id(client, sample_library, isolated_library):
    generation_id = sample_library["generations"]["lighthouse"][0]
    with Library(isolated_library) as lib:
        gen = lib.get_generation(generation_id)
        png = lib.image_path(gen).read_bytes()
    image = client.get(f"/images/{generation_id}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content == png
    assert image.headers["cache-control"] == "no-cache"
    cached = client.get(f"/images/{generation_id}?v={gen['image_sha256'][:16]}")
    assert "immutable" in cached.headers["cache-control"]
    thumb = client.get(f"/images/{generation_id}/thumb")
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    assert client.get(f"/images/{generation_id}/thumb", headers={"If-None-Match": thumb.headers["etag"]}).status_code == 304
    for url in ("/images/999", "/images/0", "/images/abc", f"/images/{10**30}", "/images/-1"):
        assert client.get(url).status_code == 404, url


TRAVERSALS = [
    b"/static/../pyproject.toml", b"/static/../../pyproject.toml", b"/static/%2e%2e/%2e%2e/pyproject.toml",
    b"/static/..%2f..%2f..%2fpyproject.toml", b"/static/%2e%2e%2f%2e%2e%2fREADME.md", b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd", b"/static/..%5c..%5cpyproject.toml", b"/static/app.css%00.txt",
    b"/static/./app.css", b"/static/", b"/static/templates/base.html", b"/static/../web/app.py",
    b"/images/../../etc/passwd", b"/images/..%2f..%2fetc%2fpasswd", b"/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"/images/1/../../../etc/passwd", b"/images/1%2f..%2f..%2fetc%2fpasswd", b"/images//etc/passwd",
    b"/images/%2fetc%2fpasswd", b"/images/1.png", b"/images/..", b"/images/%2e%2e",
]


@pytest.fixture
def opened_files():
    """Every file Python opens while the list is being recorded (through the `open` audit event)."""
    recorded: list[str] = []
    recording = threading.Event()

    def hook(event, args):
        if event == "open" and recording.is_set() and isinstance(args[0], (str, bytes, Path)):
            recorded.append(str(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed; this one records only while the event is set
    recording.set()
    yield recorded
    recording.clear()


@pytest.mark.parametrize("raw_path", TRAVERSALS, ids=lambda p: p.decode())
def test_path_traversal_is_404_and_reads_nothing_outside(app, raw_path, opened_files, isolated_library):
    status, body = asgi_request(app, raw_path)
    assert status == 404, (raw_path, status, body[:200])
    assert b"root:" not in body and b"[build-system]" not in body and b"import" not in body
    allowed = (str(PACKAGE), str(isolated_library.parent))
    outside = [f for f in opened_files if not f.startswith(allowed) and "python" not in f]
    assert outside == [], outside


def test_path_traversal_through_a_real_server(live_server):
    for raw_path in TRAVERSALS:
        connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=5)
        connection.putrequest("GET", raw_path.decode(), skip_host=True)  # the path goes out byte for byte
        connection.putheader("Host", f"127.0.0.1:{live_server.port}")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (400, 404), (raw_path, response.status)
        assert b"root:" not in body and b"[build-system]" not in body


def test_static_files(client):
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.headers["cache-control"] == "no-cache"
    versioned = client.get("/", headers={}).text.split('href="/static/app.css?v=')[1].split('"')[0]
    assert "immutable" in client.get(f"/static/app.css?v={versioned}").headers["cache-control"]
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


# -- the guards ------------------------------------------------------------------


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1:8765", 200), ("localhost:8765", 200), ("[::1]:8765", 200), ("LOCALHOST:8765", 200),
    ("evil.example:8765", 400), ("127.0.0.1", 400), ("127.0.0.1:9999", 400), ("localhost.:8765", 400),
    ("127.0.0.1:8765.evil.example", 400), ("", 400),
])
def test_host_header_must_name_this_server(app, host, expected):
    with TestClient(app, base_url=ORIGIN) as test_client:
        response = test_client.get("/api/prompts", headers={"Host": host})
    assert response.status_code == expected, response.text
    if expected == 400:
        assert "not served here" in response.json()["detail"]


def test_host_check_follows_host_and_port(isolated_library, sample_library):
    app = create_app(isolated_library, host="studio.lan", port=80, allowed_hosts=["10.0.0.7"])
    with TestClient(app, base_url="http://studio.lan") as test_client:
        for host, expected in [("studio.lan", 200), ("studio.lan:80", 200), ("10.0.0.7", 200),
                               ("localhost", 200), ("127.0.0.1:8765", 400), ("attacker.example", 400)]:
            assert test_client.get("/", headers={"Host": host}).status_code == expected, host
    status, _ = asgi_request(create_app(isolated_library), b"/", headers=[(b"host", b"evil.example")])
    assert status == 400  # a second Host header is refused, whatever the first says


@pytest.mark.parametrize("headers,expected", [
    ({"Sec-Fetch-Site": "same-origin"}, 200),
    ({"Sec-Fetch-Site": "none"}, 200),
    ({"Origin": ORIGIN}, 200),
    ({"Origin": "http://localhost:8765"}, 403),  # another origin, even if it is the same machine
    ({}, 403),
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Sec-Fetch-Site": "same-site"}, 403),
    ({"Sec-Fetch-Site": "cross-site", "Origin": ORIGIN}, 403),  # the browser's own header wins
    ({"Origin": "http://evil.example"}, 403),
    ({"Origin": "null"}, 403),
    ({"Origin": "https://127.0.0.1:8765"}, 403),
    ({"Origin": "http://127.0.0.1:9999"}, 403),
    ({"Origin": "http://127.0.0.1:8765/path"}, 403),
])
def test_changes_need_a_same_origin_request(app, isolated_library, sample_library, headers, expected):
    fox = sample_library["fox"]["id"]
    with TestClient(app, base_url=ORIGIN) as test_client:
        response = test_client.post(f"/api/prompts/{fox}/star", json={"starred": True}, headers=headers)
        rating = test_client.post(f"/api/generations/{sample_library['generations']['red-fox'][0]}/ratings",
                                  json={"stars": 2}, headers=headers)
    assert (response.status_code, rating.status_code) == (expected, 201 if expected == 200 else expected)
    with Library(isolated_library) as lib:
        assert lib.get_prompt(fox)["starred"] == (1 if expected == 200 else 0)
    if expected == 403:
        assert response.json()["detail"]


BAD_BODIES = [
    ({"stars": 0}, 422, "stars"), ({"stars": 6}, 422, "less than or equal to 5"), ({"stars": "5"}, 422, "integer"),
    ({"stars": 4.5}, 422, "integer"), ({"stars": True}, 422, "integer"), ({}, 422, "stars: Field required"),
    ({"stars": 3, "extra": 1}, 422, "extra"), ({"stars": 3, "note": "x" * 2001}, 422, "note"),
    ([3], 422, "valid dictionary"), (None, 422, "body"),
]


@pytest.mark.parametrize("body,status,message", BAD_BODIES)
def test_rating_bodies_are_validated(client, sample_library, isolated_library, body, status, message):
    generation_id = sample_library["generations"]["red-fox"][0]
    response = client.post(f"/api/generations/{generation_id}/ratings", json=body)
    assert response.status_code == status and message in response.json()["detail"], response.text
    with Library(isolated_library) as lib:
        assert lib.generation_ratings(generation_id) == []


def test_malformed_and_oversized_bodies(app, client, sample_library):
    fox = sample_library["fox"]["id"]
    url = f"/api/prompts/{fox}/star"
    assert client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    assert client.post(url, content=b'{"starred": true}', headers={"Content-Type": "text/plain"}).status_code == 422
    assert client.post(url, json={"starred": "yes"}).status_code == 422
    big = json.dumps({"starred": True, "pad": "x" * 70_000}).encode()
    too_big = client.post(url, content=big, headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413 and "larger than" in too_big.json()["detail"]
    # A chunked body carries no Content-Length: it is counted as it arrives.
    status, body = asgi_request(app, url.encode(), "POST", headers=[(b"sec-fetch-site", b"same-origin"),
                                (b"content-type", b"application/json")], chunks=[b"x" * 40_000] * 3)
    assert status == 413 and b"larger than" in body
    assert client.post("/api/generations/999/ratings", json={"stars": 3}).json() == {
        "detail": f"no generation with id 999 in {app.state.library_path.name!r}"}  # the folder is left out


# -- the API -----------------------------------------------------------------------


def test_api_rate_star_search_and_detail(client, sample_library, isolated_library):
    generation_id = sample_library["generations"]["red-fox"][2]
    created = client.post(f"/api/generations/{generation_id}/ratings", json={"stars": 3, "note": "ok"})
    assert created.status_code == 201 and created.json()["stars"] == 3
    client.post(f"/api/generations/{generation_id}/ratings", json={"stars": 5})
    detail = client.get(f"/api/generations/{generation_id}").json()
    assert detail["stars"] == 5 and [r["stars"] for r in detail["ratings"]] == [3, 5]
    assert detail["parameters"].startswith("a red fox in fresh snow") and "Seed: 23" in detail["parameters"]
    assert detail["image_url"].startswith(f"/images/{generation_id}?v=")
    fox = sample_library["fox"]["id"]
    assert client.post(f"/api/prompts/{fox}/star", json={"starred": True}).json()["starred"] is True
    starred = client.get("/api/prompts", params={"starred": "true"}).json()
    assert {p["name"] for p in starred["prompts"]} == {"red-fox", "lighthouse-v2"} and starred["total"] == 2
    listed = client.get("/api/prompts", params={"limit": 2, "offset": 1}).json()
    assert len(listed["prompts"]) == 2 and listed["total"] == 5
    assert [p["name"] for p in client.get("/api/search", params={"q": "fox"}).json()["prompts"]] == ["red-fox"]
    assert client.get("/api/search", params={"q": "  "}).status_code == 400
    prompt = client.get(f"/api/prompts/{sample_library['lighthouse']['id']}").json()
    assert [c["name"] for c in prompt["lineage"]["children"]] == ["lighthouse-v2"]
    assert prompt["generations"][0]["stars"] == 4 and prompt["url"] == f"/prompts/{prompt['id']}"
    missing = client.get("/api/prompts/999")
    assert missing.status_code == 404 and "no prompt with id or name '999'" in missing.json()["detail"]
    # Where the library lives on this machine is not the page's visitors' business.
    assert str(isolated_library.parent) not in missing.text and "'library.db'" in missing.json()["detail"]
    assert str(isolated_library.parent) not in client.get("/prompts/nope").text
    schema = client.get("/openapi.json").json()
    assert {"/api/prompts", "/api/search", "/api/generations/{generation_id}/ratings"} <= set(schema["paths"])


def test_fuzz_the_api_from_its_openapi_document(isolated_library, sample_library):
    """A few hundred generated requests (valid and invalid) across every operation: no 5xx."""
    import schemathesis
    from hypothesis import Phase
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                     status_code_conformance)

    # No 5xx, and every answer is one the document declares, in the shape it declares.
    CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    # schemathesis calls the app in-process as "testserver" (port 80), so that is the name it answers to.
    app = create_app(isolated_library, host="testserver", port=80)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):  # valid requests, then broken ones

            @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case):
                nonlocal cases
                cases += 1
                case.call_and_validate(headers=SAME_ORIGIN, checks=CHECKS)

            try:
                call()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without input has nothing to break
    assert cases >= 300, cases
    print(f"fuzzed {cases} requests")


# -- concurrency -----------------------------------------------------------------------


def test_ratings_land_while_generations_are_written(live_server, isolated_library, sample_library, tiny_engine):
    """4 clients post 60 ratings each while one thread writes generation rows (holding the write
    lock a while each time) and another runs a real tiny-model generation: every rating lands."""
    import httpx

    from promptkit.generation import GenerationJob, run_job
    from promptkit.params import GenerationParams

    targets = sample_library["generations"]["red-fox"]
    stop = threading.Event()
    writer_errors: list[BaseException] = []
    written = []

    def write_generations():
        try:
            with Library(isolated_library) as lib:
                prompt = lib.get_prompt(sample_library["harbour"]["id"])
                for seed in range(1000, 10_000):
                    if stop.is_set():
                        break
                    generation_id = add_picture(lib, prompt, seed, size=64)
                    written.append(generation_id)
                    with lib.write() as db:  # then a slow write: hold the lock a while
                        db.execute("UPDATE generations SET seconds = ? WHERE id = ?", [0.5, generation_id])
                        stop.wait(0.015)
                    stop.wait(0.01)
        except BaseException as exc:  # reported below
            writer_errors.append(exc)

    def generate():
        try:
            with Library(isolated_library) as lib:
                job = GenerationJob(prompt=lib.get_prompt("lighthouse"), seeds=list(range(1, 7)), batch_size=2,
                                    params=GenerationParams(steps=2, cfg=5.0, sampler="Euler"))
                written.extend(g["id"] for g in run_job(lib, tiny_engine, job).generations)
        except BaseException as exc:
            writer_errors.append(exc)

    statuses: list[int] = []

    def rate_many(worker: int):
        with httpx.Client(base_url=live_server.url, headers=SAME_ORIGIN, timeout=30) as http:
            for i in range(60):
                response = http.post(f"/api/generations/{targets[(worker + i) % 4]}/ratings",
                                     json={"stars": 1 + (worker + i) % 5, "note": f"w{worker}-{i}"})
                statuses.append(response.status_code)

    writers = [threading.Thread(target=write_generations), threading.Thread(target=generate)]
    raters = [threading.Thread(target=rate_many, args=(w,)) for w in range(4)]
    for thread in writers + raters:
        thread.start()
    for thread in raters:
        thread.join()
    stop.set()
    for thread in writers:
        thread.join()
    assert writer_errors == []
    assert statuses == [201] * 240
    with Library(isolated_library) as lib:
        notes = {r["note"] for g in targets for r in lib.generation_ratings(g)}
        assert notes == {f"w{w}-{i}" for w in range(4) for i in range(60)}
        assert len(written) >= 7 and all(lib.get_generation(g) for g in written)


def test_a_rating_changed_twice_shows_once_with_its_latest_value(client, sample_library):
    """The prompt page, its JSON and the card all show an image's latest rating, not every one."""
    lighthouse = sample_library["lighthouse"]
    generation_id = sample_library["generations"]["lighthouse"][0]  # rated 4 by the sample library
    for stars in (2, 5):  # changed twice
        assert client.post(f"/api/generations/{generation_id}/ratings", json={"stars": stars}).status_code == 201
    page = client.get(f"/prompts/{lighthouse['id']}").text
    assert f'data-generation-id="{generation_id}" data-stars="5"' in page
    api = client.get(f"/api/prompts/{lighthouse['id']}").json()
    shown = next(g for g in api["generations"] if g["id"] == generation_id)
    assert shown["stars"] == 5 and [r["stars"] for r in shown["ratings"]] == [4, 2, 5]
    assert client.get(f"/api/generations/{generation_id}").json()["stars"] == 5


def test_a_held_write_lock_is_waited_for_then_reported_as_busy(client, isolated_library, sample_library,
                                                                monkeypatch):
    generation_id = sample_library["generations"]["red-fox"][0]
    url = f"/api/generations/{generation_id}/ratings"
    with Library(isolated_library) as other:  # another program (a generation run, say) writing
        other.conn.execute("BEGIN IMMEDIATE")
        threading.Timer(0.3, other.conn.execute, ["COMMIT"]).start()
        assert client.post(url, json={"stars": 4}).status_code == 201  # waited 0.3 s, then wrote
        monkeypatch.setattr("promptkit.library.BUSY_TIMEOUT_MS", 100)
        other.conn.execute("BEGIN IMMEDIATE")
        busy = client.post(url, json={"stars": 5})
        other.conn.execute("ROLLBACK")
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json() == {"detail": "the library is busy with another writer; try again"}
    with Library(isolated_library) as lib:
        assert [r["stars"] for r in lib.generation_ratings(generation_id)] == [4]


# -- light import and the command ------------------------------------------------------------


def test_web_import_stays_light():
    code = ("import sys, time; t = time.perf_counter(); import promptkit.web; "
            "print(time.perf_counter() - t, any(m in sys.modules for m in ('torch', 'diffusers', 'transformers')))")
    seconds, heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.split()
    assert heavy == "False"
    assert float(seconds) < 3  # about 0.3 s here; the bound only catches a heavy import sneaking in


def test_serve_command(isolated_library, sample_library, monkeypatch):
    import uvicorn

    runs = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: runs.append(sockets[0].getsockname()))
    result = CliRunner().invoke(main, ["serve", "--port", "8766"], catch_exceptions=False)
    assert result.exit_code == 0 and "http://127.0.0.1:8766/" in result.output and "warning" not in result.output
    assert runs == [("127.0.0.1", 8766)]
    exposed = CliRunner().invoke(main, ["--db", str(isolated_library), "serve", "--host", "0.0.0.0",
                                        "--port", "8767"], catch_exceptions=False)
    assert exposed.exit_code == 0 and "no authentication" in exposed.stderr and "--allow-host" in exposed.stderr
    missing = CliRunner().invoke(main, ["serve", "--db", str(isolated_library.parent / "nope.db")])
    assert missing.exit_code == 1 and "promptkit init" in missing.output
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = CliRunner().invoke(main, ["serve", "--port", str(busy.getsockname()[1])])
    assert taken.exit_code == 1 and "cannot listen" in taken.output and len(taken.output.strip().splitlines()) == 1
