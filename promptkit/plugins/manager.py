"""Finding, loading and asking plugins: entry points in the group ``promptkit``, loaded on first use.

Nothing imports this at `promptkit --help`: the CLI loads plugins only for `promptkit plugins`, for
a command name it does not know, and for a model reference with a scheme (``openai:NAME``);
presets and template filters load them when a template is rendered or presets are listed.
A plugin that fails to import, or whose hook raises, is reported in one line (on stderr, once,
and in `promptkit plugins`) and skipped; promptkit goes on without it.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ModelProblem
from .hookspecs import ENTRY_POINT_GROUP, HOOKS, PROJECT, BackendSpec, PromptkitHooks

if TYPE_CHECKING:
    from ..engine.backend import Backend, EngineOptions
    from ..engine.cache import PipelineCache

BUILTIN = "builtin"
# `openai:dall-e-3`: a scheme of two or more letters (so `C:\models` stays a Windows path), no `//`.
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_+.-]+):(?!//)(.+)$")


def model_scheme(model: str) -> str | None:
    """The backend scheme MODEL names (``openai`` for ``openai:NAME``), or None for a path or hub id.
    Pure text: loads no plugin."""
    match = SCHEME.match(str(model or "").strip())
    if not match:
        return None
    from pathlib import Path

    if Path(model).expanduser().exists():
        return None  # a local file or folder whose name has a colon
    return match.group(1).lower()


@dataclass
class PluginInfo:
    """One plugin as `promptkit plugins` lists it."""

    name: str
    value: str  # the entry point's target, "module" or "module:attr"
    distribution: str | None = None  # "name version"
    location: str | None = None  # the module's file, else where the distribution lives
    status: str = "loaded"  # loaded | failed
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Plugins:
    """The loaded plugins (the built-in one first) and what their hooks provide."""

    def __init__(self, entry_points: list[Any] | None = None, report: Callable[[str], None] | None = None) -> None:
        import pluggy

        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(PromptkitHooks)
        self.infos: list[PluginInfo] = []
        self.report = report or (lambda line: sys.stderr.write(f"promptkit: {line}\n"))
        from . import builtin

        self.pm.register(builtin, name=BUILTIN)
        self.infos.append(PluginInfo(BUILTIN, builtin.__name__, "promptkit", builtin.__file__))
        for ep in _entry_points() if entry_points is None else entry_points:
            self._load(ep)
        self._provided: dict[str, list[tuple[str, Any]]] = {}
        for info in self.infos:
            if info.status == "loaded":
                info.provides = self._provides(info.name)

    # -- loading ----------------------------------------------------------------------
    def _load(self, ep: Any) -> None:
        dist = getattr(ep, "dist", None)
        label = f"{dist.name} {dist.version}" if dist is not None else None
        info = PluginInfo(ep.name, ep.value, label)
        self.infos.append(info)
        if any(other.name == ep.name and other is not info for other in self.infos):
            info.status, info.error = "failed", f"another plugin is already named {ep.name!r}"
        else:
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
                info.location = getattr(plugin, "__file__", None) or getattr(sys.modules.get(ep.module), "__file__",
                                                                              None)
            except Exception as exc:  # a broken plugin must not stop promptkit
                info.status, info.error = "failed", _one_line(exc)
        if info.location is None and dist is not None:
            try:
                info.location = str(dist.locate_file(""))
            except Exception:  # noqa: BLE001 - only for display
                pass
        if info.error:
            self.report(f"plugin {ep.name!r} ({label or ep.value}) skipped: {info.error}")

    def _provides(self, name: str) -> dict[str, list[str]]:
        plugin = self.pm.get_plugin(name)
        provides: dict[str, list[str]] = {}
        for hook in HOOKS:
            impl = getattr(plugin, hook, None)
            if impl is None:
                continue
            try:
                items = impl() or []
            except Exception as exc:  # noqa: BLE001
                info = next(i for i in self.infos if i.name == name)
                info.error = f"{hook} failed: {_one_line(exc)}"
                self.report(f"plugin {name!r}: {info.error}; its {hook[10:].replace('_', ' ')} are skipped")
                continue
            self._provided_items(hook).extend((name, item) for item in (items.items() if isinstance(items, dict)
                                                                         else items))
            provides[hook[len("promptkit_"):]] = [_item_name(item) for item in items]
        return provides

    def _provided_items(self, hook: str) -> list[tuple[str, Any]]:
        return self._provided.setdefault(hook, [])

    # -- what the plugins provide ---------------------------------------------------------
    def backends(self) -> dict[str, BackendSpec]:
        """Backends by scheme; the first plugin to claim a scheme keeps it (the built-in one first)."""
        out: dict[str, BackendSpec] = {}
        for _name, spec in self._provided_items("promptkit_backends"):
            out.setdefault(spec.scheme.lower(), spec)
        return out

    def backend_for(self, model: str) -> BackendSpec:
        """The backend that serves MODEL: by its scheme, else the built-in diffusers one."""
        from .builtin import DEFAULT_SCHEME

        scheme = model_scheme(model) or DEFAULT_SCHEME
        backends = self.backends()
        if scheme not in backends:
            known = ", ".join(f"{s}:" for s in sorted(backends) if s != DEFAULT_SCHEME) or "none installed"
            raise ModelProblem(f"model {model!r}: no backend for the scheme {scheme!r} (plugin backends: {known}; "
                               "see `promptkit plugins`)")
        return backends[scheme]

    def backend_for_family(self, family: str) -> BackendSpec | None:
        """The backend that runs the model family FAMILY (a `promptkit.families` key), or None."""
        return next((spec for spec in self.backends().values() if family in spec.families), None)

    def presets(self) -> list[dict[str, Any]]:
        return [dict(item, plugin=name) for name, item in self._provided_items("promptkit_presets")
                if isinstance(item, dict)]

    def template_filters(self) -> dict[str, Callable[..., Any]]:
        return {key: value for _name, (key, value) in self._provided_items("promptkit_template_filters")}

    def judges(self) -> list[Any]:
        return [item for _name, item in self._provided_items("promptkit_judges")]

    def cli_commands(self) -> dict[str, Any]:
        return {command.name: command for _name, command in self._provided_items("promptkit_cli_commands")}

    def failures(self) -> list[str]:
        return [f"{info.name}: {info.error}" for info in self.infos if info.error]

    def listing(self) -> list[dict[str, Any]]:
        return [info.to_dict() for info in self.infos]


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    seen: set[tuple[str, str]] = set()
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (ep.name, ep.value) not in seen:  # the same distribution seen twice on sys.path
            seen.add((ep.name, ep.value))
            found.append(ep)
    return found


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _item_name(item: Any) -> str:
    if isinstance(item, str):
        return item  # a template filter's name (the hook returns a dict)
    if isinstance(item, BackendSpec):
        return f"{item.scheme}:"
    if isinstance(item, dict):
        return f"{item.get('kind', '?')}/{item.get('name', '?')}"
    return str(getattr(item, "name", None) or getattr(item, "__name__", None) or type(item).__name__)


_LOCK = threading.Lock()
_PLUGINS: Plugins | None = None


def get_plugins() -> Plugins:
    """The process's plugins, loaded on the first call."""
    global _PLUGINS
    with _LOCK:
        if _PLUGINS is None:
            _PLUGINS = Plugins()
        return _PLUGINS


