"""What a generation backend is: a torch-free Protocol and the plain dataclasses it speaks.

A new model family or a remote backend is a new class that satisfies `Backend`; nothing
here imports torch, diffusers or the library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..inputs.request import RunInputs
    from ..params import GenerationParams


@dataclass
class EngineOptions:
    """Device, dtype and the memory/speed switches; all off by default unless the device needs them."""

    device: str | None = None  # cuda, mps, cpu; None picks
    dtype: str | None = None  # float16, bfloat16, float32; None picks
    allow_pickle: bool = False
    cpu_offload: bool = False
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    compile: bool = False
    config: str | None = None  # a diffusers folder with the configs of a single .safetensors file (offline)
    quantize: str | None = None  # flow-matching families: "int8" (torchao weight-only); approximate, recorded

    def key(self) -> tuple:
        return tuple(sorted(self.__dict__.items()))


@dataclass
class BatchResult:
    """One pipeline call's images, the seconds it took, and what was run (size, mode, timings)."""

    images: list[Any]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A loaded model that promptkit can run batches on.

    `load` builds one from a model reference; `encode` turns a prompt pair into the keyword
    arguments the model's call takes (cached per prompt); `run_batch` makes one image per seed.
    """

    model: str
    family: str
    load_seconds: float

    @classmethod
    def load(cls, model: str, options: EngineOptions | None = None) -> "Backend":
        """Load MODEL with OPTIONS (device, dtype, memory switches)."""
        ...

    def check_request(self, extra: dict[str, Any]) -> None:
        """Refuse, in one line, what this model cannot do, before any work."""
        ...

    def encode(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        """The prompt's embeddings, as keyword arguments of the model's call."""
        ...

    def run_batch(self, positive: str, negative: str, seeds: list[int], params: "GenerationParams",
                  profile: bool = False, inputs: "RunInputs | None" = None) -> BatchResult:
        """Generate one image per seed, in one call."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model, hash, family, device, dtype and library versions, for the record."""
        ...

    def free_memory(self) -> None:
        """Release what the backend can (caches, device memory) after an eviction or a failure."""
        ...
