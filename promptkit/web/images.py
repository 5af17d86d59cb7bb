"""Images by generation id: the PNG itself and a small JPEG thumbnail for grids."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..errors import NotFound
from .connections import open_library

THUMBNAIL_PIXELS = 384  # twice the grid's cell width, for high-density screens
# Left out of /openapi.json (which describes the JSON API); the API's `image_url` fields point here.
router = APIRouter(include_in_schema=False)


def _cache_headers(request: Request, sha256: str) -> dict[str, str]:
    # The URL carries the image's sha256 (`?v=`): a different library on the same port gives
    # different URLs, so caching for good cannot show a stale picture.
    immutable = request.query_params.get("v") == sha256[:16]
    return {"cache-control": "private, max-age=31536000, immutable" if immutable else "no-cache",
            "etag": f'"{sha256}"'}


def _image_file(request: Request, generation_id: int) -> Path:
    with open_library(request) as library:
        return library.generation_image(generation_id)


@router.get("/images/{generation_id:int}", response_class=FileResponse)
def image(request: Request, generation_id: int) -> Response:
    """A generation's image, found by id (never by a path from the request): a PNG, or the JPEG or
    WebP an import kept."""
    from ..library.files import MEDIA_TYPES

    file = _image_file(request, generation_id)
    return FileResponse(file, media_type=MEDIA_TYPES.get(file.suffix, "image/png"),
                        headers=_cache_headers(request, file.stem))


@router.get("/images/{generation_id:int}/thumb", response_class=Response)
def thumbnail(request: Request, generation_id: int) -> Response:
    """A generation's image scaled to fit 384 pixels, as JPEG."""
    file = _image_file(request, generation_id)
    headers = _cache_headers(request, file.stem)
    if request.headers.get("if-none-match") == headers["etag"]:
        return Response(status_code=304, headers=headers)
    return Response(_thumbnail_bytes(str(file), file.stat().st_mtime_ns), media_type="image/jpeg", headers=headers)


@functools.lru_cache(maxsize=512)
def _thumbnail_bytes(file: str, _mtime_ns: int) -> bytes:
    from PIL import Image

    try:
        with Image.open(file) as picture:
            picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            picture.convert("RGB").save(buffer, format="JPEG", quality=85)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise NotFound(f"{Path(file).name} is not a readable image: {exc}") from None
    return buffer.getvalue()
