"""The pipeline cache (least recently used first out when memory is short) and the engine's import boundary."""

import gc
import subprocess
import sys
import weakref

import pytest

from promptkit.engine.backend import EngineOptions
from promptkit.engine.cache import PipelineCache


class FakeBackend:
    def __init__(self, model: str, options: EngineOptions) -> None:
        self.model, self.options = model, options


class Memory:
    """A memory probe the test sets: free bytes, or None (not measurable)."""

    def __init__(self, free=None) -> None:
        self.free = free

    def __call__(self):
        return self.free


def make_cache(**kwargs) -> tuple[PipelineCache, list[str]]:
    loads: list[str] = []

    def loader(model, options):
        loads.append(model)
        return FakeBackend(model, options)

    return PipelineCache(loader=loader, **kwargs), loads


def test_a_model_loads_once_per_options():
    cache, loads = make_cache(memory_probe=Memory(None))
    first = cache.get("a", EngineOptions(device="cpu"))
    assert cache.get("a", EngineOptions(device="cpu")) is first
    assert cache.get("a", EngineOptions(device="cpu", vae_tiling=True)) is not first
    assert loads == ["a", "a"]


def test_least_recently_used_is_evicted_at_the_entry_limit():
    cache, loads = make_cache(max_entries=2, memory_probe=Memory(None))
    cache.get("a")
    cache.get("b")
    cache.get("a")  # a is now the most recent: b goes first
    cache.get("c")
    assert cache.models() == ["a", "c"]
    cache.get("b")
    assert cache.models() == ["c", "b"]
    assert loads == ["a", "b", "c", "b"]


def test_unmeasurable_memory_keeps_two_by_default():
    cache, _ = make_cache(memory_probe=Memory(None))
    for model in "abc":
        cache.get(model)
    assert cache.models() == ["b", "c"]


def test_short_memory_evicts_before_loading_and_drops_the_pipeline():
    memory = Memory(free=10 << 30)
    cache, _ = make_cache(memory_probe=memory, min_free_bytes=2 << 30)
    kept = weakref.ref(cache.get("a"))
    cache.get("b")
    cache.get("c")  # plenty free: nothing evicted, however many are loaded
    assert cache.models() == ["a", "b", "c"]
    memory.free = 1 << 30  # short: the least recently used go until there is room (or none is left)
    cache.get("d")
    assert cache.models() == ["d"]
    gc.collect()
    assert kept() is None  # the evicted pipeline is no longer held by anything


def test_short_memory_evicts_one_at_a_time_until_enough_is_free():
    memory = Memory(free=1 << 30)
    cache, _ = make_cache(memory_probe=memory, min_free_bytes=2 << 30)
    memory.free = 10 << 30
    cache.get("a")
    cache.get("b")
    frees = iter([1 << 30, 5 << 30])  # evicting "a" frees enough
    cache.memory_probe = lambda: next(frees)
    cache.get("c")
    assert cache.models() == ["b", "c"]


def test_limits_are_checked():
    with pytest.raises(ValueError, match="max_entries"):
        PipelineCache(max_entries=0)


def test_importing_the_engine_loads_no_library():
    """The engine is a boundary: it imports nothing from promptkit.library, nor sqlite_utils."""
    code = ("import sys, promptkit.engine; "
            "print(sorted(m for m in sys.modules if m.startswith(('sqlite_utils', 'promptkit.library'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_engine_get_uses_the_cache_it_is_given_even_when_empty():
    from promptkit.engine import Engine, default_cache

    class Loaded(Engine):
        @classmethod
        def load(cls, model, options=None):
            return FakeBackend(model, options)

    cache = PipelineCache(memory_probe=Memory(None))
    backend = Loaded.get("a", EngineOptions(), cache=cache)
    assert isinstance(backend, FakeBackend) and Loaded.get("a", EngineOptions(), cache=cache) is backend
    assert cache.models() == ["a"] and "a" not in default_cache().models()
