"""Inputs beyond the prompt, by what they hold: LoRAs, ControlNets, input images and models (no torch).

`request` turns what a person asked for into checked parameters and images; `stored` reads
and writes them through a library object passed in (nothing here imports the library).
"""

from __future__ import annotations

from ..hashing import file_sha256
from .controlnets import CANNY_THRESHOLDS, PREPROCESSORS, canny, check_controlnet_ref, preprocess_control
from .images import MAX_INPUT_PIXELS, InputProblem, check_mask_size, open_image, png_bytes
from .loras import (LoraProblem, check_lora, find_lora, lora_context_dim, lora_tag_record_name, merge_loras,
                    parse_lora_spec, prompt_loras, safetensors_header)
from .models import PICKLE_SUFFIXES, check_model_ref, model_fingerprint, resolve_model
from .request import PENDING, InputRequest, PreparedInputs, RunInputs, prepare_inputs
from .stored import input_image_shas, load_stored, params_dict, resolve_inputs, store_loras, stored_lora_shas

__all__ = [
    "CANNY_THRESHOLDS", "InputProblem", "InputRequest", "LoraProblem", "MAX_INPUT_PIXELS", "PENDING",
    "PICKLE_SUFFIXES", "PREPROCESSORS", "PreparedInputs", "RunInputs", "canny", "check_controlnet_ref",
    "check_lora", "check_mask_size", "check_model_ref", "file_sha256", "find_lora", "input_image_shas",
    "load_stored", "lora_context_dim", "lora_tag_record_name", "merge_loras", "model_fingerprint", "open_image",
    "params_dict", "parse_lora_spec", "png_bytes", "prepare_inputs", "preprocess_control", "prompt_loras",
    "resolve_inputs", "resolve_model", "safetensors_header", "store_loras", "stored_lora_shas",
]
