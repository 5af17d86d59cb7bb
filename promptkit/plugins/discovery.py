"""Whether any distribution on sys.path declares an entry point in the group ``promptkit``, without
importing importlib.metadata or pluggy (what `build` and `presets` would otherwise pay at every start).

It reads each ``*.dist-info``/``*.egg-info`` folder's ``entry_points.txt`` on sys.path for a
``[promptkit]`` section; when none has one, promptkit skips loading plugins for presets and filters.
"""

from __future__ import annotations

import os
import sys

SECTION = "[promptkit]"
_CACHE: dict[tuple[str, ...], bool] = {}


def plugins_installed() -> bool:
    """True when some entry_points.txt on sys.path has a ``[promptkit]`` section (cached per sys.path)."""
    key = tuple(sys.path)
    if key not in _CACHE:
        _CACHE[key] = any(_declares(folder) for folder in key)
    return _CACHE[key]


def _declares(folder: str) -> bool:
    try:
        entries = list(os.scandir(folder or "."))
    except OSError:
        return False
    for entry in entries:
        if entry.name.endswith((".dist-info", ".egg-info")) and entry.is_dir():
            try:
                with open(os.path.join(entry.path, "entry_points.txt"), encoding="utf-8") as handle:
                    if any(line.strip() == SECTION for line in handle):
                        return True
            except OSError:
                continue
    return False
