"""`promptkit serve`: run the local review page and studio (promptkit.web) with uvicorn."""

from __future__ import annotations

import socket
import threading
import time
import webbrowser

import click

from ..errors import PromptkitError
from ..library import default_db_path

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


class ServeProblem(PromptkitError):
    """The review page cannot listen where it was asked to."""


def _listen(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so a busy port is one line, not a log message and a traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise ServeProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _open_when_ready(server, url: str) -> None:
    def wait_then_open() -> None:
        for _ in range(200):
            if server.started:
                webbrowser.open(url)
                return
            time.sleep(0.05)

    threading.Thread(target=wait_then_open, name="promptkit-open-browser", daemon=True).start()


def _warn_if_exposed(host: str, allowed_hosts: tuple[str, ...]) -> None:
    if host not in LOCAL_HOSTS:
        click.echo(f"warning: listening on {host}: the review page has no authentication; anyone who can "
                   "reach this address can read and change your library", err=True)
        if host in WILDCARD_HOSTS and not allowed_hosts:
            click.echo("note: requests are answered only when addressed to 127.0.0.1 or localhost; add "
                       "--allow-host NAME for the name or address other machines use", err=True)


def _preload(engine, model: str, engine_options: dict) -> None:
    """Load MODEL into the studio's engine now, so the first Generate does not wait for it."""
    from ..worker import EngineWorker

    click.echo(f"loading {model} for the studio …", err=True)
    engine.worker = EngineWorker()
    seconds = engine.worker.preload(model, engine_options)
    click.echo(f"{model} loaded in {seconds:.1f} s; the studio's Generate uses it", err=True)


@click.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Library file (default: the global --db, PROMPTKIT_DB or ./library.db).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but 127.0.0.1/localhost exposes your library (no login).")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--allow-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another host name clients may use to reach the page (repeatable; with --host 0.0.0.0).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in your web browser.")
@click.option("--model", default=None, envvar="PROMPTKIT_MODEL",
              help="Keep this model loaded for the studio's Generate (env: PROMPTKIT_MODEL).")
@click.option("--device", type=click.Choice(["cuda", "mps", "cpu"]), default=None,
              help="Device for the studio's engine (default: the best available).")
@click.option("--templates", "templates_dir", type=click.Path(file_okay=False), default=None,
              help="Your template folder (default: PROMPTKIT_TEMPLATES).")
@click.pass_context
def serve(ctx: click.Context, db_path: str | None, host: str, port: int, allowed_hosts: tuple[str, ...],
          open_browser: bool, model: str | None, device: str | None, templates_dir: str | None) -> None:
    """Browse, search, star and rate your library, and write prompts in the studio, in a local web page."""
    import uvicorn

    from ..service.generation import resolve_model
    from ..studio import StudioEngine
    from ..web import create_app

    path = default_db_path(db_path or ctx.obj["db"])
    model = resolve_model(model, allow_pickle=False) if model else None
    engine_options = {"device": device} if device else {}
    engine = StudioEngine(engine_options=engine_options)
    app = create_app(path, host=host, port=port, allowed_hosts=allowed_hosts, engine=engine,
                     default_model=model, templates_dir=templates_dir)
    if model:
        _preload(engine, model, engine_options)
    _warn_if_exposed(host, allowed_hosts)
    sock = _listen(host, port)
    shown_host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    url = f"http://{f'[{shown_host}]' if ':' in shown_host else shown_host}:{port}/"
    click.echo(f"promptkit review page for {path}: {url}  (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    if open_browser:
        _open_when_ready(server, url)
    server.run(sockets=[sock])


COMMANDS = [serve]
