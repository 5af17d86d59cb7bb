"""The warm engine: a local process that keeps pipelines loaded and runs generation jobs from a queue.

Clients (`generate`, `iterate`, `ab run`) send a job over a Unix socket and stream back progress
and the result (`generate` with init images, LoRAs or ControlNets first sends a "check" job, so the
loaded model vets those inputs before anything is stored); when no engine is running they generate in-process instead. The socket is
created with mode 0600, so only its owner can submit jobs.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import PromptkitError

if TYPE_CHECKING:
    from .engine.cache import PipelineCache
    from .records import JobRequest

PROTOCOL = 1


class EngineUnavailable(PromptkitError):
    """No warm engine answers on the socket."""


def default_socket_path() -> Path:
    """`PROMPTKIT_ENGINE`, else a per-user socket under the runtime or cache folder."""
    explicit = os.environ.get("PROMPTKIT_ENGINE")
    if explicit:
        return Path(explicit).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promptkit"
    return base / "promptkit-engine.sock"


# -- running jobs (shared by the worker process and in-process fallbacks) --------


def execute_job(spec: "dict[str, Any] | JobRequest", progress: Callable[[int, int], None] | None = None,
                cache: "PipelineCache | None" = None) -> dict[str, Any]:
    """Run one job: a records.JobRequest or its JSON-able to_dict(); returns a JSON-able result.

    The model comes from CACHE: the worker's own, or for an in-process run the process's default cache.
    """
    from .engine.backend import EngineOptions
    from .library import Library
    from .plugins.manager import load_backend
    from .records import JobRequest

    job = spec if isinstance(spec, JobRequest) else JobRequest.from_dict(spec)
    options = EngineOptions(**job.engine_options)
    engine = load_backend(job.model, options, cache=cache)  # chosen by the model's scheme (`openai:NAME`)
    if job.kind == "check":
        # Whether the model can take these inputs (family, inpainting UNet): answered by the
        # loaded model, before the client stores anything.
        engine.check_request(job.extra or {})
        return {"checked": True, "load_seconds": engine.load_seconds}
    with Library(job.db) as library:
        if job.kind == "generate":
            from .generation import GenerationJob, run_job

            run = GenerationJob(prompt=library.get_prompt(job.prompt_id), params=job.params, seeds=list(job.seeds),
                                batch_size=job.batch_size)
            outcome = run_job(library, engine, run, progress=progress, profile=job.profile)
        else:
            from .experiments import run_experiment

            outcome = run_experiment(library, engine, job.name, batch_size=job.batch_size, progress=progress,
                                     profile=job.profile, lora_dir=job.lora_dir)
    return {"generations": outcome.generations, "interrupted": outcome.interrupted, "timings": outcome.timings,
            "notes": outcome.notes, "load_seconds": engine.load_seconds}


class EngineWorker:
    """One thread runs queued jobs in order (a GPU does one thing at a time); loaded pipelines stay in
    the worker's own `PipelineCache` until memory runs short.

    :param cache: where loaded pipelines are kept; a new `PipelineCache` (default limits) when None.
    """

    def __init__(self, cache: "PipelineCache | None" = None) -> None:
        from .engine.cache import PipelineCache

        self.cache = cache if cache is not None else PipelineCache()
        self.jobs: queue.Queue = queue.Queue()
        self.started = time.time()
        self.done = 0
        self.thread = threading.Thread(target=self._loop, name="promptkit-engine", daemon=True)
        self.thread.start()

    def submit(self, spec: dict[str, Any], events: queue.Queue) -> None:
        self.jobs.put((spec, events))

    def preload(self, model: str, engine_options: dict[str, Any] | None = None) -> float:
        from .engine.backend import EngineOptions
        from .params import GenerationParams
        from .plugins.manager import load_backend, model_scheme

        engine = load_backend(model, EngineOptions(**(engine_options or {})), cache=self.cache)
        if model_scheme(model) is None:  # not a plugin's backend (a remote API would bill the warm-up)
            # One throwaway step so the first real job does not pay for kernel and thread warm-up
            # (a flow-matching model's native size is 1024 px: warmed up small).
            small = {"width": 64, "height": 64} if hasattr(engine, "resolve_params") else {}
            engine.run_batch("", "", [0], GenerationParams(steps=1, sampler="Euler", **small))
        return engine.load_seconds

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "uptime_s": round(time.time() - self.started, 1), "jobs_done": self.done,
                "queued": self.jobs.qsize(), "models": sorted(set(self.cache.models())),
                "protocol": PROTOCOL}

    def _loop(self) -> None:
        while True:
            spec, events = self.jobs.get()
            try:
                result = execute_job(spec, progress=lambda done, total: events.put({"progress": [done, total]}),
                                     cache=self.cache)
                events.put({"result": result})
            except PromptkitError as exc:
                events.put({"error": str(exc)})
            except Exception as exc:  # reported to the client in one line; the worker keeps running
                events.put({"error": f"{type(exc).__name__}: {exc}"})
            finally:
                self.done += 1


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        worker: EngineWorker = self.server.worker  # type: ignore[attr-defined]
        line = self.rfile.readline()
        try:
            request = json.loads(line)
        except ValueError:
            self._send({"error": "bad request: not JSON"})
            return
        action = request.get("action")
        if action == "status":
            self._send({"status": worker.status()})
        elif action == "stop":
            self._send({"stopping": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        elif action == "job":
            events: queue.Queue = queue.Queue()
            worker.submit(request["job"], events)
            while True:
                event = events.get()
                self._send(event)
                if "result" in event or "error" in event:
                    return
        else:
            self._send({"error": f"unknown action {action!r}"})

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.wfile.write((json.dumps(message, default=str) + "\n").encode())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; the job still finishes and is saved


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve_engine(socket_path: Path, worker: EngineWorker | None = None, ready: Callable[[], None] | None = None):
    """Listen on SOCKET_PATH until stopped. Refuses to take over a socket another engine answers on."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        try:
            engine_status(socket_path)
        except EngineUnavailable:
            socket_path.unlink()  # stale socket from a process that died
        else:
            raise PromptkitError(f"a warm engine is already running on {socket_path}")
    old_umask = os.umask(0o177)  # the socket is created 0600: only this user may submit jobs
    try:
        server = _Server(str(socket_path), _Handler)
    finally:
        os.umask(old_umask)
    server.worker = worker or EngineWorker()  # type: ignore[attr-defined]
    try:
        if ready:
            ready()
        server.serve_forever()
    finally:
        server.server_close()
        if socket_path.exists():
            socket_path.unlink()


