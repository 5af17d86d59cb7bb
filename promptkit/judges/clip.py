"""CLIP-family judges through transformers: CLIP score and PickScore, for any CLIP model.

Both embed the image and the prompt with a `CLIPModel` and compare them by cosine similarity;
they differ only in the scale (see `JUDGES` in this package). The model is a hub id or a local
folder saved with `save_pretrained` (the tiny test models go through the same code).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ModelProblem

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def check_clip_model(model: str) -> None:
    """Refuse, before torch loads, a local folder that is not a CLIP model (one line, naming --model)."""
    path = Path(model).expanduser()
    if path.is_file():
        raise ModelProblem(f"judge model {model!r} for --model is a file; give a CLIP model folder or hub id")
    if path.is_dir():
        config = path / "config.json"
        model_type = None
        if config.is_file():
            try:
                model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
            except (ValueError, OSError, AttributeError):
                model_type = None
        if model_type != "clip":
            what = "a diffusers pipeline" if (path / "model_index.json").is_file() else f"model_type {model_type!r}"
            raise ModelProblem(f"judge model {model!r} for --model is not a CLIP model ({what}); "
                               "give a CLIP model such as openai/clip-vit-large-patch14")
        return
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelProblem(f"judge model {model!r} for --model not found: give a CLIP model folder or a hub id")


def model_hash(model: str) -> str:
    """A short fingerprint of the judge model's files (a hub model: its cached snapshot, when there is one)."""
    from ..inputs.models import model_fingerprint

    path = Path(model).expanduser()
    if path.exists():
        return model_fingerprint(str(path))
    try:
        from huggingface_hub import snapshot_download

        return model_fingerprint(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached yet: from_pretrained will fetch it; the id stands for it
        return ""


class ClipScorer:
    """A loaded CLIP model and processor that score (image, prompt) pairs.

    :param processor: where the processor comes from when not from MODEL's own files (PickScore's).
    :param scale: "clip" for 100·max(cos, 0), "pickscore" for exp(logit_scale)·cos.
    """

    def __init__(self, model: str, processor: str | None = None, scale: str = "clip", device: str = "cpu") -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        from ..tinymodel import _quiet

        check_clip_model(model)
        _quiet()
        try:
            self.model = CLIPModel.from_pretrained(model).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(processor or model)
        except (OSError, ValueError) as exc:
            raise ModelProblem(f"cannot load judge model {model!r} for --model: {str(exc).splitlines()[0]}") from None
        self.scale, self.device, self.torch = scale, device, torch

    def embed(self, images: Sequence[Any], prompts: Sequence[str]):
        """Unit-length image and prompt embeddings (two tensors of shape [n, d])."""
        torch = self.torch
        inputs = self.processor(text=list(prompts), images=list(images), return_tensors="pt", padding=True,
                                truncation=True, max_length=77)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            image = _features(self.model.get_image_features(pixel_values=inputs["pixel_values"]))
            text = _features(self.model.get_text_features(input_ids=inputs["input_ids"],
                                                          attention_mask=inputs["attention_mask"]))
        return (image / image.norm(dim=-1, keepdim=True)).float(), (text / text.norm(dim=-1, keepdim=True)).float()

    def score(self, images: Sequence[Any], prompts: Sequence[str], batch_size: int = 16) -> list[float]:
        """One score per (image, prompt), in order."""
        out: list[float] = []
        for start in range(0, len(images), batch_size):
            image, text = self.embed(images[start:start + batch_size], prompts[start:start + batch_size])
            cosine = (image * text).sum(dim=-1)
            with self.torch.no_grad():
                scale = self.model.logit_scale.exp().float() if self.scale == "pickscore" else None
            values = scale * cosine if scale is not None else 100 * cosine.clamp(min=0)
            out.extend(float(v) for v in values.cpu())
        return out


def _features(output):
    """transformers 5 may return a model output instead of a tensor from get_*_features."""
    if hasattr(output, "pooler_output") and not hasattr(output, "norm"):
        return output.pooler_output
    return output
