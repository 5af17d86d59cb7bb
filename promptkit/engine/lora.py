"""LoRA files as named peft adapters on one loaded pipeline, switched by `set_adapters`."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from ..inputs.loras import LoraProblem
from .loading import first_line


def _peft_load_adapter(self, adapter_name=None, adapter_state_dict=None, peft_config=None, **_ignored) -> None:
    """A text encoder's `load_adapter`, done with peft's own functions.

    transformers 5 refuses to load an adapter unless peft >= 0.22 is installed, so a LoRA with
    text-encoder weights (most LoRAs trained with kohya's scripts) would fail to load on peft
    0.21. diffusers hands this method the converted state dict and LoraConfig; injecting the
    layers and loading the weights with peft gives the same layers transformers would make, and
    diffusers' set_adapters, disable/enable and unload work on them as usual.
    """
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    inject_adapter_in_model(peft_config, self, adapter_name=adapter_name)
    result = set_peft_model_state_dict(self, adapter_state_dict, adapter_name=adapter_name)
    unexpected = [k for k in getattr(result, "unexpected_keys", None) or [] if "lora_" in k]
    if unexpected:
        raise ValueError(f"text-encoder LoRA weights match no layer of the model, e.g. {unexpected[0]}")
    if not hasattr(self, "peft_config"):
        self.peft_config = {}
    self.peft_config[adapter_name] = peft_config
    self._hf_peft_config_loaded = True


def _text_encoder_loras_through_peft(pipe) -> None:
    """Where transformers' adapter loading needs a newer peft than the installed one, let the
    pipeline's text encoders load LoRA weights with peft directly (see _peft_load_adapter)."""
    import types
    from importlib.metadata import version

    from packaging.version import Version

    try:
        from transformers.integrations import peft as transformers_peft

        needed = getattr(transformers_peft, "MIN_PEFT_VERSION", None)
        if needed is None or Version(version("peft")) >= Version(str(needed)):
            return
    except Exception:  # no peft integration to work around
        return
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None and "load_adapter" not in vars(encoder):
            encoder.load_adapter = types.MethodType(_peft_load_adapter, encoder)


class LoraAdapters:
    """The LoRAs loaded on PIPE (one named adapter per file content) and which are active at what scale."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.names: dict[str, str] = {}  # LoRA sha256 -> adapter name
        self.state: tuple = ()  # ((adapter name, scale), ...) now active

    def load(self, lora: dict[str, Any], files: dict[str, str] | None) -> str:
        """The adapter name of LORA, loading its file first if needed (the library's copy when FILES has one)."""
        sha = lora["sha256"]
        if sha not in self.names:
            file = Path((files or {}).get(sha) or lora["path"])
            if not file.is_file():
                raise LoraProblem(f"`lora` {str(file)!r} does not exist")
            name = re.sub(r"\W", "_", f"{lora['name']}_{sha[:8]}")
            _text_encoder_loras_through_peft(self.pipe)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=name)
            except (ValueError, RuntimeError, KeyError, OSError) as exc:
                raise LoraProblem(f"could not load LoRA {lora['path']!r}: {first_line(exc)}") from None
            self.names[sha] = name
        return self.names[sha]

    def apply(self, loras: list[dict[str, Any]], files: dict[str, str] | None = None) -> None:
        """Make exactly LORAS active at their scales."""
        wanted = tuple((self.load(lora, files), float(lora["scale"])) for lora in loras)
        if wanted == self.state:
            return
        if wanted:
            self.pipe.enable_lora()
            self.pipe.set_adapters([name for name, _ in wanted], [scale for _, scale in wanted])
        elif self.names:
            self.pipe.disable_lora()
        self.state = wanted

    def unload(self) -> None:
        """Remove every LoRA from the weights (the base model's outputs come back exactly)."""
        if self.names:
            self.pipe.unload_lora_weights()
        self.names.clear()
        self.state = ()