def reset_plugins() -> None:
    """Forget the loaded plugins (the next `get_plugins` scans the entry points again): for tests."""
    global _PLUGINS
    with _LOCK:
        _PLUGINS = None


def check_plugin_model(model: str) -> str | None:
    """For a model reference with a scheme: its backend's scheme, after checking one is installed
    (and the backend's own `check_model`, when it has one); None for paths and hub ids."""
    scheme = model_scheme(model)
    if scheme is None:
        return None
    spec = get_plugins().backend_for(model)
    check = getattr(spec.load, "check_model", None) if not isinstance(spec.load, str) else None
    if check is not None:
        check(model)
    return scheme


def load_backend(model: str, options: "EngineOptions | None" = None, cache: "PipelineCache | None" = None
                 ) -> "Backend":
    """The backend for MODEL (by its scheme) from CACHE (the process's default one), loaded on a miss."""
    from ..engine.backend import EngineOptions
    from ..engine.cache import default_cache

    if model_scheme(model) is None:  # the built-in diffusers backend, without scanning plugins
        from ..engine.cache import load_diffusers_backend as loader  # SD, or the flow-matching families
    else:
        loader = get_plugins().backend_for(model).loader()
    return (cache if cache is not None else default_cache()).get(model, options or EngineOptions(), loader=loader)
