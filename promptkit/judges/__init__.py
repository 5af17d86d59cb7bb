"""Automatic judges: a registry of what can score images (per image) or sets of images (FID, IS).

A judge is data: its name, what it scores, what it needs, its default model. The code that runs
each one lives beside it (`clip.py` for CLIP score and PickScore, `sets.py` for FID and Inception
Score) and is imported only when a judge runs, so listing judges imports no torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadParameter

EXTRA_HINT = "pip install 'promptkit[judges]'"


@dataclass(frozen=True)
class Judge:
    """One automatic judge.

    :param name: what `--judge` takes. :param kind: "image" (one score per image, stored) or
        "set" (one number per set of images, e.g. per variant; printed, not stored).
    :param default_model: the model used without `--model`. :param needs: in words.
    :param requires: Python modules that must import for it to run.
    """

    name: str
    kind: str
    title: str
    default_model: str | None
    needs: str
    definition: str
    requires: tuple[str, ...] = ()
    processor: str | None = None  # where the image/text processor comes from when the model folder has none
    unavailable_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def missing(self) -> str | None:
        """Why this judge cannot run here (one line), or None when it can."""
        if self.unavailable_reason:
            return self.unavailable_reason
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if absent:
            return f"judge {self.name!r} needs the Python package {absent[0]!r}, which is not installed: {EXTRA_HINT}"
        return None

    def describe(self) -> dict[str, Any]:
        missing = self.missing()
        return {"name": self.name, "kind": self.kind, "title": self.title, "default_model": self.default_model,
                "processor": self.processor, "needs": self.needs, "definition": self.definition,
                "available": missing is None, "reason": missing}


def _hps_reason() -> str | None:
    """HPS v2.1 runs through open_clip_torch; the `hpsv2` package pins old dependencies and is not used."""
    if importlib.util.find_spec("open_clip") is None:
        return ("HPS v2.1 needs open_clip_torch (and torchvision), not installed here; promptkit does not "
                "wire it in this version (the `hpsv2` package is broken on current transformers)")
    return "HPS v2.1 through open_clip_torch is not wired in this version of promptkit"


JUDGES: dict[str, Judge] = {j.name: j for j in (
    Judge("clip", "image", "CLIP score", "openai/clip-vit-large-patch14",
          "transformers; any CLIP model (hub id or a local folder with its processor)",
          "100 × max(cos(image embedding, prompt embedding), 0), as torchmetrics' CLIPScore "
          "(Hessel et al. 2021, without their 2.5 weight); prompts truncated to 77 tokens"),
    Judge("pickscore", "image", "PickScore", "yuvalkirstain/PickScore_v1",
          "transformers; the PickScore_v1 CLIP model with the laion/CLIP-ViT-H-14-laion2B-s32B-b79K processor",
          "exp(logit_scale) × cos(image embedding, prompt embedding), as PickScore's reference code "
          "(Kirstain et al. 2023)", processor="laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
    Judge("hps", "image", "HPS v2.1", "xswu/HPSv2 (HPS_v2.1_compressed.pt)", "open_clip_torch",
          "100 × cos(image embedding, prompt embedding) with HPS v2.1's fine-tuned ViT-H/14",
          unavailable_reason=_hps_reason()),
    Judge("fid", "set", "Fréchet Inception Distance", None,
          "torchmetrics (promptkit[judges]); Inception features need torch-fidelity, or --model CLIP_MODEL "
          "for CLIP image features; a reference folder (--reference) or two variants",
          "Fréchet distance between Gaussians fitted to the two sets' features (Heusel et al. 2017), "
          "torchmetrics' FrechetInceptionDistance; lower is closer", requires=("torchmetrics",)),
    Judge("is", "set", "Inception Score", None,
          "torchmetrics (promptkit[judges]); Inception needs torch-fidelity, or --model CLIP_MODEL",
          "exp(E KL(p(y|x) || p(y))) over the classifier's outputs (Salimans et al. 2016), torchmetrics' "
          "InceptionScore; higher is more confident and varied", requires=("torchmetrics",)),
)}

IMAGE_JUDGES = tuple(name for name, j in JUDGES.items() if j.kind == "image")
SET_JUDGES = tuple(name for name, j in JUDGES.items() if j.kind == "set")


def get_judge(name: str) -> Judge:
    """The judge called NAME, or a one-line error naming `--judge` and the known ones."""
    judge = JUDGES.get((name or "").strip().lower())
    if judge is None:
        raise BadParameter(f"unknown judge {name!r} for --judge; known: {', '.join(JUDGES)} "
                           "(see `promptkit judges`)")
    return judge


def list_judges() -> list[dict[str, Any]]:
    """Every judge, with what it needs and whether it can run here."""
    return [j.describe() for j in JUDGES.values()]


def require(judge: Judge) -> None:
    """Raise a one-line error when JUDGE cannot run here (a missing extra, an unwired judge)."""
    missing = judge.missing()
    if missing:
        raise BadParameter(missing)
