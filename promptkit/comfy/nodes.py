"""promptkit's ComfyUI nodes: thin classes in ComfyUI's custom-node interface over `prompting` and `saving`.

ComfyUI reads each class's `INPUT_TYPES()`, `RETURN_TYPES`, `RETURN_NAMES`, `FUNCTION`, `CATEGORY` and
`OUTPUT_NODE`, makes an instance with no arguments and calls `FUNCTION` with the inputs as keywords. IMAGE
inputs are float tensors [batch, height, width, channels] in 0-1. Nothing here imports ComfyUI (or torch):
ComfyUI's own modules are looked up only while a node runs inside it (the preview of Save to Library).
"""

from __future__ import annotations

import math
import os
from typing import Any

from promptkit.comfy import prompting

CATEGORY = "promptkit"
MAX_SEED = 2**63 - 1  # the library's largest (SQLite's integers); ComfyUI's KSampler goes to 2**64 - 1
LIBRARY_INPUT = ("STRING", {"default": "", "tooltip": "The promptkit library file (library.db). Empty: "
                                                      "$PROMPTKIT_DB, else library.db in ComfyUI's folder."})
SEED_INPUT = ("INT", {"default": 1, "min": 0, "max": MAX_SEED, "tooltip": "The seed the sampler used."})
# An experiment's seeds are promptkit's too (`ab run` fills the other cells): its range, 0 to 2**32 - 1.
VARIANT_SEED_INPUT = ("INT", {"default": 1, "min": 0, "max": 2**32 - 1, "tooltip": "One of the experiment's seeds "
                                                                                  "(a new one is added to them)."})


def _library(path: str, create: bool = True):
    from promptkit.service.maintenance import open_library

    return open_library(str(path).strip() or None, create=create)


def _names(read, fallback: list[str]) -> list[str]:
    """Choices for a COMBO input; FALLBACK when promptkit cannot read them (a broken template folder)."""
    try:
        return read() or fallback
    except Exception:  # object_info must list the node whatever the person's folders hold
        return fallback


def _presets(kind: str) -> list[str]:
    from promptkit.service.prompts import presets

    return [p["name"] for p in presets(kind)]


class BuildPrompt:
    """Structured fields, a template, presets and the target family -> positive, negative and lint findings."""

    DESCRIPTION = ("promptkit's prompt builder: the fields through a template with style, quality and negative "
                   "presets, linted for the target family (tokens, overflow, contradictions, what it ignores).")
    RETURN_TYPES = ("STRING", "STRING", "STRING")
    RETURN_NAMES = ("positive", "negative", "lint")
    FUNCTION = "build"
    CATEGORY = CATEGORY
    OUTPUT_NODE = False

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from promptkit.families import TABLE
        from promptkit.service.prompts import templates

        styles = ", ".join(_names(lambda: _presets("style"), []))
        qualities = ", ".join(_names(lambda: _presets("quality"), []))
        template_names = _names(lambda: [t["name"] for t in templates()], ["default"])
        negatives = _names(lambda: _presets("negative"), ["standard", "none"])
        return {"required": {
            "subject": ("STRING", {"default": "", "multiline": True, "tooltip": "What the image shows."}),
            "action": ("STRING", {"default": "", "tooltip": "What the subject does."}),
            "environment": ("STRING", {"default": "", "tooltip": "Where it is."}),
            "style": ("STRING", {"default": "", "tooltip": f"Style presets, comma-separated: {styles}"}),
            "quality": ("STRING", {"default": "", "tooltip": f"Quality presets, comma-separated: {qualities}"}),
            "template": (template_names, {"default": "default" if "default" in template_names else template_names[0]}),
            "negative_preset": (negatives, {"default": "standard" if "standard" in negatives else negatives[0]}),
            "family": ([family.key for family in TABLE], {"default": "sd1",
                                                          "tooltip": "The model family the prompt is for."}),
        }, "optional": {
            "negative": ("STRING", {"default": "", "tooltip": "More negative terms, comma-separated."}),
        }}

    def build(self, subject: str, action: str, environment: str, style: str, quality: str, template: str,
              negative_preset: str, family: str, negative: str = "") -> tuple[str, str, str]:
        built = prompting.build(subject, action, environment, style, quality, template, negative_preset, family,
                                negative)
        return (built.positive, built.negative, prompting.findings_text(built, family))


class LoadPrompt:
    """A prompt saved in the library, by name or id -> positive, negative."""

    DESCRIPTION = "A prompt saved in the promptkit library (by its name or id)."
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    OUTPUT_NODE = False

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "prompt": ("STRING", {"default": "", "tooltip": "The saved prompt's name or id."}),
            "library": LIBRARY_INPUT,
        }}

    @classmethod
    def IS_CHANGED(cls, prompt: str, library: str = "") -> Any:
        """The prompt's text now: run again when the library's prompt changed (NaN, never equal: on an error)."""
        try:
            return "\n".join(cls().load(prompt, library))
        except Exception:
            return math.nan

    def load(self, prompt: str, library: str = "") -> tuple[str, str]:
        with _library(library, create=False) as lib:
            row = prompting.load_prompt(lib, prompt)
        return (row["positive"], row["negative"])


