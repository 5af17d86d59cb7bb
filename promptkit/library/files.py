"""The library's content-addressed file store: images and LoRA copies kept under their sha256
in `<dbstem>-images/`, each written whole or not at all (temp file, fsync, rename, fsync folder).

promptkit writes PNGs; an image imported from another tool keeps its bytes, so a JPEG or WebP is
stored as `<sha256>.jpg` / `<sha256>.webp` (its suffix says what it is)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from ..errors import LibraryProblem

SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def images_dir_for(db_path: Path) -> Path:
    """`library.db` keeps its images in `library-images/` beside it."""
    return db_path.with_name(f"{db_path.stem}-images")


# The formats the store keeps, by their first bytes; PNG is what promptkit writes.
IMAGE_SUFFIXES = (".png", ".jpg", ".webp")
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}


def image_suffix(data: bytes) -> str:
    """`.jpg` for JPEG bytes, `.webp` for WebP, else `.png`."""
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".png"


def image_file_in(images_dir: Path, sha256: str, suffix: str = ".png") -> Path:
    """Where an image with this sha256 (and SUFFIX) lives under IMAGES_DIR."""
    return images_dir / sha256[:2] / f"{sha256}{suffix}"


def existing_image_file(folder_of) -> Path:
    """The stored image file whatever its suffix (FOLDER_OF(suffix) names it); the `.png` name when
    there is none."""
    for suffix in IMAGE_SUFFIXES:  # PNG first: promptkit's own, nearly every image
        file = folder_of(suffix)
        if file.is_file():
            return file
    return folder_of(".png")


def lora_file_in(images_dir: Path, sha256: str) -> Path:
    """Where the copy of the LoRA file with this sha256 lives under IMAGES_DIR."""
    return images_dir / "loras" / sha256[:2] / f"{sha256}.safetensors"


def _write_atomically(final: Path, handle_write) -> None:
    """Create FINAL whole or not at all: HANDLE_WRITE fills a temp file beside it, which is
    fsynced and renamed over FINAL, then the folder is fsynced. If HANDLE_WRITE raises, the temp
    file is removed and FINAL is untouched."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=final.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle_write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


write_atomically = _write_atomically


class FileStore:
    """The file half of a `Library` (mixed in): needs `path` and `images_dir`."""

    path: Path
    images_dir: Path

    def image_file(self, sha256: str) -> Path:
        """The stored image SHA256 (`.png`, or the `.jpg`/`.webp` an import kept); the `.png` name if absent."""
        return existing_image_file(lambda suffix: image_file_in(self.images_dir, sha256, suffix))

    def store_image(self, png: bytes) -> tuple[str, Path]:
        """Write image bytes (PNG, or an imported JPEG/WebP) under their sha256 and the suffix of their
        format, atomically (temp file, fsync, rename, fsync folder)."""
        sha = hashlib.sha256(png).hexdigest()
        final = image_file_in(self.images_dir, sha, image_suffix(png))
        if final.is_file() and final.stat().st_size == len(png):
            # Fresh mtime: `doctor --fix` leaves young files alone, and this one is about to get a row.
            os.utime(final)
            return sha, final
        _write_atomically(final, handle_write=lambda handle: handle.write(png))
        return sha, final

    def lora_file(self, sha256: str) -> Path:
        """Where the library keeps its copy of the LoRA file with this sha256."""
        return lora_file_in(self.images_dir, sha256)

    def store_lora(self, source: str | os.PathLike, sha256: str) -> Path:
        """Copy a LoRA file into the library under its sha256, once per content, atomically
        (temp file, fsync, rename, fsync folder); refuse if its bytes are not SHA256 any more."""
        final = self.lora_file(sha256)
        source = Path(source)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise LibraryProblem(f"cannot store LoRA {str(source)!r} in the library: {exc.strerror}") from None
        if final.is_file() and final.stat().st_size == size:
            os.utime(final)  # fresh mtime, as store_image: `doctor --fix` leaves young files alone
            return final

        def copy_checked(handle) -> None:
            digest = hashlib.sha256()
            with open(source, "rb") as reader:
                for block in iter(lambda: reader.read(1 << 20), b""):
                    digest.update(block)
                    handle.write(block)
            if digest.hexdigest() != sha256:  # before the rename: the temp file is removed
                raise LibraryProblem(f"LoRA {str(source)!r} changed while it was being copied into the library "
                                     f"(sha256 {digest.hexdigest()[:12]}, expected {sha256[:12]})")

        _write_atomically(final, handle_write=copy_checked)
        return final

    def stored_image(self, sha256: object) -> Path | None:
        """The image stored under SHA256 if it is a well-formed sha256 and the file is there."""
        file = self.image_file(sha256) if isinstance(sha256, str) and SHA256_HEX.fullmatch(sha256) else None
        return file if file is not None and file.is_file() else None

    def image_path(self, generation: dict) -> Path:
        """Absolute path of a generation's image (stored relative to the library's folder)."""
        return (self.path.parent / generation["image_path"]).resolve()

    def relative_image_path(self, file: Path) -> str:
        return os.path.relpath(file, self.path.parent)
