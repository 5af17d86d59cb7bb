"""Input images (init image, mask, control image): read, checked and turned into stored bytes (no torch)."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import PromptkitError

MAX_INPUT_PIXELS = 4096 * 4096


class InputProblem(PromptkitError):
    """An init image, mask or control image that cannot be used."""


def open_image(path: str, argument: str, mode: str = "RGB"):
    """Read PATH as an image in MODE, or fail in one line naming ARGUMENT."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path).expanduser()
    if not file.is_file():
        raise InputProblem(f"`{argument}` {path!r} does not exist")
    try:
        with Image.open(file) as image:
            if image.width * image.height > MAX_INPUT_PIXELS:
                raise InputProblem(f"`{argument}` {path!r} is {image.width}x{image.height}, larger than 4096x4096")
            return image.convert(mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputProblem(f"`{argument}` {path!r} is not an image: {reason}") from None


def check_mask_size(init_image, mask, mask_path: str) -> None:
    """A mask must match its init image: resizing would silently move the masked area's edges."""
    if mask.size != init_image.size:
        raise InputProblem(
            f"`mask` {mask_path!r} is {mask.width}x{mask.height} but `init_image` is "
            f"{init_image.width}x{init_image.height}; they must be the same size"
        )


def png_bytes(image) -> bytes:
    """Lossless, deterministic PNG bytes of IMAGE (what the library stores and the engine reads back)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()
