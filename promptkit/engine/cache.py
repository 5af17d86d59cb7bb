"""Loaded pipelines, kept by whoever runs jobs, the least recently used dropped when memory is short.

A warm engine (`worker.EngineWorker`) owns one `PipelineCache`; an in-process run uses the
process's default one (`default_cache()`). Imports no torch until memory is probed or freed.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections import OrderedDict
from typing import Callable

from .backend import Backend, EngineOptions

DEFAULT_MAX_ENTRIES = 2  # pipelines kept when free memory cannot be measured (CPU, MPS)
DEFAULT_MIN_FREE_BYTES = 4 << 30  # on CUDA: below this much free memory, load only after evicting

Loader = Callable[[str, EngineOptions], Backend]
MemoryProbe = Callable[[], "int | None"]


def cuda_free_bytes() -> int | None:
    """Free CUDA memory in bytes, or None when there is no CUDA device (or torch is not loaded yet)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return int(free)


def release_memory() -> None:
    """Collect what dropped pipelines held and hand CUDA's cached blocks back."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _default_loader(model: str, options: EngineOptions) -> Backend:
    return load_diffusers_backend(model, options)


def load_diffusers_backend(model: str, options: EngineOptions) -> Backend:
    """The backend MODEL needs: the flow-matching engine for SD 3.5, FLUX.1, FLUX.2 klein, Z-Image, Qwen-Image
    and Chroma (by the folder's pipeline class or a file's tensor names), else the Stable Diffusion engine."""
    from .flow import FlowEngine, flow_family

    if flow_family(model, options) is not None:
        return FlowEngine(model, options)
    from .stable_diffusion import Engine

    return Engine(model, options)


def get_backend(model: str, options: EngineOptions | None = None, cache: "PipelineCache | None" = None) -> Backend:
    """The backend for MODEL from CACHE (the process's default cache when none is given), of the right kind."""
    return (cache if cache is not None else default_cache()).get(model, options or EngineOptions())


class PipelineCache:
    """Backends keyed by (model, options), most recently used last.

    Before a new one loads, the least recently used are evicted while memory is short: when
    MEMORY_PROBE reports free bytes (CUDA), while fewer than MIN_FREE_BYTES are free; when it
    reports None, while MAX_ENTRIES are already loaded. An explicit MAX_ENTRIES applies in both cases.

    :param max_entries: most pipelines kept; None means DEFAULT_MAX_ENTRIES when memory cannot be measured.
    :param min_free_bytes: free device memory below which a load evicts first.
    :param memory_probe: returns free device bytes or None; `cuda_free_bytes` by default.
    :param loader: builds a backend from (model, options); `load_diffusers_backend` (by the model's family) by default.
    """

    def __init__(self, max_entries: int | None = None, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
                 memory_probe: MemoryProbe | None = None, loader: Loader | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"`max_entries` must be at least 1 but is {max_entries}")
        self.max_entries = max_entries
        self.min_free_bytes = min_free_bytes
        self.memory_probe = memory_probe or cuda_free_bytes
        self.loader = loader or _default_loader
        self._entries: OrderedDict[tuple, Backend] = OrderedDict()
        self._lock = threading.RLock()

    @staticmethod
    def key(model: str, options: EngineOptions) -> tuple:
        return (model, options.key())

    def get(self, model: str, options: EngineOptions | None = None, loader: Loader | None = None) -> Backend:
        """The backend for MODEL with OPTIONS: the loaded one (now the most recent), else loaded after
        evicting while memory is short."""
        options = options or EngineOptions()
        key = self.key(model, options)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            while self._entries and self.memory_short():
                self.evict_oldest()
            backend = (loader or self.loader)(model, options)
            self._entries[key] = backend
            return backend

    def memory_short(self) -> bool:
        """Whether one more pipeline would not fit (see the class docstring)."""
        free = self.memory_probe()
        if self.max_entries is not None and len(self._entries) >= self.max_entries:
            return True
        if free is None:
            return len(self._entries) >= DEFAULT_MAX_ENTRIES if self.max_entries is None else False
        return free < self.min_free_bytes

    def evict_oldest(self) -> str | None:
        """Drop the least recently used pipeline and free its memory; returns its model, or None if empty."""
        with self._lock:
            if not self._entries:
                return None
            (model, _options), backend = self._entries.popitem(last=False)
            del backend
            release_memory()
            return model

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            release_memory()

    def models(self) -> list[str]:
        """The loaded models, least recently used first."""
        with self._lock:
            return [model for model, _options in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


_DEFAULT: PipelineCache | None = None


def default_cache() -> PipelineCache:
    """The cache of runs that own none (an in-process `generate`, `Engine.get`): one per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PipelineCache()
    return _DEFAULT
