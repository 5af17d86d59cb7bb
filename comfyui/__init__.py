"""promptkit's ComfyUI node pack, to drop into ComfyUI: `ln -s "$PWD/comfyui" ComfyUI/custom_nodes/promptkit`.

ComfyUI imports this folder as a package; the nodes live in `promptkit/comfy/`. The promptkit of the
checkout this folder sits in is used (put first on the path), so the nodes match the checkout even when
ComfyUI's Python has another promptkit installed; a copy of this folder outside a checkout uses the
installed promptkit (`pip install promptkit` into ComfyUI's Python).
"""

import os
import sys

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if os.path.isfile(os.path.join(_CHECKOUT, "promptkit", "comfy", "__init__.py")) and _CHECKOUT not in sys.path:
    sys.path.insert(0, _CHECKOUT)

from promptkit.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
