"""Getting metadata out of image files, within limits, without decoding pixels where it can.

PNG: the chunks are walked by hand (text chunks before or after IDAT, CRCs checked, IEND
required), so a file's metadata is read without decompressing its image data. zTXt/iTXt and
gzip'd stealth data are inflated with a cap. JPEG and WebP: Pillow reads the EXIF (it does not
decode pixels to do so). Stealth PNG info (sd_webui_stealth_pnginfo): the low bit of each alpha
(or R, G, B) value, column by column, spells `stealth_pnginfo`/`stealth_pngcomp` (or `…rgb…`),
then the payload's length in bits as 32 bits, then the payload (UTF-8, or gzip of UTF-8).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field

from . import UnreadableImage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_FILE_BYTES = 256 << 20       # a larger file is refused before it is read
MAX_CHUNK_BYTES = 32 << 20       # one metadata chunk (ComfyUI workflows run to a few MB)
MAX_TEXT_CHARS = 32 << 20        # one inflated text
MAX_PIXELS = 89_478_485          # Pillow's decompression-bomb limit
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
STEALTH_SIGNATURES = {"stealth_pnginfo": ("alpha", False), "stealth_pngcomp": ("alpha", True),
                      "stealth_rgbinfo": ("rgb", False), "stealth_rgbcomp": ("rgb", True)}


@dataclass
class Container:
    """What the file holds besides pixels."""

    format: str                                   # "PNG", "JPEG", "WEBP"
    size: tuple[int, int]
    text: dict[str, str] = field(default_factory=dict)   # PNG text chunks (key -> text)
    exif: dict[str, str] = field(default_factory=dict)   # "UserComment", "MakerNote", "Make", "Model", "Software"
    has_alpha: bool = False


def mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n} bytes"


def inflate(data: bytes, what: str, wbits: int = zlib.MAX_WBITS) -> bytes:
    """DATA inflated, refusing more than MAX_TEXT_CHARS bytes (a zip bomb)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, MAX_TEXT_CHARS)
    except zlib.error as exc:
        raise UnreadableImage(f"its {what} is damaged ({exc})") from None
    if inflater.unconsumed_tail:
        raise UnreadableImage(f"its {what} inflates to more than {mb(MAX_TEXT_CHARS)} (a decompression bomb)")
    return out


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str]:
    key, sep, rest = body.partition(b"\0")
    if not sep:
        raise UnreadableImage(f"a {kind.decode()} chunk has no keyword")
    name = key.decode("latin-1")
    if kind == b"tEXt":
        return name, rest.decode("latin-1")
    if kind == b"zTXt":
        return name, inflate(rest[1:], f"`{name}` text").decode("latin-1")
    if len(rest) < 2:
        raise UnreadableImage(f"its iTXt chunk `{name}` is cut short")
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    if compressed:
        text = inflate(text, f"`{name}` text")
    try:
        return name, text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableImage(f"its `{name}` text is not valid UTF-8 (byte {exc.start})") from None


def read_png(data: bytes) -> Container:
    """A PNG's size and text chunks, wherever they are; refuses a truncated or damaged file."""
    view, pos, end = memoryview(data), len(PNG_SIGNATURE), len(data)
    text: dict[str, str] = {}
    size, alpha, seen_end = None, False, False
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", view[pos:pos + 8])
        if length > 0x7FFFFFFF:
            raise UnreadableImage("a PNG chunk claims an impossible length")
        body_at, crc_at = pos + 8, pos + 8 + length
        if crc_at + 4 > end:
            raise UnreadableImage(f"it is truncated (its {kind.decode('latin-1')} chunk runs past the end)")
        if kind in TEXT_CHUNKS or kind == b"IHDR":
            if length > MAX_CHUNK_BYTES:
                raise UnreadableImage(f"its {kind.decode()} chunk of {mb(length)} is over the "
                                      f"{mb(MAX_CHUNK_BYTES)} metadata limit")
            body = bytes(view[body_at:crc_at])
            if zlib.crc32(kind + body) != struct.unpack(">I", view[crc_at:crc_at + 4])[0]:
                raise UnreadableImage(f"its {kind.decode()} chunk is damaged (CRC mismatch)")
            if kind == b"IHDR":
                if length < 13:
                    raise UnreadableImage("its IHDR chunk is cut short")
                width, height, _depth, color = struct.unpack(">IIBB", body[:10])
                size, alpha = (width, height), color in (4, 6)
            else:
                key, value = _text_chunk(kind, body)
                text.setdefault(key, value)
        elif kind == b"IEND":
            seen_end = True
            break
        pos = crc_at + 4
    if size is None:
        raise UnreadableImage("it is not a readable PNG (no IHDR chunk)")
    if not seen_end:
        raise UnreadableImage("it is truncated (no IEND chunk)")
    check_pixels(size)
    return Container("PNG", size, text=text, has_alpha=alpha)