# -- client -------------------------------------------------------------------------


def _connect(socket_path: Path, timeout: float | None) -> socket.socket:
    if not socket_path.exists():
        raise EngineUnavailable(f"no warm engine at {socket_path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(socket_path))
    except OSError as exc:
        sock.close()
        raise EngineUnavailable(f"no warm engine at {socket_path} ({exc.strerror or exc})") from None
    return sock


def _request(socket_path: Path, message: dict[str, Any], timeout: float | None = 5.0):
    sock = _connect(socket_path, timeout)
    with sock, sock.makefile("rwb") as stream:
        stream.write((json.dumps(message) + "\n").encode())
        stream.flush()
        for line in stream:
            yield json.loads(line)


def engine_status(socket_path: Path | None = None) -> dict[str, Any]:
    for event in _request(socket_path or default_socket_path(), {"action": "status"}, timeout=2.0):
        return event["status"]
    raise EngineUnavailable("the warm engine closed the connection")


def stop_engine(socket_path: Path | None = None) -> None:
    for _event in _request(socket_path or default_socket_path(), {"action": "stop"}, timeout=2.0):
        return


def submit_job(spec: "dict[str, Any] | JobRequest", progress: Callable[[int, int], None] | None = None,
               socket_path: Path | None = None) -> dict[str, Any]:
    """Run SPEC on the warm engine; raises EngineUnavailable when none is running."""
    path = socket_path or default_socket_path()
    if not isinstance(spec, dict):
        spec = spec.to_dict()  # a records.JobRequest
    for event in _request(path, {"action": "job", "job": spec}, timeout=None):
        if "progress" in event and progress:
            progress(*event["progress"])
        elif "result" in event:
            result = event["result"]
            result["engine"] = str(path)
            return result
        elif "error" in event:
            raise PromptkitError(event["error"])
    # Not EngineUnavailable: the job may have saved images already, so it must not silently run twice.
    raise PromptkitError(f"the warm engine at {path} stopped before finishing; re-run to complete (saved images "
                         "are kept)")


def run_anywhere(spec: "dict[str, Any] | JobRequest", progress: Callable[[int, int], None] | None = None,
                 use_engine: bool = True) -> dict[str, Any]:
    """On the warm engine when one is up, else in this process."""
    if use_engine:
        try:
            return submit_job(spec, progress)
        except EngineUnavailable:
            pass
    result = execute_job(spec, progress)
    result["engine"] = None
    return result
