"""Sweeps past one process: `ab run --ray` (a two-worker local Ray cluster, CPU actors) and
`accelerate launch -m promptkit ab run` (two processes) fill a 2-variant × 8-seed experiment on
the tiny model with the bytes of a local run of the same batches; a Ray worker killed mid-run
and the driver stopped leave a library that `doctor` finds clean, and a re-run completes it with
one row per cell and the bytes of a local re-run from the same point.

On a CPU, torch's float results depend on its thread count; Ray's CPU actors and the processes of
`accelerate launch` run one thread each, so the local run they are compared with does too.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import main
from promptkit.errors import PromptkitError

BATCH = 3  # 8 seeds in batches of 3, 3 and 2: a short last batch per variant, as a local run makes it
ROOT = Path(__file__).resolve().parents[1]


def make_experiment(db: Path, model: str) -> None:
    from promptkit.experiments import VariantSpec, create_experiment
    from promptkit.library import Library
    from promptkit.params import GenerationParams
    from promptkit.templates import Fields, PromptBuilder

    builder = PromptBuilder()
    with Library(db) as lib:
        a = lib.save_prompt(builder.render(Fields(subject="a lighthouse")), name="plain")
        b = lib.save_prompt(builder.render(Fields(subject="a fox", style=["sketch"])), name="fox")
        create_experiment(lib, "e", [VariantSpec("A", str(a)), VariantSpec("B", str(b))], list(range(1, 9)),
                          GenerationParams(steps=2, cfg=5.0, sampler="Euler", width=32, height=32), model=model)


def cell_bytes(db: Path) -> dict[tuple[str, int], str]:
    """(label, seed) -> image sha256; fails on a cell with two rows."""
    from promptkit.library import Library

    with Library(db) as lib:
        rows = lib.experiment_generations(lib.experiment_row("e")["id"])
    cells = {(r["label"], r["seed"]): r["image_sha256"] for r in rows}
    assert len(cells) == len(rows), "a cell was written twice"
    return cells


@pytest.fixture(scope="module")
def local_bytes(tmp_path_factory, tiny_model, tiny_engine):
    """The cells of a local run (batch size 3, one torch thread)."""
    db = tmp_path_factory.mktemp("local") / "library.db"
    make_experiment(db, tiny_model)
    cells = _run_locally(db, tiny_engine)
    assert len(cells) == 16
    return cells


def test_sweep_flags_are_checked_in_one_line(isolated_library):
    from promptkit.sweeps.service import wanted

    with pytest.raises(PromptkitError, match="--ray and --accelerate"):
        wanted("local", True, None)
    with pytest.raises(PromptkitError, match="--workers needs --ray"):
        wanted(None, False, 2)
    assert wanted(None, False, None) in (None, "accelerate")  # accelerate when this test itself runs launched


def test_missing_ray_is_one_line(monkeypatch):
    from promptkit.sweeps.ray_runner import RAY_MISSING, require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(PromptkitError) as caught:
        require_ray()
    assert str(caught.value) == RAY_MISSING and "promptkit[ray]" in RAY_MISSING


def test_a_workers_refusal_comes_out_of_rays_wrapping():
    from promptkit.errors import BadParameter
    from promptkit.sweeps.ray_runner import _promptkit_error

    refusal = BadParameter("this model cannot inpaint")
    wrapped = RuntimeError("Traceback (most recent call last):\n  ...")
    wrapped.cause = refusal  # as Ray's RayTaskError keeps it
    try:
        raise ValueError("the dataset failed") from wrapped
    except ValueError as exc:
        assert _promptkit_error(exc) is refusal
    assert _promptkit_error(ValueError("no refusal")) is None


@pytest.fixture
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'promptkit[ray]'")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'promptkit[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


class DriverStopped(Exception):
    """Stands for the driver dying mid-run."""


def _kill_one_worker() -> int:
    """SIGKILL one of Ray's CellMaker actor processes; its pid."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if "CellMaker" in " ".join(process.info["cmdline"] or []):
            os.kill(process.pid, signal.SIGKILL)
            return process.pid
    raise AssertionError("no CellMaker actor process found")


