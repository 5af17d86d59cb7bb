"""The OpenAI-compatible Images plugin (plugins/promptkit-openai) against a stand-in API on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plugin_env import OPENAI_PLUGIN, activate, install_dist

KEY = "sk-test-secret-0123456789"


class StandIn:
    """A tiny Images API: answers POST /v1/images/generations from a script of replies, then with images."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple] = []
        self.served = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                reply = stand_in.script.pop(0) if stand_in.script else ("ok",)
                if reply[0] == "sleep":
                    time.sleep(reply[1])
                    reply = ("ok",)
                if reply[0] == "ok":
                    self._send(200, {"created": 0, "data": [{"b64_json": stand_in.png(body["size"])}]})
                elif reply[0] == 429:
                    self._send(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": reply[1]})
                else:
                    self._send(reply[0], {"error": {"message": reply[1] if len(reply) > 1 else "oops"}})

            def _send(self, code: int, data: dict, headers: dict | None = None) -> None:
                payload = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def png(self, size: str) -> str:
        from PIL import Image

        self.served += 1
        width, height = (int(x) for x in size.split("x"))
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (37 * self.served % 256, 90, 200)).save(buffer, "PNG")
        return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def api(monkeypatch, tmp_path):
    install_dist(tmp_path / "site", "promptkit-openai", "0.1.0", {"openai": "promptkit_openai"})
    activate(monkeypatch, OPENAI_PLUGIN, tmp_path / "site")
    stand_in = StandIn()
    stand_in.thread.start()
    monkeypatch.setenv("PROMPTKIT_OPENAI_BASE_URL", stand_in.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("PROMPTKIT_OPENAI_RETRIES", "2")
    monkeypatch.delenv("PROMPTKIT_OPENAI_API_KEY", raising=False)
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


@pytest.fixture
def lib(saved_prompt, isolated_library):
    from promptkit.library import Library

    with Library(isolated_library) as library:
        yield library


def _generate(lib, seeds="1-3", **settings):
    import promptkit

    return promptkit.generate(lib, "lighthouse", model="openai:test-image", seeds=seeds, width=64, height=48,
                              use_engine=False, **settings)


def _stored(lib) -> tuple[list[dict], list]:
    rows = list(lib.db["generations"].rows)
    files = [p for p in lib.path.parent.rglob("*.png")]
    return rows, files


def test_generates_unpaired_replicates_with_prompt_and_size(api, lib):
    result = _generate(lib)
    assert [g["seed"] for g in result["generations"]] == [1, 2, 3]
    assert len(api.requests) == 3
    prompt = lib.get_prompt("lighthouse")
    for request in api.requests:
        assert request["path"] == "/v1/images/generations"
        assert request["prompt"] == prompt["positive"] and request["size"] == "64x48" and request["n"] == 1
        assert request["model"] == "test-image" and request["auth"] == f"Bearer {KEY}"
    for gen in result["generations"]:
        row = lib.get_generation(gen["id"])
        assert row["reproducible"] == 0 and row["source"] == "openai" and row["model"] == "openai:test-image"
        assert (row["width"], row["height"]) == (64, 48)
    # Three replicates, three different images; the key is nowhere in the library.
    assert len({g["image_sha256"] for g in result["generations"]}) == 3
    for file in [lib.path, *lib.path.parent.rglob("*.png")]:
        assert KEY.encode() not in file.read_bytes()


def test_listed_by_promptkit_plugins(api):
    from click.testing import CliRunner

    from promptkit.cli import main

    out = CliRunner().invoke(main, ["plugins", "--json"])
    assert out.exit_code == 0, out.output
    rows = {row["name"]: row for row in json.loads(out.output)}
    assert rows["openai"]["status"] == "loaded" and rows["openai"]["distribution"] == "promptkit-openai 0.1.0"
    assert rows["openai"]["provides"]["backends"] == ["openai:"]
    assert rows["openai"]["location"].endswith("promptkit_openai/__init__.py")


def test_cli_generate_never_prints_the_key(api, saved_prompt):
    from click.testing import CliRunner

    from promptkit.cli import main

    out = CliRunner().invoke(main, ["generate", "lighthouse", "--model", "openai:test-image", "--seeds", "1-2",
                                    "--width", "64", "--height", "64", "--json"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.output)) == 2 and KEY not in out.output
    api.script = [(401, f"Incorrect API key provided: {KEY}")]
    out = CliRunner().invoke(main, ["generate", "lighthouse", "--model", "openai:test-image", "--seeds", "3"])
    assert out.exit_code == 1 and "401" in out.output and "OPENAI_API_KEY" in out.output
    assert KEY not in out.output and len(out.output.strip().splitlines()) == 1


def test_unauthorized_is_one_line_and_writes_nothing(api, lib):
    from promptkit.errors import PromptkitError

    api.script = [(401, "bad key")]
    with pytest.raises(PromptkitError, match="401 bad key: check OPENAI_API_KEY") as caught:
        _generate(lib)
    assert "\n" not in str(caught.value) and KEY not in str(caught.value)
    assert _stored(lib) == ([], [])
    assert len(api.requests) == 1  # no retry: a retry cannot fix a key


def test_rate_limit_waits_for_retry_after(api, lib):
    api.script = [(429, "0"), ("ok",)]
    result = _generate(lib, seeds="1")
    assert len(result["generations"]) == 1 and len(api.requests) == 2


def test_rate_limit_gives_up_after_bounded_tries(api, lib):
    from promptkit.errors import PromptkitError

    api.script = [(429, "0"), (429, "0"), ("ok",)]
    with pytest.raises(PromptkitError, match="429 rate limited.*gave up after 2 tries"):
        _generate(lib, seeds="1")
    assert _stored(lib) == ([], []) and len(api.requests) == 2


def test_server_error_is_retried_then_reported(api, lib):
    from promptkit.errors import PromptkitError

    api.script = [(500, "upstream broke"), ("ok",)]
    assert len(_generate(lib, seeds="1")["generations"]) == 1
    api.script = [(500, "upstream broke"), (503, "busy")]
    with pytest.raises(PromptkitError, match="503 busy after 2 tries"):
        _generate(lib, seeds="2")
    rows, _files = _stored(lib)
    assert [r["seed"] for r in rows] == [1]


def test_timeout_is_bounded_and_keeps_only_whole_images(api, lib, monkeypatch):
    from promptkit.errors import PromptkitError

    monkeypatch.setenv("PROMPTKIT_OPENAI_TIMEOUT", "0.3")
    api.script = [("ok",), ("sleep", 1.0), ("sleep", 1.0)]
    started = time.perf_counter()
    with pytest.raises(PromptkitError, match=r"no answer within 0.3 s, 2 tries"):
        _generate(lib, seeds="1-2")
    assert time.perf_counter() - started < 5
    rows, files = _stored(lib)
    # The first replicate arrived whole and is kept (PNG on disk, then its row); the second left nothing.
    assert [r["seed"] for r in rows] == [1] and len(files) == 1


def test_refuses_inputs_it_cannot_send(api, lib, tmp_path):
    from PIL import Image

    import promptkit
    from promptkit.errors import PromptkitError
    from promptkit.inputs import InputRequest

    Image.new("RGB", (64, 64)).save(tmp_path / "init.png")
    with pytest.raises(PromptkitError, match="takes a prompt only, not `init_image`"):
        promptkit.generate(lib, "lighthouse", model="openai:test-image", seeds="1", use_engine=False,
                           inputs=InputRequest(init_image=str(tmp_path / "init.png")))
    assert api.requests == []


def test_missing_key_and_unknown_scheme(api, lib, monkeypatch):
    import promptkit
    from promptkit.errors import PromptkitError

    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(PromptkitError, match="needs an API key: set OPENAI_API_KEY"):
        _generate(lib)
    with pytest.raises(PromptkitError, match=r"no backend for the scheme 'nope' \(plugin backends: openai:"):
        promptkit.generate(lib, "lighthouse", model="nope:thing", seeds="1", use_engine=False)


def test_ab_verdict_on_replicates_is_unpaired_and_says_so(api, lib):
    import promptkit

    promptkit.build_prompt(lib, subject="a boat", save="boat")
    promptkit.new_experiment(lib, "api-ab", {"A": "lighthouse", "B": "boat"}, seeds="1-4", model="openai:test-image",
                             width=32, height=32)
    made = promptkit.run_experiment(lib, "api-ab", use_engine=False)["generations"]
    assert len(made) == 8 and len(api.requests) == 8
    for seed in range(1, 5):
        promptkit.vote(lib, "api-ab", seed, "B", "A", "B")
    from promptkit.service.experiments import show_experiment

    cells = {(c["label"], c["seed"]): c for c in show_experiment(lib, "api-ab")["cells"]}
    for (label, seed), cell in cells.items():
        promptkit.rate(lib, cell["id"], 5 if label == "B" else 2)
    stats = promptkit.experiment_stats(lib, "api-ab")
    assert stats["pairing"] == "unpaired"
    [pair] = stats["pairs"]
    assert pair["pairing"] == "unpaired" and "Mann–Whitney U" in pair["method"]
    assert pair["ratings"]["test"] == "Mann–Whitney U" and pair["ratings"]["mean_difference"] == 3.0
    assert pair["ratings"]["n_a"] == pair["ratings"]["n_b"] == 4 and pair["ratings"]["p_value"] < 0.05
    assert promptkit.verdict(lib, "api-ab").endswith("[unpaired replicates]")


def test_reproduce_refuses_a_replicate(api, lib):
    import promptkit
    from promptkit.errors import PromptkitError

    [gen] = _generate(lib, seeds="1")["generations"]
    with pytest.raises(PromptkitError, match=f"generation {gen['id']} cannot be reproduced: it was made by 'openai'"):
        promptkit.reproduce(lib, gen["id"])
