"""ControlNet references and control images: the model's config checked, the image preprocessed (no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import BadParameter, ModelProblem
from .models import PICKLE_SUFFIXES

PREPROCESSORS = ("canny", "none")
CANNY_THRESHOLDS = (100, 200)  # A1111's ControlNet extension defaults


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
