"""Set measures through torchmetrics (the optional `promptkit[judges]` extra): FID and Inception Score.

Both read a set of images through a feature network: Inception v3 by default (torchmetrics'
torch-fidelity port, the published definition), or a CLIP model's image tower when `--model`
names one (FID on CLIP features, Kynkäänniemi et al. 2023) — which is also how the tests run
them offline on a tiny random-weight CLIP. With few images both are noisy and biased: FID needs
hundreds of images per set to mean much, and says so.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from ..errors import BadParameter
from . import EXTRA_HINT

FEW_IMAGES = 300  # below this, FID is printed with a warning


def _torchmetrics(what: str):
    try:
        import torchmetrics  # noqa: F401
    except ImportError:
        raise BadParameter(f"--judge {what} needs torchmetrics, which is not installed: {EXTRA_HINT}") from None


def clip_features(model: str):
    """A torch module mapping a batch of float images in [0, 1] (N, 3, H, W) to CLIP image embeddings."""
    import torch

    from .clip import ClipScorer

    scorer = ClipScorer(model)

    class ClipImageFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = scorer.model
            self.num_features = int(scorer.model.config.projection_dim)

        def forward(self, images):
            from .clip import _features

            pixels = scorer.processor(images=[image for image in images], return_tensors="pt",
                                      do_rescale=False)["pixel_values"]
            with torch.no_grad():
                return _features(self.model.get_image_features(pixel_values=pixels)).double()

    return ClipImageFeatures()


def _feature(what: str, model: str | None, feature):
    if feature is not None:
        return feature
    if model is not None:
        return clip_features(model)
    import importlib.util

    if importlib.util.find_spec("torch_fidelity") is None:
        raise BadParameter(f"--judge {what} with the Inception network needs torch-fidelity ({EXTRA_HINT}); "
                           "or pass --model CLIP_MODEL to use CLIP image features")
    return 2048 if what == "fid" else "logits_unbiased"


def to_tensor(images: Sequence[Any]):
    """PIL images as one float tensor in [0, 1], (N, 3, H, W), all at the first image's size."""
    import numpy as np
    import torch

    size = images[0].size
    arrays = [np.asarray(image.convert("RGB").resize(size), dtype=np.float32) / 255.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def fid(first: Sequence[Any], second: Sequence[Any], *, model: str | None = None, feature=None) -> dict[str, Any]:
    """FID between two sets of PIL images (the first as torchmetrics' "real" set); both need 2 or more."""
    _torchmetrics("fid")
    for name, images in (("reference", first), ("generated", second)):
        if len(images) < 2:
            raise BadParameter(f"--judge fid needs at least 2 images in each set; the {name} set has {len(images)}")
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_feature("fid", model, feature), normalize=True)
    metric.update(to_tensor(first), real=True)
    metric.update(to_tensor(second), real=False)
    value = max(0.0, float(metric.compute()))
    n = min(len(first), len(second))
    out: dict[str, Any] = {"value": value, "n_reference": len(first), "n": len(second)}
    if n < FEW_IMAGES:
        out["warning"] = (f"only {n} images in the smaller set: FID is biased and noisy below a few hundred "
                          "images per set; compare FIDs only at equal N")
    return out


def inception_score(images: Sequence[Any], *, model: str | None = None, feature=None,
                    splits: int = 10) -> dict[str, Any]:
    """Inception Score of a set of PIL images (mean and standard deviation over SPLITS)."""
    _torchmetrics("is")
    if len(images) < 2:
        raise BadParameter(f"--judge is needs at least 2 images; the set has {len(images)}")
    from torchmetrics.image.inception import InceptionScore

    with warnings.catch_warnings():  # "will save all extracted features in buffer": a few hundred at most here
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=_feature("is", model, feature), normalize=True,
                                splits=max(1, min(splits, len(images) // 2)))
    metric.update(to_tensor(images))
    mean, std = metric.compute()
    out: dict[str, Any] = {"value": float(mean), "std": float(std), "n": len(images)}
    if len(images) < FEW_IMAGES:
        out["warning"] = f"only {len(images)} images: Inception Score is noisy below a few hundred"
    return out
