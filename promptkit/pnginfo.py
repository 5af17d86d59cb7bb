"""PNG metadata: an AUTOMATIC1111-compatible `parameters` chunk and a promptkit JSON chunk.

What goes into the chunks is decided in one place, `records.GenerationRecord.png_chunks`; the
A1111 text is written and read by `a1111.py` (A1111's own grammar). This module writes and reads
the PNG bytes, and keeps the dict-shaped helpers older callers use.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .a1111 import NEGATIVE_MARKER, format_number, parse_controlnet_unit, parse_lora_hashes  # noqa: F401
from .a1111 import read_infotext as parse_a1111_parameters  # noqa: F401  (promptkit's reading of A1111 text)
from .errors import PromptkitError
from .records import PARAMETERS_KEY, PROMPTKIT_KEY, GenerationRecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC


def _record(meta: GenerationRecord | dict[str, Any]) -> GenerationRecord:
    return meta if isinstance(meta, GenerationRecord) else GenerationRecord.from_png_meta(meta)


def a1111_parameters(meta: GenerationRecord | dict[str, Any]) -> str:
    """The `parameters` text A1111 and Civitai read, of a record (or promptkit's JSON metadata)."""
    return _record(meta).infotext()


def encode_png(image, meta: GenerationRecord | dict[str, Any]) -> bytes:
    """PNG bytes with both chunks, of a GenerationRecord (or promptkit's JSON metadata as a dict).
    Deterministic: the same pixels and record give the same bytes."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, text in _record(meta).png_chunks().items():
        info.add_text(key, text)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def read_png_text(path_or_bytes) -> dict[str, str]:
    """The text chunks of a PNG file (or bytes)."""
    from PIL import Image, UnidentifiedImageError

    is_bytes = isinstance(path_or_bytes, (bytes, bytearray))
    name = "data" if is_bytes else str(path_or_bytes)
    try:
        data = bytes(path_or_bytes) if is_bytes else Path(path_or_bytes).read_bytes()
    except OSError as exc:
        raise PromptkitError(f"cannot read {name}: {exc.strerror or exc}") from None
    if not data.startswith(PNG_SIGNATURE):
        raise PromptkitError(f"{name} is not a PNG (it does not start with the PNG signature)")
    # Pillow reads a PNG cut short after its pixels without complaint; a complete file ends with IEND.
    if data.rfind(PNG_END) < len(PNG_SIGNATURE):
        raise PromptkitError(f"{name} is not a readable PNG: it is truncated (no IEND chunk)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise PromptkitError(f"{name} is not a PNG")
            image.load()
            return {k: v for k, v in getattr(image, "text", {}).items() if isinstance(v, str)}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PromptkitError(f"{name} is not a readable PNG: {exc}") from None


def read_png_record(path_or_bytes) -> GenerationRecord:
    """What a PNG says it was made with (promptkit's chunk, else A1111's text)."""
    return GenerationRecord.from_png_chunks(read_png_text(path_or_bytes))
