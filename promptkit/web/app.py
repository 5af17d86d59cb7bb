"""The review page's ASGI app: routers, error pages and request guards around one library file.

To add pages (the A/B experiment review and results, for instance), write a module with an
`APIRouter`, add it to `ROUTERS`, and add a `NavLink` to `NAV_LINKS` if it deserves a tab.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterable

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..errors import BadParameter, LibraryProblem, NotFound, PromptkitError, rename_parameters
from ..library import Library
from ..studio import StudioEngine
from ..templates import PromptBuilder
from . import api, assets, experiments, images, matrix, pages, studio
from .security import LOCAL_NAMES, RequestGuard, host_header_values
from .templating import NavLink, render

ROUTERS = [pages.router, experiments.router, images.router, api.router, experiments.api_router, assets.router,
           studio.page_router, studio.router, matrix.router]
NAV_LINKS = [NavLink("Library", "/"), NavLink("Starred", "/?starred=true"), NavLink("Studio", "/studio"),
             NavLink("Experiments", "/experiments")]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
STATUS_FOR_ERROR = {NotFound: 404, BadParameter: 400, LibraryProblem: 503}


def create_app(
    db_path: str | os.PathLike,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_hosts: Iterable[str] = (),
    engine: StudioEngine | None = None,
    default_model: str | None = None,
    templates_dir: str | os.PathLike | None = None,
) -> FastAPI:
    """The review page for the library at DB_PATH.

    :param host: the name or address the server is bound to; requests must be addressed to it
        (or to 127.0.0.1 / localhost) on PORT, which defeats DNS rebinding.
    :param port: the port the server listens on (part of every accepted `Host` header).
    :param allowed_hosts: further names clients may use (for a server bound to 0.0.0.0).
    :param engine: the studio's warm engine (`promptkit serve --model` passes one with the model
        loaded); without one, the studio starts an in-process engine on its first Generate.
    :param default_model: the studio's model field starts with this.
    :param templates_dir: the user's template folder (default: `PROMPTKIT_TEMPLATES`).
    """
    path = Path(db_path)
    # Open once now: a missing or newer library fails here with one line, and pending
    # migrations are applied before any request can race to apply them.
    Library(path, create=False).close()
    app = FastAPI(
        title="promptkit review page",
        version=__version__,
        description="Browse, search, star and rate a promptkit library. Changes (POST) need a same-origin "
        "`Origin` or `Sec-Fetch-Site` header.",
        docs_url=None,  # the interactive docs load scripts from a CDN; /openapi.json is enough
        redoc_url=None,
    )
    app.state.library_path = path
    app.state.nav_links = list(NAV_LINKS)
    app.state.builder = PromptBuilder(templates_dir)
    app.state.studio = engine or StudioEngine()
    app.state.default_model = default_model
    app.state.blind_secret = experiments.new_secret()  # keys the blind review's image and pair tokens
    for router in ROUTERS:
        app.include_router(router)
    _install_error_handlers(app)
    app.add_middleware(RequestGuard, allowed_hosts=host_header_values([*LOCAL_NAMES, host, *allowed_hosts], port))
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def error_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """JSON `{"detail": message}` for the API, an HTML page for people."""
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    response = render(request, "error.html", status_code=status, title=f"Error {status}", status=status,
                      message=message)
    if headers:
        response.headers.update(headers)
    return response


def _without_library_folder(message: str, library_path) -> str:
    """MESSAGE with the library's folder left out: a page served on another --host must not
    tell its visitors where the library lives on this machine (the command line still does)."""
    library = Path(library_path).resolve()
    for folder in {str(library.parent), str(Path(library_path).parent)} - {"", "."}:
        message = message.replace(folder + os.sep, "")
    return message


# The API's parameter names, as errors name them (`steps`), and the studio field a person filled in.
PAGE_FIELDS = {"steps": "Steps", "cfg": "CFG", "sampler": "Sampler", "seeds": "Seeds", "width": "Size (width)",
               "height": "Size (height)", "model": "Model", "subject": "Subject", "action": "Action",
               "environment": "Environment", "style": "Style", "quality": "Quality", "negative": "Negative",
               "negative_preset": "Negative preset", "template": "Template", "family": "Family",
               "true_cfg_scale": "True CFG", "max_sequence_length": "Max sequence length"}


def name_fields(message: str) -> str:
    """MESSAGE with each parameter name (`steps`) replaced by the page's field label ("Steps")."""
    return rename_parameters(message, {name: f"\u201c{label}\u201d" for name, label in PAGE_FIELDS.items()})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PromptkitError)
    async def promptkit_error(request: Request, exc: PromptkitError) -> Response:
        status = next((code for kind, code in STATUS_FOR_ERROR.items() if isinstance(exc, kind)), 400)
        message = name_fields(_without_library_folder(str(exc), request.app.state.library_path))
        return error_response(request, status, message)

    @app.exception_handler(sqlite3.OperationalError)
    async def library_busy(request: Request, exc: sqlite3.OperationalError) -> Response:
        # Writers wait up to the busy timeout first; past it, say so plainly rather than fail.
        text = str(exc)
        if "locked" in text or "busy" in text:
            return error_response(request, 503, "the library is busy with another writer; try again",
                                  headers={"retry-after": "1"})
        return error_response(request, 500, f"library error: {text}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return error_response(request, 422, "; ".join(problems) or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = f"nothing at {request.url.path}"
        return error_response(request, exc.status_code, message, headers=getattr(exc, "headers", None))
