"""Numbers that are identical on every PyTorch and NumPy version.

``torch.manual_seed`` streams differ between releases and devices, so weights and
inputs drawn from them cannot be compared across environments. This generator is a
counter-based hash (SplitMix64 finaliser over ``seed`` and the element index) done in
NumPy integer arithmetic, which every NumPy release computes bit for bit alike; the
normal draws use Box-Muller on two such uniforms. Tensors are made in float64 and
cast once, so the same ``(seed, stream, shape)`` gives the same values everywhere.
"""
import zlib
from typing import Sequence, Tuple, Union

import numpy as np
import torch

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
Shape = Union[int, Sequence[int]]


def _mix64(x: np.ndarray) -> np.ndarray:
    # SplitMix64 finaliser; uint64 arithmetic wraps modulo 2**64 by definition.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stream_id(name: str) -> int:
    """A stable 32-bit id for a named stream (a parameter name, an input name)."""
    return zlib.crc32(name.encode("utf-8"))


def _shape(shape: Shape) -> Tuple[int, ...]:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


class SeededGenerator:
    """Draw version-stable tensors; every call takes a fresh sub-stream.

    ``gen.normal((2, 3))`` twice gives two different tensors, but the sequence of
    calls from the same seed gives the same tensors on any version.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._calls = 0

    def _uniform64(self, shape: Shape, stream: int) -> np.ndarray:
        n = int(np.prod(_shape(shape), dtype=np.int64))
        with np.errstate(over="ignore"):
            base = _mix64(np.uint64(self.seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(stream))
            idx = np.arange(n, dtype=np.uint64)
            bits = _mix64(idx * np.uint64(0xD1B54A32D192ED03) + base)
        # Top 53 bits give a uniform double in [0, 1).
        return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)

    def _next_stream(self, name: str = "") -> int:
        self._calls += 1
        return (stream_id(name) * 1000003 + self._calls) & 0xFFFFFFFF

    def uniform_np(self, shape: Shape, low: float = 0.0, high: float = 1.0, name: str = "") -> np.ndarray:
        u = self._uniform64(shape, self._next_stream(name))
        return (low + (high - low) * u).reshape(_shape(shape))

    def normal_np(self, shape: Shape, std: float = 1.0, name: str = "") -> np.ndarray:
        stream = self._next_stream(name)
        u1 = self._uniform64(shape, stream)
        u2 = self._uniform64(shape, stream ^ 0x5BD1E995)
        z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
        return (std * z).reshape(_shape(shape))

    def uniform(self, shape: Shape, low: float = 0.0, high: float = 1.0, dtype=torch.float32) -> torch.Tensor:
        """Uniform floats in [low, high)."""
        return _to_tensor(self.uniform_np(shape, low, high), dtype)

    def normal(self, shape: Shape, std: float = 1.0, dtype=torch.float32) -> torch.Tensor:
        """Normal floats with mean 0 and standard deviation ``std``."""
        return _to_tensor(self.normal_np(shape, std), dtype)

    def integers(self, low: int, high: int, shape: Shape) -> torch.Tensor:
        """Integers in [low, high) as int64."""
        if high <= low:
            raise ValueError("integers needs high > low, got low=%d high=%d" % (low, high))
        u = self.uniform_np(shape)
        values = np.minimum(low + np.floor(u * (high - low)), high - 1).astype(np.int64)
        return torch.tensor(values.tolist(), dtype=torch.int64).reshape(_shape(shape))


def _to_tensor(values: np.ndarray, dtype) -> torch.Tensor:
    # torch.from_numpy on float64 then .to(dtype): one rounding, same on every build.
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)


def init_parameters(module: torch.nn.Module, seed: int = 0) -> None:
    """Re-draw every non-constant parameter from the version-stable generator.

    Parameters whose default initialisation is constant (norm weights, zero biases)
    keep it; the rest become uniform in +-1/sqrt(fan_in), PyTorch's default bound for
    linear and conv layers. Each parameter's stream comes from its name, so adding a
    layer does not change the others. A model from another source is drawn by its library
    model's own names (``seeded_module``), as that library would name them.
    """
    module = getattr(module, "seeded_module", module)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.numel() == 0:
                continue
            flat = param.detach().reshape(-1)
            if param.numel() > 1 and bool((flat == flat[0]).all()):
                continue
            if param.numel() == 1:
                continue
            fan_in = param.shape[1] * int(np.prod(param.shape[2:])) if param.dim() > 1 else param.shape[0]
            bound = 1.0 / float(np.sqrt(max(int(fan_in), 1)))
            gen = SeededGenerator(seed * 7919 + stream_id(name))
            values = gen.uniform_np(tuple(param.shape), -bound, bound)
            param.copy_(_to_tensor(values, param.dtype))
