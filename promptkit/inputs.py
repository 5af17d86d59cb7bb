"""Inputs beyond the prompt: init images, masks, control images, LoRA and ControlNet files (no torch).

Everything is checked before any work, then images are stored in the library content-addressed
and referenced from the generation's parameters by sha256, so `reproduce` needs only the library.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadParameter, ModelProblem, PromptkitError
from .library import file_sha256  # noqa: F401  (re-exported: generation.py imports it from here)
from .params import PICKLE_SUFFIXES

PREPROCESSORS = ("canny", "none")
CANNY_THRESHOLDS = (100, 200)  # A1111's ControlNet extension defaults
MAX_INPUT_PIXELS = 4096 * 4096
PENDING = "pending"  # an image's sha256 before it is stored


class InputProblem(PromptkitError):
    """An init image, mask or control image that cannot be used."""


class LoraProblem(PromptkitError):
    """A LoRA file that is missing, refused or made for another model."""


@dataclass
class RunInputs:
    """Decoded images for one generation: what the engine needs besides the prompt."""

    init_image: Any = None  # PIL RGB
    mask: Any = None  # PIL L
    control_images: list[Any] = field(default_factory=list)
    lora_files: dict[str, str] = field(default_factory=dict)  # LoRA sha256 -> the library's copy


# -- images ---------------------------------------------------------------------------

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


def canny(image, low: int = CANNY_THRESHOLDS[0], high: int = CANNY_THRESHOLDS[1]):
    """An edge map (white edges on black, RGB) through OpenCV's Canny detector."""
    import cv2
    import numpy as np
    from PIL import Image

    edges = cv2.Canny(np.asarray(image.convert("RGB")), low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


def preprocess_control(image, module: str):
    if module not in PREPROCESSORS:
        raise BadParameter(f"`control_module` must be one of {', '.join(PREPROCESSORS)} but is {module!r}")
    return canny(image) if module == "canny" else image.convert("RGB")


def png_bytes(image) -> bytes:
    """Lossless, deterministic PNG bytes of IMAGE (what the library stores and the engine reads back)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def load_stored(library, sha256: str, argument: str, mode: str):
    from PIL import Image

    file = library.image_file(sha256)
    if not file.is_file():
        raise InputProblem(f"`{argument}` image {sha256[:16]} is not in the library at {str(file)!r}")
    with Image.open(file) as image:
        return image.convert(mode)


def resolve_inputs(library, extra: dict[str, Any]) -> RunInputs:
    """The images a generation's parameters refer to, read back from the library."""
    inputs = RunInputs()
    if extra.get("init_image"):
        inputs.init_image = load_stored(library, extra["init_image"], "init_image", "RGB")
    if extra.get("mask"):
        inputs.mask = load_stored(library, extra["mask"], "mask", "L")
    for unit in extra.get("controlnets") or []:
        inputs.control_images.append(load_stored(library, unit["image"], "control_image", "RGB"))
    for sha in stored_lora_shas(extra):
        file = library.lora_file(sha)
        if file.is_file():
            inputs.lora_files[sha] = str(file)
    return inputs


# -- LoRA -----------------------------------------------------------------------------

def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file: tensor names, dtypes and shapes, without loading it."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100 << 20:
                raise ValueError("header too large")
            return json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise LoraProblem(f"{str(path)!r} is not a readable .safetensors file: {exc}") from None


def parse_lora_spec(spec: str) -> tuple[str, float]:
    """`PATH[:SCALE]` -> (path, scale)."""
    path, scale = spec, 1.0
    match = re.fullmatch(r"(.+?):([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)", spec)
    if match:
        path, scale = match.group(1), float(match.group(2))
    return path, scale


def lora_tag_record_name(name: str) -> str:
    """The `name` of the LoRA record a `<lora:NAME>` tag resolves to (check_lora's file stem):
    find_lora reads NAME.safetensors, or NAME itself when it already ends so. Not Path(NAME).stem,
    which would cut `v1.5-style` to `v1`."""
    return Path(name).name.removesuffix(".safetensors")


def find_lora(name: str, lora_dir: str | None) -> Path:
    """Resolve a `<lora:NAME>` tag in the LoRA folder."""
    if not lora_dir:
        raise LoraProblem(f"<lora:{name}> in the prompt but no LoRA folder: pass --lora-dir or set PROMPTKIT_LORA_DIR")
    folder = Path(lora_dir).expanduser()
    for candidate in (folder / f"{name}.safetensors", folder / name):
        if candidate.is_file():
            return candidate
    pickles = [folder / f"{name}{suffix}" for suffix in sorted(PICKLE_SUFFIXES)]
    if any(p.is_file() for p in pickles):
        return next(p for p in pickles if p.is_file())  # refused by check_lora with the reason
    raise LoraProblem(f"<lora:{name}> not found: no {name}.safetensors in {str(folder)!r}")


def check_lora(path: str | Path, scale: float) -> dict[str, Any]:
    """A LoRA file's record (name, path, sha256, scale, cross-attention width), or a one-line refusal."""
    file = Path(path).expanduser()
    if file.suffix.lower() in PICKLE_SUFFIXES:
        raise LoraProblem(f"refusing pickle LoRA {str(path)!r}: loading one can run arbitrary code; "
                          "use a .safetensors LoRA")
    if not file.is_file():
        raise LoraProblem(f"`lora` {str(path)!r} does not exist")
    if file.suffix.lower() != ".safetensors":
        raise LoraProblem(f"`lora` {str(path)!r} is not a .safetensors file")
    if not -10 <= scale <= 10:
        raise BadParameter(f"`lora` scale must be between -10 and 10 but is {scale} for {str(path)!r}")
    header = safetensors_header(file)
    return {"name": file.stem, "path": str(file.resolve()), "sha256": file_sha256(file), "scale": float(scale),
            "context_dim": lora_context_dim(header), "text_encoder_2": any(_is_te2(k) for k in header)}


def _is_te2(key: str) -> bool:
    return key.startswith(("text_encoder_2.", "lora_te2_"))


def lora_context_dim(header: dict[str, Any]) -> int | None:
    """The text-feature width the LoRA's cross-attention expects (768 SD 1.x, 1024 SD 2.x, 2048 SDXL)."""
    for key, info in header.items():
        if key == "__metadata__" or "attn2" not in key or "to_k" not in key:
            continue
        if any(part in key for part in ("lora_A.", "lora_down.", "lora.down.")):
            shape = info.get("shape") or []
            if len(shape) >= 2:
                return int(shape[1])
    return None


def prompt_loras(positive: str, lora_dir: str | None) -> list[dict[str, Any]]:
    """The records of the `<lora:NAME:SCALE>` tags in POSITIVE, each resolved in LORA_DIR and checked."""
    from .weighting import lora_tags

    return [check_lora(find_lora(name, lora_dir), scale) for name, scale in lora_tags(positive)]


def merge_loras(first: list[dict[str, Any]], then: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FIRST then THEN, a file (by sha256) once: the first mention wins."""
    seen: set[str] = set()
    return [r for r in [*first, *then] if not (r["sha256"] in seen or seen.add(r["sha256"]))]


def store_loras(library, loras: list[dict[str, Any]]) -> None:
    """Copy each LoRA file into the library (once per content) and mark its record `stored`, so
    reproduce needs neither the path nor the bytes it held."""
    for lora in loras:
        if lora.get("stored") and library.lora_file(lora["sha256"]).is_file():
            os.utime(library.lora_file(lora["sha256"]))  # already kept (a child reusing its parent's LoRA)
            continue
        library.store_lora(lora["path"], lora["sha256"])
        lora["stored"] = True


# -- ControlNet -----------------------------------------------------------------------

def check_controlnet_ref(model: str) -> dict[str, Any]:
    """A ControlNet folder's config (or {} for a hub id, checked when it loads)."""
    path = Path(model).expanduser()
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelProblem(f"ControlNet folder {model!r} has no config.json")
        return json.loads(config.read_text(encoding="utf-8"))
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelProblem(f"refusing pickle ControlNet {model!r}: loading one can run arbitrary code")
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelProblem(f"ControlNet {model!r} not found: give a diffusers ControlNet folder or a hub id")
    return {}


# -- a request from the command line or the API -----------------------------------------

@dataclass
class InputRequest:
    """What a person asked for beyond the prompt, as paths and numbers (nothing read yet)."""

    init_image: str | None = None
    mask: str | None = None
    mask_blur: int | None = None
    strength: float | None = None
    loras: list[str] = field(default_factory=list)  # PATH[:SCALE]
    lora_dir: str | None = None
    controlnets: list[str] = field(default_factory=list)
    control_images: list[str] = field(default_factory=list)
    control_modules: list[str] = field(default_factory=list)  # one per ControlNet, or one for all
    control_scales: list[float] = field(default_factory=list)
    control_starts: list[float] = field(default_factory=list)
    control_ends: list[float] = field(default_factory=list)
    refiner: str | None = None
    refiner_switch: float | None = None


@dataclass
class PreparedInputs:
    """Checked inputs: the parameters to record, and the images to store before generating."""

    extra: dict[str, Any]
    images: dict[str, Any] = field(default_factory=dict)  # "init_image", "mask", "control:0", "source:0"

    def store(self, library) -> dict[str, Any]:
        """Store every image content-addressed; return the parameters with their sha256 filled in."""
        extra = json.loads(json.dumps(self.extra))
        if extra.get("controlnets") or extra.get("refiner"):
            from .params import model_fingerprint

            for unit in extra.get("controlnets") or []:
                unit["model_hash"] = model_fingerprint(unit["model"])
            if extra.get("refiner"):
                extra["refiner"]["model_hash"] = model_fingerprint(extra["refiner"]["model"])
        store_loras(library, extra.get("loras") or [])
        for key, image in self.images.items():
            sha, _ = library.store_image(png_bytes(image))
            kind, _, index = key.partition(":")
            if kind in ("init_image", "mask"):
                extra[kind] = sha
            else:
                extra["controlnets"][int(index)]["image" if kind == "control" else "source"] = sha
        return extra


def _per_unit(values: list[Any], count: int, name: str, default: Any) -> list[Any]:
    if not values:
        return [default] * count
    if len(values) == 1:
        return list(values) * count
    if len(values) != count:
        raise BadParameter(f"`{name}` given {len(values)} times for {count} ControlNets; give it once or once each")
    return list(values)


def prepare_inputs(request: InputRequest, positive: str = "") -> PreparedInputs:
    """Read and check every input (images, LoRA files, ControlNet configs); write nothing."""
    from .params import check_extra

    extra: dict[str, Any] = {}
    images: dict[str, Any] = {}
    # 1. init image and mask
    if request.mask and not request.init_image:
        raise BadParameter("`mask` needs an init image to paint into (--init-image)")
    if request.init_image:
        init = open_image(request.init_image, "init_image", "RGB")
        images["init_image"], extra["init_image"] = init, PENDING
        extra["strength"] = float(request.strength if request.strength is not None
                                  else (1.0 if request.mask else 0.75))
        if request.mask:
            mask = open_image(request.mask, "mask", "L")
            check_mask_size(init, mask, request.mask)
            images["mask"], extra["mask"] = mask, PENDING
            extra["mask_blur"] = int(request.mask_blur or 0)
    elif request.strength is not None:
        extra["strength"] = request.strength  # refused below with the reason
    if request.mask_blur and not request.mask:
        raise BadParameter("`mask_blur` applies to inpainting: give --mask")
    # 2. LoRAs: --lora PATH[:SCALE] and <lora:NAME:SCALE> in the prompt
    records: list[dict[str, Any]] = []
    for spec in request.loras:
        path, scale = parse_lora_spec(spec)
        records.append(check_lora(path, scale))
    loras = merge_loras(records, prompt_loras(positive, request.lora_dir))
    if loras:
        extra["loras"] = loras
    # 3. ControlNets, one control image each
    count = len(request.controlnets)
    if count != len(request.control_images):
        if count and not request.control_images:
            raise InputProblem(f"ControlNet {request.controlnets[0]!r} has no control image: give --control-image")
        raise InputProblem(f"`controlnet` given {count} times but `control_image` {len(request.control_images)} "
                           "times; give one control image per ControlNet")
    modules = _per_unit(request.control_modules, count, "control_module", "none")
    scales = _per_unit(request.control_scales, count, "control_scale", 1.0)
    starts = _per_unit(request.control_starts, count, "control_start", 0.0)
    ends = _per_unit(request.control_ends, count, "control_end", 1.0)
    units = []
    for i, (model, image_path) in enumerate(zip(request.controlnets, request.control_images)):
        config = check_controlnet_ref(model)
        source = open_image(image_path, "control_image", "RGB")
        images[f"control:{i}"] = preprocess_control(source, modules[i])
        if modules[i] != "none":
            images[f"source:{i}"] = source
        units.append({"model": model, "module": modules[i], "image": PENDING, "scale": float(scales[i]),
                      "start": float(starts[i]), "end": float(ends[i]),
                      "config": {k: config.get(k) for k in ("cross_attention_dim", "addition_embed_type")
                                 if k in config}})
    if units:
        extra["controlnets"] = units
    # 4. SDXL refiner
    if request.refiner_switch is not None and not request.refiner:
        raise BadParameter("`refiner_switch` needs a refiner (--refiner MODEL)")
    if request.refiner:
        from .params import resolve_model

        # A local refiner folder is recorded by its absolute path, as the base model is, so a warm
        # engine, `iterate` and `reproduce` find it from any folder.
        extra["refiner"] = {"model": resolve_model(request.refiner),
                            "switch": float(request.refiner_switch if request.refiner_switch is not None else 0.8)}
    check_extra(extra)
    return PreparedInputs(extra=extra, images=images)


def params_dict(params: dict[str, Any] | str | None) -> dict[str, Any]:
    """A generation's or experiment's params as a dict, whether stored JSON or already decoded;
    {} if unreadable."""
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            return {}
    return params if isinstance(params, dict) else {}


def input_image_shas(params: dict[str, Any] | str | None) -> list[str]:
    """The sha256 of every stored input image a generation's params refer to (init image, mask, control images)."""
    params = params_dict(params)
    shas = [params.get("init_image"), params.get("mask")]
    for unit in params.get("controlnets") or []:
        if isinstance(unit, dict):
            shas += [unit.get("image"), unit.get("source")]
    return [s for s in shas if isinstance(s, str) and re.fullmatch(r"[0-9a-f]{64}", s)]


def stored_lora_shas(params: dict[str, Any] | str | None) -> list[str]:
    """The sha256 of every LoRA file a generation's params say the library holds a copy of."""
    params = params_dict(params)
    shas = [lora.get("sha256") for lora in params.get("loras") or [] if isinstance(lora, dict) and lora.get("stored")]
    return [s for s in shas if isinstance(s, str) and re.fullmatch(r"[0-9a-f]{64}", s)]
