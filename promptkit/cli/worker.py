"""`promptkit worker …`: start, query and stop the warm engine."""

from __future__ import annotations

from pathlib import Path

import click

from .options import emit, engine_options, engine_options_dict, json_option


@click.group()
def worker() -> None:
    """The warm engine: keep models loaded so generate, iterate and ab run skip the load."""


@worker.command("start")
@click.option("--model", "models", multiple=True, help="Load this model now (repeatable); others load on first use.")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), default=None,
              help="Unix socket to listen on (default: PROMPTKIT_ENGINE, else a per-user path).")
@engine_options
def worker_start(models, socket_path, **engine_flags) -> None:
    """Run the warm engine in the foreground until Ctrl-C or `promptkit worker stop`."""
    from ..worker import EngineWorker, default_socket_path, serve_engine

    path = Path(socket_path) if socket_path else default_socket_path()
    from ..service.generation import resolve_model

    resolved = [resolve_model(m, engine_flags["allow_pickle"]) for m in models]
    engine = EngineWorker()
    for model in resolved:
        seconds = engine.preload(model, engine_options_dict(**engine_flags))
        click.echo(f"loaded {model} in {seconds:.1f}s", err=True)

    def ready() -> None:
        click.echo(f"warm engine listening on {path} (pid {engine.status()['pid']}); stop with Ctrl-C or "
                   "`promptkit worker stop`", err=True)

    try:
        serve_engine(path, engine, ready=ready)
    except KeyboardInterrupt:
        click.echo("warm engine stopped", err=True)


@worker.command("status")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), default=None)
@json_option
def worker_status(socket_path, as_json) -> None:
    """Is a warm engine running, and what has it loaded? Exit 1 if none answers."""
    from ..worker import engine_status

    status = engine_status(Path(socket_path) if socket_path else None)
    emit(status, as_json, f"warm engine pid {status['pid']}: up {status['uptime_s']}s, {status['jobs_done']} jobs, "
                          f"{status['queued']} queued, models: {', '.join(status['models']) or 'none yet'}")


@worker.command("stop")
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), default=None)
def worker_stop(socket_path) -> None:
    """Ask the warm engine to finish its current job and exit."""
    from ..worker import stop_engine

    stop_engine(Path(socket_path) if socket_path else None)
    click.echo("warm engine stopping")


COMMANDS = [worker]