def test_ray_worker_killed_driver_stopped_then_rerun(ray_cluster, isolated_library, tiny_model, tiny_engine,
                                                    local_bytes):
    """Two CPU actors; one is SIGKILLed after 3 cells (Ray restarts it and retries its batch), the
    driver stops after 8; `ab run --ray` (its own local cluster) makes the other 8: the local bytes, one
    row per cell, and `doctor` finds nothing wrong."""
    from promptkit.library import Library
    from promptkit.sweeps.ray_runner import run_on_ray

    make_experiment(isolated_library, tiny_model)
    killed, seen = [], []

    def progress(done, total):
        seen.append((done, total))
        if done >= 3 and not killed:
            killed.append(_kill_one_worker())
        if done >= 8:
            raise DriverStopped

    with Library(isolated_library) as lib:
        try:
            run_on_ray(lib, "e", workers=2, batch_size=BATCH, engine_options={"device": "cpu"}, progress=progress)
        except DriverStopped:
            pass
        except Exception as exc:  # noqa: BLE001 - Ray gave up on the killed worker's batch: the re-run makes it
            print(f"the run stopped with its killed worker: {type(exc).__name__}")
    first = cell_bytes(isolated_library)
    made = len(first)
    assert killed and seen[0][1] == 16 and made == len(seen) and 3 <= made <= 8
    assert all(local_bytes[cell] == sha for cell, sha in first.items())  # made in the planned batches
    # A re-run batches the cells still missing, as a local re-run does: its bytes are those of a local
    # re-run from the same point (a batch the driver had half written is made again in other company).
    resumed = _local_resume(isolated_library, tiny_engine)
    ray_cluster.shutdown()  # the dead driver's local cluster goes with it
    result = CliRunner().invoke(main, ["ab", "run", "e", "--batch-size", str(BATCH), "--device", "cpu", "--json",
                                       "--workers", "2", "--ray"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 16 - made
    doctor = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert doctor.exit_code == 0, doctor.output
    assert cell_bytes(isolated_library) == resumed


def test_ray_first_ctrl_c_writes_what_is_back_then_stops(isolated_library, tiny_model):
    """Ctrl-C in a terminal signals the whole process group, Ray's processes too: the first one stops
    the run after the cells already back are written (exit 130, "interrupted", doctor clean), and
    Ray's start-up notices stay off the terminal."""
    import sqlite3
    import time

    pytest.importorskip("ray.data", reason="the ray extra is not installed: pip install 'promptkit[ray]'")
    make_experiment(isolated_library, tiny_model)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PROMPTKIT_DB": str(isolated_library)}
    run = subprocess.Popen([sys.executable, "-m", "promptkit", "ab", "run", "e", "--ray", "--workers", "1",
                            "--batch-size", "1", "--device", "cpu"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)

    def cells() -> int:
        with sqlite3.connect(isolated_library) as conn:
            return conn.execute("SELECT count(*) FROM generations").fetchone()[0]

    deadline = time.time() + 240
    while run.poll() is None and cells() < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert run.poll() is None, run.stderr.read()[-2000:]
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err[-2000:]
    assert "interrupted: the images above are saved" in err and "second Ctrl-C" not in err
    assert "WARNING" not in err, err  # Ray's token and progress-bar notices
    assert "(raylet)" not in out and out.startswith("generated "), out  # stdout is promptkit's own
    assert 2 <= cells() < 16
    doctor = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert doctor.exit_code == 0, doctor.output
    cell_bytes(isolated_library)  # one row per cell


def test_what_ray_prints_on_stdout_goes_to_stderr(isolated_library, tiny_model, monkeypatch, capsys):
    """Ray's error listener prints notices (a task of an actor killed at shutdown) with print() on stdout,
    from its own thread, while promptkit runs Ray: they go to stderr, so `ab run --ray --json` stays JSON."""
    from promptkit.library import Library
    from promptkit.sweeps import ray_runner
    from promptkit.sweeps.cells import outcome_dict

    def ray_run(*args):
        print("(raylet) Task MapWorker(MapBatches(CellMaker)).submit failed.")
        return outcome_dict([], [], True, {}, 0.0, "ray")

    monkeypatch.setattr(ray_runner, "require_ray", lambda: object())
    monkeypatch.setattr(ray_runner, "_run", ray_run)
    make_experiment(isolated_library, tiny_model)
    with Library(isolated_library) as lib:
        assert ray_runner.run_on_ray(lib, "e", batch_size=BATCH)["interrupted"]
    printed = capsys.readouterr()
    assert printed.out == "" and "(raylet) Task" in printed.err


def _local_resume(db: Path, engine) -> dict[tuple[str, int], str]:
    """The cells a local run (batch size 3, one torch thread) makes from a copy of DB."""
    from conftest import _copy_library

    copy = db.parent / "resume" / "library.db"
    copy.parent.mkdir()
    _copy_library(db, copy)
    return _run_locally(copy, engine)


def _run_locally(db: Path, engine) -> dict[tuple[str, int], str]:
    """Run experiment "e" of DB on ENGINE here (batch size 3, one torch thread, as Ray's CPU actors and
    accelerate's processes run); its cells."""
    import torch

    from promptkit.experiments import run_experiment
    from promptkit.library import Library

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Library(db) as lib:
            run_experiment(lib, engine, "e", batch_size=BATCH)
    finally:
        torch.set_num_threads(threads)
    return cell_bytes(db)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_accelerate_two_processes_make_the_local_bytes(isolated_library, tiny_model, local_bytes):
    pytest.importorskip("accelerate", reason="accelerate is not installed")
    make_experiment(isolated_library, tiny_model)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PROMPTKIT_DB": str(isolated_library)}
    # accelerate's --cpu starts one process unless MPI is set up; --multi_gpu starts torchrun's N, and
    # `--device cpu` puts them on the gloo backend.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "promptkit", "ab", "run", "e",
               "--batch-size", str(BATCH), "--device", "cpu", "--json", "--profile"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout)) == 16  # rank 0 lists every process's cells, the other prints nothing
    assert cell_bytes(isolated_library) == local_bytes
