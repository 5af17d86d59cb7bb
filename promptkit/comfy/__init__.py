"""promptkit's ComfyUI node pack: Build Prompt, Load Prompt, Save to Library and A/B Variant.

ComfyUI loads a folder in `ComfyUI/custom_nodes/` as a package and reads its `NODE_CLASS_MAPPINGS` and
`NODE_DISPLAY_NAME_MAPPINGS`. Install it with the repository's `comfyui/` folder (a symlink into
`custom_nodes/`, see README "ComfyUI"), or a one-line `__init__.py` there:

    from promptkit.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

Importing this imports neither ComfyUI nor torch. The imports are absolute, so the folder also works
when ComfyUI loads it under a name of its own (a symlink to this folder), as long as promptkit is
importable by ComfyUI's Python.
"""

from promptkit.comfy.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
