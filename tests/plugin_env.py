"""Installing a plugin into the test process: a `*.dist-info` folder with an `entry_points.txt` on sys.path
(what `pip install` leaves behind), so importlib.metadata finds its entry points in the group `promptkit`."""

from __future__ import annotations

import importlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPENAI_PLUGIN = REPO / "plugins" / "promptkit-openai"


def install_dist(folder: Path, name: str, version: str, entry_points: dict[str, str]) -> Path:
    """Write NAME-VERSION.dist-info into FOLDER with ENTRY_POINTS (entry name -> target) in group promptkit."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = ["[promptkit]", *(f"{key} = {value}" for key, value in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return info


def activate(monkeypatch, *folders: Path) -> None:
    """Put FOLDERS first on sys.path and make promptkit scan its plugins afresh (undone after the test)."""
    from promptkit.plugins.manager import reset_plugins

    for folder in folders:
        monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    reset_plugins()
    monkeypatch.setattr("promptkit.plugins.manager._PLUGINS", None)  # restored (to None) afterwards as well
