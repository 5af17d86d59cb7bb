"""Images made in ComfyUI, stored in the library (no ComfyUI import; torch only as the tensors given).

Each image becomes a PNG in the library's content-addressed store, with A1111's `parameters` chunk and
promptkit's JSON chunk (`pnginfo.encode_png`), and a `generations` row of the prompt with that text
(found, else stored: with its template and fields when *Build Prompt* made it in this process). The rows
say `source='comfyui'` and `reproducible=0`: promptkit did not run the sampler, so `promptkit reproduce`
refuses them in one line instead of loading a model it does not have. The ComfyUI graph that made the
image is kept verbatim in `source_metadata`. Given an experiment and a variant, the image fills that
variant's cell on its seed, which the review page then offers for votes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BadParameter

if TYPE_CHECKING:
    from ..library import Library
    from ..records import GenerationRecord, PromptText

SOURCE = "comfyui"
COMFY_TEMPLATE = "comfyui"  # the template of a prompt first seen as bare text in ComfyUI
COMFY_TAG = "comfyui"
MAX_STORED_SEED = 2**63 - 1  # SQLite's largest integer; ComfyUI's seeds go to 2**64 - 1
# ComfyUI's sampler names -> A1111's (what Civitai and A1111 read in `parameters`).
A1111_SAMPLERS = {
    "euler": "Euler", "euler_ancestral": "Euler a", "heun": "Heun", "dpm_2": "DPM2", "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS", "dpm_fast": "DPM fast", "dpm_adaptive": "DPM adaptive", "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE", "ddim": "DDIM", "uni_pc": "UniPC", "lcm": "LCM", "ddpm": "DDPM",
}
A1111_SCHEDULES = {"normal": "", "karras": " Karras", "exponential": " Exponential"}


@dataclass
class ComfySettings:
    """What a ComfyUI sampler was given, as *Save to Library* receives it."""

    positive: str
    negative: str
    seed: int
    steps: int
    cfg: float
    sampler_name: str = "euler"
    scheduler: str = "normal"
    model_name: str = ""

    def check(self) -> None:
        if not 0 <= int(self.seed) <= MAX_STORED_SEED:
            raise BadParameter(f"seed {self.seed} is outside 0..{MAX_STORED_SEED}, what the library stores (seed)")
        if int(self.steps) < 1:
            raise BadParameter(f"steps must be at least 1 but is {self.steps} (steps)")
        if not self.positive.strip():
            raise BadParameter("the prompt is empty: connect the positive STRING that fed the sampler (positive)")


def a1111_sampler(sampler_name: str, scheduler: str) -> str:
    """A1111's name for a ComfyUI sampler and scheduler ("dpmpp_2m", "karras" -> "DPM++ 2M Karras"); names it
    does not know stay as ComfyUI writes them ("res_multistep sgm_uniform")."""
    name, schedule = str(sampler_name or "").strip(), str(scheduler or "").strip()
    if name in A1111_SAMPLERS and schedule in A1111_SCHEDULES:
        return A1111_SAMPLERS[name] + A1111_SCHEDULES[schedule]
    return " ".join(part for part in (name, schedule) if part and part != "normal") or "unknown"


def pil_images(images: Any) -> list[Any]:
    """PIL RGB images of a ComfyUI IMAGE: a float tensor (or array) [B, H, W, C] in 0-1, C of 1, 3 or 4."""
    import numpy as np
    from PIL import Image

    array = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape:
        raise BadParameter(f"images must be a ComfyUI IMAGE, [batch, height, width, channels] with 1, 3 or 4 "
                           f"channels, but its shape is {tuple(array.shape)} (images)")
    pixels = np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    return [Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p, modes[p.shape[-1]]).convert("RGB")
            for p in pixels]


def _comfy_versions() -> dict[str, str]:
    """ComfyUI's version when this runs inside it (its `comfyui_version` module), else nothing."""
    import importlib
    import sys

    module = sys.modules.get("comfyui_version")
    if module is None and "folder_paths" in sys.modules:  # inside ComfyUI: its root is on the path
        try:
            module = importlib.import_module("comfyui_version")
        except ImportError:
            module = None
    version = getattr(module, "__version__", None) if module is not None else None
    return {"comfyui": str(version)} if version else {}


