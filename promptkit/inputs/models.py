"""Model references: what a `--model` (or refiner) names, checked before torch loads, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ModelProblem

PICKLE_SUFFIXES = {".ckpt", ".bin", ".pt", ".pth", ".pkl"}


def check_model_ref(model: str, allow_pickle: bool = False) -> str:
    """Classify MODEL as 'folder', 'safetensors', 'pickle', 'hub' or 'plugin' (`SCHEME:NAME`), refusing what cannot load.

    Runs before torch is imported, so bad input fails fast.
    """
    if not model or not model.strip():
        raise ModelProblem("no model given; pass --model PATH or a hub id")
    if ":" in model:  # `openai:NAME`: a plugin backend's scheme (checked without loading torch)
        from ..plugins.manager import check_plugin_model

        if check_plugin_model(model):
            return "plugin"
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelProblem(f"model folder {model!r} has no model_index.json; is it a diffusers pipeline folder?")
        return "folder"
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            if not allow_pickle:
                raise ModelProblem(
                    f"refusing pickle checkpoint {model!r}: loading one can run arbitrary code. "
                    "Convert it to .safetensors, or pass --allow-pickle if you trust its source"
                )
            return "pickle"
        if path.suffix.lower() == ".gguf":
            return "gguf"  # a flow-matching transformer (engine.loading.load_flow_pipeline)
        if path.suffix.lower() != ".safetensors":
            raise ModelProblem(f"model file {model!r} is not a .safetensors file")
        return "safetensors"
    looks_like_path = model.startswith((".", "/", "~")) or path.suffix.lower() in PICKLE_SUFFIXES | {".safetensors"}
    if looks_like_path or model.count("/") != 1:
        raise ModelProblem(
            f"model {model!r} not found: give a diffusers folder, a .safetensors file or a hub id like "
            "stable-diffusion-v1-5/stable-diffusion-v1-5 (`promptkit model tiny PATH` makes an offline test model)"
        )
    return "hub"


def is_controlnet_folder(model: str) -> bool:
    """Whether MODEL is a diffusers ControlNet folder (a config.json naming a ControlNet class, no model_index.json)."""
    path = Path(model).expanduser()
    config = path / "config.json"
    if not path.is_dir() or (path / "model_index.json").is_file() or not config.is_file():
        return False
    try:
        return "ControlNet" in str(json.loads(config.read_text(encoding="utf-8")).get("_class_name", ""))
    except (ValueError, OSError, AttributeError):
        return False


def resolve_model(model: str, allow_pickle: bool = False) -> str:
    """Check MODEL before any heavy import; local paths become absolute so a warm engine finds them."""
    kind = check_model_ref(model, allow_pickle)
    return model if kind in ("hub", "plugin") else str(Path(model).expanduser().resolve())


def model_fingerprint(model: str) -> str:
    """A short content fingerprint of a local model (configs, and each weight file's size, head and tail).

    Hashing gigabytes on every load would cost seconds; the head, tail and size of each
    safetensors file change whenever the weights do in practice. Hub ids are recorded as given.
    """
    path = Path(model).expanduser()
    if not path.exists():
        return ""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        if file.suffix not in {".json", ".safetensors", ".txt", ".model"}:
            continue
        size = file.stat().st_size
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + str(size).encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), 2)
                digest.update(handle.read())
    return digest.hexdigest()[:10]
