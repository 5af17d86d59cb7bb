"""The page's own CSS, JS and icon, read once from the package into memory.

A request names an asset; it is looked up in a dict of the files that shipped, so no part
of a request path ever reaches the filesystem (no `..`, no encoded slashes, no symlinks).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    folder = resources.files("promptkit.web") / "static"
    assets = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            assets[entry.name] = Asset(body, MEDIA_TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])
    return assets


ASSETS = _load_assets()
router = APIRouter(include_in_schema=False)


def static_url(name: str) -> str:
    """/static/NAME?v=HASH: a new version of a file gets a new URL, so it can be cached for good."""
    return f"/static/{name}?v={ASSETS[name].etag}"


@router.get("/static/{name:path}")
def static_file(name: str, request: Request) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        return Response("not found", status_code=404, media_type="text/plain")
    cache = "public, max-age=31536000, immutable" if request.query_params.get("v") == asset.etag else "no-cache"
    headers = {"etag": f'"{asset.etag}"', "cache-control": cache}
    if request.headers.get("if-none-match") == f'"{asset.etag}"':
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
