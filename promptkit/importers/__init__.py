"""Reading the prompt and settings other tools write into their images.

One module per tool reads that tool's layout, from the tool's own source:

- `a1111`: AUTOMATIC1111, Forge, SD.Next and Civitai (`parameters` text, EXIF UserComment, stealth
  PNG info, Civitai resource hashes);
- `comfyui`: the `prompt` API graph (and the `workflow` chunk kept verbatim);
- `invokeai`: `invokeai_metadata` (v3 and later), `sd-metadata` (v2), `Dream` (v1);
- `fooocus`: its JSON scheme and its A1111 scheme;
- `swarmui`: `sui_image_params`;
- `novelai`: the `Comment` JSON with `Description` and `Software`;
- `promptkit`: promptkit's own chunk (an image from another promptkit library).

`container` gets the metadata out of the file (PNG text chunks read without decoding pixels,
JPEG/WebP EXIF, the alpha channel's low bits) within fixed limits; `detect` picks the reader.
`read_image(data, name)` is the one entry point: it returns an `ImportedImage` or raises
`UnreadableImage` with one line. No torch, no library here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import PromptkitError

# The settings a reader fills in, in promptkit's names (all optional):
# seed, steps, sampler, scheduler, cfg, guidance, width, height, model, model_hash, vae, clip_skip,
# strength, noise_device, loras [{name, scale, hash}], controlnets [{model, module, scale, start, end}],
# hires {upscale, upscaler, steps, denoise, width, height}, refiner {model, model_hash, switch, steps, cfg}.
SETTING_KEYS = ("seed", "steps", "sampler", "scheduler", "cfg", "guidance", "width", "height", "model",
                "model_hash", "vae", "clip_skip", "strength", "noise_device", "loras", "controlnets", "hires",
                "refiner")

# The tools and the formats read, as the README's table shows them.
TOOLS = (
    ("a1111", "AUTOMATIC1111", "PNG `parameters` text (before or after the image data); JPEG/WebP EXIF UserComment; "
                               "stealth PNG info in the alpha (or RGB) low bits, plain or gzip"),
    ("forge", "Forge", "as AUTOMATIC1111 (told apart by its `Version: f…`)"),
    ("sdnext", "SD.Next", "as AUTOMATIC1111 (told apart by its `App: SD.Next`)"),
    ("civitai", "Civitai", "as AUTOMATIC1111, with `Civitai resources` and `Hashes` (model and LoRA hashes)"),
    ("comfyui", "ComfyUI", "PNG `prompt` (API graph) and `workflow` chunks; WebP EXIF `prompt:`/`workflow:`"),
    ("invokeai", "InvokeAI", "PNG `invokeai_metadata` (v3 and later), `sd-metadata` (v2), `Dream` (v1)"),
    ("fooocus", "Fooocus", "its JSON scheme and its A1111 scheme (PNG `parameters`, JPEG/WebP EXIF)"),
    ("swarmui", "SwarmUI", "`sui_image_params` JSON (PNG `parameters`, JPEG/WebP EXIF)"),
    ("novelai", "NovelAI", "PNG `Comment` JSON with `Description` and `Software`; its stealth alpha form"),
    ("promptkit", "promptkit", "its own `promptkit` chunk (an image from another library)"),
)
TOOL_NAMES = {key: name for key, name, _ in TOOLS}


class UnreadableImage(PromptkitError):
    """A file that is not an image any reader knows, or whose metadata cannot be read safely."""


@dataclass
class ImportedImage:
    """What one image says it was made with."""

    tool: str                       # a key of TOOLS
    container: str                  # where the metadata was: "png text", "exif", "stealth alpha", ...
    positive: str
    negative: str
    settings: dict[str, Any] = field(default_factory=dict)   # SETTING_KEYS, what could be read
    raw: dict[str, str] = field(default_factory=dict)        # the metadata verbatim: {key: text}
    uncertain: list[str] = field(default_factory=list)       # what the reader could not be sure of
    other: dict[str, Any] = field(default_factory=dict)      # the tool's other settings, as it names them
    image_size: tuple[int, int] | None = None                # the pixels' size

    def clean(self) -> "ImportedImage":
        """Settings without empty values, in SETTING_KEYS order; each uncertainty said once."""
        self.settings = {k: self.settings[k] for k in SETTING_KEYS
                         if self.settings.get(k) not in (None, "", [], {})}
        self.uncertain = list(dict.fromkeys(self.uncertain))
        return self


def read_image(data: bytes, name: str = "data") -> ImportedImage:
    """The prompt and settings in an image file's bytes; UnreadableImage (one line) when there are none."""
    from .detect import read_metadata

    return read_metadata(data, name)


__all__ = ["ImportedImage", "SETTING_KEYS", "TOOLS", "TOOL_NAMES", "UnreadableImage", "read_image"]