class ABVariant:
    """An experiment's variant for a seed -> its positive and negative, the seed, and its steps and CFG."""

    DESCRIPTION = ("One cell of a promptkit A/B experiment: the variant's prompt for a seed. Connect all four "
                   "outputs to the sampler and the same positive, negative and seed to Save to Library with the "
                   "experiment and variant, and the image fills the cell the review page votes on.")
    RETURN_TYPES = ("STRING", "STRING", "INT", "INT", "FLOAT")
    RETURN_NAMES = ("positive", "negative", "seed", "steps", "cfg")
    FUNCTION = "variant"
    CATEGORY = CATEGORY
    OUTPUT_NODE = False

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "experiment": ("STRING", {"default": "", "tooltip": "The experiment's name (promptkit ab new)."}),
            "variant": ("STRING", {"default": "A", "tooltip": "The variant's label."}),
            "seed": VARIANT_SEED_INPUT,
            "library": LIBRARY_INPUT,
        }}

    @classmethod
    def IS_CHANGED(cls, experiment: str, variant: str, seed: int, library: str = "") -> Any:
        try:
            return repr(cls().variant(experiment, variant, seed, library))
        except Exception:
            return math.nan

    def variant(self, experiment: str, variant: str, seed: int, library: str = "") -> tuple[str, str, int, int, float]:
        with _library(library, create=False) as lib:
            found = prompting.variant_prompt(lib, experiment, variant)
        params = found["params"]
        return (found["prompt"]["positive"], found["prompt"]["negative"], int(seed), int(params.steps),
                float(params.cfg))


class SaveToLibrary:
    """IMAGE plus its prompt and sampler settings -> generations and PNGs in the library (marked as ComfyUI's)."""

    DESCRIPTION = ("Stores the images in the promptkit library: PNGs with A1111's parameters, rows of the prompt "
                   "with this text, marked as made in ComfyUI (promptkit reproduce says it cannot regenerate "
                   "them). With an experiment and a variant, the image fills that cell.")
    RETURN_TYPES = ()
    FUNCTION = "save"
    CATEGORY = CATEGORY
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The decoded images (VAE Decode)."}),
            "positive": ("STRING", {"forceInput": True}),
            "negative": ("STRING", {"forceInput": True}),
            "seed": SEED_INPUT,
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "sampler_name": ("STRING", {"default": "euler", "tooltip": "The KSampler's sampler_name."}),
            "scheduler": ("STRING", {"default": "normal", "tooltip": "The KSampler's scheduler."}),
            "model_name": ("STRING", {"default": "", "tooltip": "The checkpoint's file name (ckpt_name)."}),
            "library": LIBRARY_INPUT,
        }, "optional": {
            "experiment": ("STRING", {"default": "", "tooltip": "An A/B experiment whose cell this image fills."}),
            "variant": ("STRING", {"default": "", "tooltip": "The variant's label in that experiment."}),
        }, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save(self, images: Any, positive: str, negative: str, seed: int, steps: int, cfg: float,
             sampler_name: str = "euler", scheduler: str = "normal", model_name: str = "", library: str = "",
             experiment: str = "", variant: str = "", prompt: Any = None,
             extra_pnginfo: Any = None) -> dict[str, Any]:
        from promptkit.comfy.saving import ComfySettings, save_images

        settings = ComfySettings(positive=positive, negative=negative, seed=seed, steps=steps, cfg=cfg,
                                 sampler_name=sampler_name, scheduler=scheduler, model_name=model_name)
        graph = None if prompt is None and extra_pnginfo is None else {"prompt": prompt, "extra_pnginfo": extra_pnginfo}
        with _library(library) as lib:
            saved = save_images(lib, images, settings, experiment=experiment, variant=variant, graph=graph)
        return {"ui": {"images": _previews(saved), "promptkit": saved}}


def _previews(saved: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Copies in ComfyUI's temp folder for the node's preview, when running inside ComfyUI; else none."""
    import shutil
    import sys

    folder_paths = sys.modules.get("folder_paths")  # ComfyUI's module, loaded before any custom node
    if folder_paths is None:
        return []
    previews = []
    temp = folder_paths.get_temp_directory()
    os.makedirs(temp, exist_ok=True)
    for item in saved:
        name = f"promptkit_{item['id']}_{item['image_sha256'][:12]}.png"
        shutil.copyfile(item["image_path"], os.path.join(temp, name))
        previews.append({"filename": name, "subfolder": "", "type": "temp"})
    return previews


NODE_CLASS_MAPPINGS = {
    "PromptkitBuildPrompt": BuildPrompt,
    "PromptkitLoadPrompt": LoadPrompt,
    "PromptkitSaveToLibrary": SaveToLibrary,
    "PromptkitABVariant": ABVariant,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PromptkitBuildPrompt": "Build Prompt (promptkit)",
    "PromptkitLoadPrompt": "Load Prompt (promptkit)",
    "PromptkitSaveToLibrary": "Save to Library (promptkit)",
    "PromptkitABVariant": "A/B Variant (promptkit)",
}