def prompt_text(library: Library, positive: str, negative: str) -> tuple[PromptText, dict[str, Any] | None]:
    """The prompt these images are of: the library's prompt with this text (and the row), else the one
    *Build Prompt* rendered in this process, else the bare text (template `comfyui`), with no row yet."""
    from ..records import PromptText
    from ..templates import Fields
    from .prompting import built_with_text

    row = library.prompt_with_text(positive, negative)
    if row is not None:
        return PromptText.from_row(row), row
    built = built_with_text(positive, negative)
    if built is not None:
        return PromptText(positive, negative, built.template, built.template_digest,
                          built.rendered.fields.to_dict()), None
    fields = Fields(subject=positive, negative=[negative] if negative else [], negative_preset="").to_dict()
    return PromptText(positive, negative, COMFY_TEMPLATE, "", fields), None


def _store_prompt(library: Library, text: PromptText) -> int:
    """Store the prompt of TEXT (inside the rows' transaction) and return its id."""
    return library.insert_prompt(name=None, template=text.template, template_digest=text.template_digest,
                                 fields=text.fields, positive=text.positive, negative=text.negative,
                                 tags=[COMFY_TAG], notes="saved from ComfyUI")


def _record(text: PromptText, settings: ComfySettings, size: tuple[int, int], count: int,
            index: int) -> GenerationRecord:
    from .. import __version__
    from ..records import Batch, GenerationRecord, ModelRef, Sampling

    seed = int(settings.seed)
    return GenerationRecord(
        prompt=text, model=ModelRef.from_ref(settings.model_name or "unknown"),
        sampling=Sampling(a1111_sampler(settings.sampler_name, settings.scheduler), int(settings.steps),
                          float(settings.cfg), size[0], size[1], "cpu"),
        seed=seed, batch=Batch(size=count, index=index, seeds=[seed] * count),
        versions={"promptkit": __version__, **_comfy_versions()}, source=SOURCE, reproducible=False)


def save_images(library: Library, images: Any, settings: ComfySettings, *, experiment: str = "",
                variant: str = "", graph: Any = None) -> list[dict[str, Any]]:
    """Store each image of IMAGES (a ComfyUI IMAGE) as a generation; all rows or none.

    :param experiment: with VARIANT, the experiment whose cell (VARIANT, seed) the one image fills.
    :param graph: ComfyUI's prompt graph (and workflow), kept verbatim as the rows' `source_metadata`.
    :returns: for each image: id, prompt_id, seed, image_path, image_sha256.
    """
    from ..generation import image_flags
    from ..library import utc_now
    from ..pnginfo import encode_png
    from .cells import check_cell, claim_cell

    settings.check()
    pictures = pil_images(images)
    cell = check_cell(library, experiment, variant, settings, pictures) if (experiment or variant) else None
    text, row = (cell["text"], cell["prompt"]) if cell else prompt_text(library, settings.positive, settings.negative)
    records = [_record(text, settings, picture.size, len(pictures), i) for i, picture in enumerate(pictures)]
    for record, picture in zip(records, pictures):
        record.flags = image_flags(picture)
    # The files first (content-addressed, atomic), then every row in one transaction.
    stored = [library.store_image(encode_png(picture, record)) for picture, record in zip(pictures, records)]
    metadata = None if graph is None else json.dumps(graph, sort_keys=True, ensure_ascii=False, default=str)

    filed: dict[str, int] = {}

    def make_rows() -> list[dict[str, Any]]:
        # Looked up again under the write lock: two saves of one new text store one prompt.
        found = row or library.prompt_with_text(text.positive, text.negative)
        filed["prompt_id"] = found["id"] if found is not None else _store_prompt(library, text)
        if cell:
            claim_cell(library, cell, int(settings.seed))
        return [record.to_row(prompt_id=filed["prompt_id"], experiment_id=cell["experiment"]["id"] if cell else None,
                              variant=cell["label"] if cell else None, image_sha256=sha,
                              image_path=library.relative_image_path(file), created_at=utc_now(),
                              source_metadata=metadata)
                for record, (sha, file) in zip(records, stored)]

    ids = library.add_generations(make_rows)
    return [{"id": gen_id, "prompt_id": filed["prompt_id"], "seed": record.seed, "image_path": str(file),
             "image_sha256": sha} for gen_id, record, (sha, file) in zip(ids, records, stored)]
