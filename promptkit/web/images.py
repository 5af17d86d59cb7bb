"""Images by generation id: the PNG itself and a small JPEG thumbnail for grids."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from fastapi import APIRouter, Path as PathParam
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..errors import NotFound
from .connections import open_library

THUMBNAIL_PIXELS = 384  # twice the grid's cell width, for high-density screens
router = APIRouter(tags=["images"])
# No range check here: an id that names no generation is simply not found (404).
GenerationId = PathParam(description="A generation's id.")
PNG_RESPONSE = {200: {"content": {"image/png": {}}, "description": "The PNG, with its metadata chunks."},
                404: {"description": "No such generation, or its file is missing."}}
JPEG_RESPONSE = {200: {"content": {"image/jpeg": {}}, "description": "A thumbnail."},
                 404: {"description": "No such generation, or its file is missing."}}


def _cache_headers(request: Request, sha256: str) -> dict[str, str]:
    # The URL carries the image's sha256 (`?v=`): a different library on the same port gives
    # different URLs, so caching for good cannot show a stale picture.
    immutable = request.query_params.get("v") == sha256[:16]
    return {"cache-control": "private, max-age=31536000, immutable" if immutable else "no-cache",
            "etag": f'"{sha256}"'}


def _image_file(request: Request, generation_id: int) -> Path:
    with open_library(request) as library:
        return library.generation_image(generation_id)


@router.get("/images/{generation_id:int}", response_class=FileResponse, responses=PNG_RESPONSE)
def image(request: Request, generation_id: int = GenerationId) -> Response:
    """A generation's PNG, found by id (never by a path from the request)."""
    file = _image_file(request, generation_id)
    return FileResponse(file, media_type="image/png", headers=_cache_headers(request, file.stem))


@router.get("/images/{generation_id:int}/thumb", response_class=Response, responses=JPEG_RESPONSE)
def thumbnail(request: Request, generation_id: int = GenerationId) -> Response:
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
