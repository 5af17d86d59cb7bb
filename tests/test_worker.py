"""The warm engine: jobs sent over a Unix socket give the same images as in-process generation."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.errors import PromptkitError
from promptkit.worker import EngineUnavailable, engine_status, serve_engine, stop_engine, submit_job


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def engine_socket(tmp_path, tiny_model, monkeypatch):
    # A short path: Unix socket paths are limited to about 100 bytes.
    path = Path(f"/tmp/pk-{os.getpid()}-{time.monotonic_ns()}.sock")
    monkeypatch.setenv("PROMPTKIT_ENGINE", str(path))
    proc = subprocess.Popen([sys.executable, "-m", "promptkit", "worker", "start", "--socket", str(path),
                             "--model", tiny_model], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            engine_status(path)
            break
        except EngineUnavailable:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
    yield path
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)
    if path.exists():
        path.unlink()


def test_generate_on_warm_engine_matches_in_process(engine_socket, tiny_model):
    cli("build", "--subject", "a heron", "--save", "heron")
    warm = json.loads(cli("generate", "heron", "--model", tiny_model, "--seeds", "1-3", "--steps", "2",
                          "--json").output)
    status = engine_status(engine_socket)
    assert status["jobs_done"] == 1 and status["models"] == [str(Path(tiny_model).resolve())]
    cold = json.loads(cli("generate", "heron", "--model", tiny_model, "--seeds", "1-3", "--steps", "2",
                          "--no-engine", "--json").output)
    assert engine_status(engine_socket)["jobs_done"] == 1  # --no-engine did not use it
    assert [g["image_sha256"] for g in warm] == [g["image_sha256"] for g in cold]


def test_generate_with_inputs_is_checked_and_run_on_warm_engine(engine_socket, tiny_model, tmp_path, isolated_library):
    """An init image: the engine vets it (a "check" job), then generates; same bytes as in-process."""
    from PIL import Image

    from promptkit.library import Library

    Image.new("RGB", (64, 64), (200, 90, 40)).save(tmp_path / "init.png")
    cli("build", "--subject", "a heron", "--save", "heron")
    args = ["generate", "heron", "--model", tiny_model, "--seeds", "1-2", "--steps", "2",
            "--init-image", str(tmp_path / "init.png"), "--strength", "0.6", "--json"]
    warm = json.loads(cli(*args).output)
    assert engine_status(engine_socket)["jobs_done"] == 2  # the check, then the job
    cold = json.loads(cli(*args, "--no-engine").output)
    assert engine_status(engine_socket)["jobs_done"] == 2
    assert [g["image_sha256"] for g in warm] == [g["image_sha256"] for g in cold]
    # Refused by the engine's loaded model (a refiner needs SDXL): one line, nothing stored.
    with Library(isolated_library) as lib:
        before = lib.db.execute("SELECT count(*) FROM generations").fetchone()[0]
    bad = CliRunner().invoke(main, args[:-1] + ["--refiner", tiny_model])
    assert bad.exit_code != 0 and "needs an SDXL base model" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert engine_status(engine_socket)["jobs_done"] == 3
    with Library(isolated_library) as lib:
        assert lib.db.execute("SELECT count(*) FROM generations").fetchone()[0] == before


def test_ab_run_on_warm_engine(engine_socket, tiny_model):
    cli("build", "--subject", "a heron", "--save", "A")
    cli("build", "--subject", "a crane", "--save", "B")
    cli("ab", "new", "birds", "--variant", "A=A", "--variant", "B=B", "--seeds", "1-2", "--steps", "2",
        "--model", tiny_model)
    out = json.loads(cli("ab", "run", "birds", "--json").output)
    assert len(out) == 4
    assert engine_status(engine_socket)["jobs_done"] == 1


def test_engine_errors_are_one_line_and_engine_survives(engine_socket):
    with pytest.raises(PromptkitError, match="unknown job kind"):
        submit_job({"kind": "nope", "model": "x/y", "db": "/nonexistent/x.db"}, socket_path=engine_socket)
    # Offline (CI, this machine) the hub id is "not in the local cache"; with a network, the hub refuses it.
    with pytest.raises(PromptkitError, match="could not load model 'x/y'|model 'x/y' is not in the local"):
        submit_job({"kind": "generate", "model": "x/y", "db": "/nonexistent/x.db"}, socket_path=engine_socket)
    assert engine_status(engine_socket)["jobs_done"] == 2
    stop_engine(engine_socket)
    deadline = time.time() + 30
    while engine_socket.exists() and time.time() < deadline:
        time.sleep(0.1)
    with pytest.raises(EngineUnavailable):
        engine_status(engine_socket)


def test_no_engine_falls_back_in_process(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("PROMPTKIT_ENGINE", str(tmp_path / "absent.sock"))
    cli("build", "--subject", "a heron", "--save", "heron")
    out = json.loads(cli("generate", "heron", "--model", tiny_model, "--seeds", "1", "--steps", "2",
                         "--json").output)
    assert len(out) == 1
    result = cli("worker", "status")
    assert result.exit_code == 1 and "no warm engine" in result.output


def test_stale_socket_is_replaced_but_live_one_is_not(tmp_path, engine_socket):
    with pytest.raises(PromptkitError, match="already running"):
        serve_engine(engine_socket)
    stale = Path(f"/tmp/pk-stale-{os.getpid()}.sock")
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # a socket file nobody listens on, as a killed engine leaves behind
    import threading

    started = threading.Event()
    thread = threading.Thread(target=serve_engine, args=(stale,), kwargs={"ready": started.set}, daemon=True)
    thread.start()
    assert started.wait(10)
    assert oct(stale.stat().st_mode & 0o777) == "0o600"
    stop_engine(stale)
    thread.join(10)