def check_pixels(size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_PIXELS:
        raise UnreadableImage(f"it claims {size[0]}x{size[1]} pixels, over the {MAX_PIXELS:,} limit "
                              "(a decompression bomb)")
    if size[0] == 0 or size[1] == 0:
        raise UnreadableImage("it has no pixels (0 width or height)")


def _exif_text(value) -> str | None:
    """An EXIF text value: UserComment's 8-byte charset prefix (UNICODE: UTF-16 either way round)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    raw = bytes(value)
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16")
        # piexif writes big-endian; some tools little-endian: ASCII text has its zeros on one side.
        even, odd = body[0::2].count(0), body[1::2].count(0)
        return body.decode("utf-16-be" if even >= odd else "utf-16-le", errors="replace")
    if prefix in (b"ASCII\0\0\0", b"\0" * 8, b"JIS\0\0\0\0\0"):
        raw = body
    text = raw.decode("utf-8", errors="replace").rstrip("\0")
    return text


def read_exif_image(data: bytes) -> Container:
    """A JPEG's or WebP's size and EXIF texts (UserComment in the Exif IFD or IFD0, MakerNote, ...)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as image:
            warnings.simplefilter("ignore")  # Pillow warns of damaged EXIF on stderr; a damaged file is one line
            check_pixels(image.size)
            exif = image.getexif()
            sub = exif.get_ifd(0x8769)
            found = {"UserComment": sub.get(0x9286, exif.get(0x9286)), "MakerNote": sub.get(0x927C, exif.get(0x927C)),
                     "Make": exif.get(0x010F), "Model": exif.get(0x0110), "Software": exif.get(0x0131),
                     "ImageDescription": exif.get(0x010E)}
            comment = image.info.get("comment")
            container = Container(image.format or "", image.size,
                                  exif={k: t for k, v in found.items() if (t := _exif_text(v))})
            if comment:
                container.exif["comment"] = _exif_text(comment) or ""
            return container
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"it is a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise UnreadableImage(f"it is not a readable image ({exc})") from None


def read_container(data: bytes) -> Container:
    """The metadata-bearing parts of an image file's bytes."""
    if not data:
        raise UnreadableImage("it is empty")
    if data.startswith(PNG_SIGNATURE):
        return read_png(data)
    if data[:3] == b"\xff\xd8\xff" or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return read_exif_image(data)
    raise UnreadableImage("it is not a PNG, JPEG or WebP image")


def _lsb_bytes(bits) -> bytes:
    import numpy as np

    return np.packbits(bits[: len(bits) // 8 * 8]).tobytes()


def read_stealth(data: bytes) -> tuple[str, str] | None:
    """(text, "stealth alpha"/"stealth rgb") hidden in a PNG's low bits, or None."""
    import numpy as np
    from PIL import Image

    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as image:
            warnings.simplefilter("ignore")
            mode = "RGBA" if "A" in image.getbands() else "RGB"
            pixels = np.asarray(image.convert(mode))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None
    # x-major order, as the extension walks the pixels: for x in range(width): for y in range(height)
    columns = pixels.transpose(1, 0, 2)
    streams = {"rgb": (columns[:, :, :3].reshape(-1) & 1)}
    if mode == "RGBA":
        streams["alpha"] = columns[:, :, 3].reshape(-1) & 1
    for kind, bits in streams.items():
        signature = _lsb_bytes(bits[:120]).decode("latin-1")
        if STEALTH_SIGNATURES.get(signature, (None,))[0] != kind:
            continue
        compressed = STEALTH_SIGNATURES[signature][1]
        length = int.from_bytes(_lsb_bytes(bits[120:152]), "big")
        if length > len(bits) - 152 or length > 8 * MAX_CHUNK_BYTES:
            raise UnreadableImage(f"its stealth info claims {length} bits, more than the image holds")
        payload = _lsb_bytes(bits[152:152 + length])
        if compressed:
            payload = inflate(payload, "stealth info", wbits=16 + zlib.MAX_WBITS)
        try:
            return payload.decode("utf-8"), f"stealth {kind}"
        except UnicodeDecodeError:
            raise UnreadableImage("its stealth info is not valid UTF-8") from None
    return None


def write_stealth(image, text: str, mode: str = "alpha", compressed: bool = True):
    """IMAGE (Pillow) with TEXT hidden as the extension writes it (for tests and round trips)."""
    import gzip

    import numpy as np
    from PIL import Image

    signature = f"stealth_{'png' if mode == 'alpha' else 'rgb'}{'comp' if compressed else 'info'}"
    payload = gzip.compress(text.encode("utf-8")) if compressed else text.encode("utf-8")
    bits = np.unpackbits(np.frombuffer(signature.encode() + struct.pack(">I", len(payload) * 8) + payload,
                                       dtype=np.uint8))
    pixels = np.array(image.convert("RGBA" if mode == "alpha" else "RGB"))
    columns = pixels.transpose(1, 0, 2).copy()
    target = columns[:, :, 3] if mode == "alpha" else columns[:, :, :3]
    flat = target.reshape(-1).copy()
    if len(bits) > len(flat):
        raise ValueError("the image is too small for this text")
    flat[: len(bits)] = (flat[: len(bits)] & 0xFE) | bits
    if mode == "alpha":
        columns[:, :, 3] = flat.reshape(columns.shape[:2])
    else:
        columns[:, :, :3] = flat.reshape(columns.shape[0], columns.shape[1], 3)
    return Image.fromarray(columns.transpose(1, 0, 2).copy())
