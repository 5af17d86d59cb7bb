"""promptkit's ComfyUI node pack, to drop into ComfyUI: `ln -s "$PWD/comfyui" ComfyUI/custom_nodes/promptkit`.

ComfyUI imports this folder as a package; the nodes live in `promptkit/comfy/`. When ComfyUI's Python has
no promptkit installed (`pip install -e .` in it is the other way), the checkout this folder sits in is put
on the path.
"""

import importlib.util
import os
import sys

if importlib.util.find_spec("promptkit") is None:
    sys.path.append(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from promptkit.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
