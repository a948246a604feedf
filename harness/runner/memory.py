"""Peak memory of a case: the CUDA allocator's peak, or the process high-water mark.

On Linux the kernel's high-water mark (``VmHWM`` in /proc/self/status) can be reset
by writing 5 to /proc/self/clear_refs; glibc's free lists are first returned with
``malloc_trim`` so the pre-case baseline is what is really live. Elsewhere the
fallback is ``ru_maxrss``, which cannot be reset: it reports growth beyond the
process's earlier maximum only, so it under-reports after a bigger case (the record
says which method was used).

``tensor_peak_bytes`` is the deterministic figure beside it on the CPU: one step under
``torch.profiler`` with ``profile_memory=True``, the raw CPU allocation records summed in
the order they were made; its running maximum is the peak of live tensor bytes (identical
to the byte across reruns, on 1.10 and the newest).
"""
import contextlib
import ctypes
import ctypes.util
import gc
import os
import resource
import sys
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from harness.precisions import COMPUTE_DTYPES
from harness.runner import profiler_session
from harness.runner.precision import torch_dtype

_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        _libc = None


def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _can_reset_hwm() -> bool:
    return os.access("/proc/self/clear_refs", os.W_OK) and _status_kib("VmHWM") is not None


_CUDA_WARM = False


def _warm_cuda_handles() -> None:
    """Create this process's cuBLAS handles and workspaces once, before any baseline.

    Builds that keep the cuBLAS workspace in the caching allocator allocate one per
    handle on its first matrix product and hold it for the process (32 MiB each on
    torch 2.11, H200), and autograd's backward thread has a handle of its own: without
    a forward and a backward product here, the first case of a worker counted them in
    its peak (72.5 MiB against 8.5 MiB for the same model as a later case; 42.4 MiB
    with the forward warmed alone)."""
    global _CUDA_WARM
    if _CUDA_WARM:
        return
    _CUDA_WARM = True
    for name in COMPUTE_DTYPES:
        try:
            a = torch.ones(8, 8, device="cuda", dtype=torch_dtype(name), requires_grad=True)
            (a @ a).sum().backward()
            torch.cuda.synchronize()
        except RuntimeError:  # a dtype this GPU or build lacks: nothing to warm
            pass


class PeakMemory:
    """``start()`` before the case, ``reset_peak()`` where peak tracking should begin,
    ``result()`` after: peak bytes above the pre-case baseline."""

    def __init__(self, device: str):
        self.device = device
        if device == "cuda":
            self.method = "cuda_allocator"
        elif _can_reset_hwm():
            self.method = "linux_vmhwm"
        else:
            self.method = "ru_maxrss"
        self.baseline_bytes = 0

    def _trim(self) -> None:
        if _libc is not None and hasattr(_libc, "malloc_trim"):
            _libc.malloc_trim(0)

    def start(self) -> None:
        if self.method == "cuda_allocator":
            _warm_cuda_handles()
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            self.baseline_bytes = torch.cuda.memory_allocated()
        elif self.method == "linux_vmhwm":
            self._trim()
            self.baseline_bytes = (_status_kib("VmRSS") or 0) * 1024
        else:
            self.baseline_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.reset_peak()

    def reset_peak(self) -> None:
        if self.method == "cuda_allocator":
            torch.cuda.reset_peak_memory_stats()
        elif self.method == "linux_vmhwm":
            self._trim()
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")

    def result(self) -> Dict:
        out = {"method": self.method, "baseline_bytes": self.baseline_bytes}
        if self.method == "cuda_allocator":
            torch.cuda.synchronize()
            out["peak_bytes"] = max(torch.cuda.max_memory_allocated() - self.baseline_bytes, 0)
            out["cuda_reserved_peak_bytes"] = torch.cuda.max_memory_reserved()
        elif self.method == "linux_vmhwm":
            out["peak_bytes"] = max((_status_kib("VmHWM") or 0) * 1024 - self.baseline_bytes, 0)
        else:
            out["peak_bytes"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                                    - self.baseline_bytes, 0)
        return out


#: Raw allocation records (allocation granularity, exact and repeatable on 1.10 and the newest).
TENSOR_PEAK_METHOD = "torch.profiler memory events"


def _running_peak(deltas) -> int:
    live = peak = 0
    for delta in deltas:
        live += delta
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def memory_session(record_shapes: bool = False):
    """A CPU profiler session recording allocations (``record_shapes``: the ops' input shapes too),
    read raw (``harness.runner.profiler_session``), with the cyclic collector off inside it (it would
    free earlier garbage at a time that differs from run to run). Yields the session's ``Recording``.
    Raises ``RuntimeError`` when this torch has no CPU memory profiler."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with profiler_session.session(record_shapes=record_shapes) as recording:
            yield recording
    finally:
        if gc_was_enabled:
            gc.enable()


def running_peak_of(fn: Callable[[], Any]) -> Tuple[int, str]:
    """(peak, method): the largest sum of CPU tensor bytes live at once while ``fn`` runs, counting from
    its start, in one ``memory_session``. Exact where everything ``fn`` frees it also made (a probe that
    builds its model inside ``fn``, in a fresh process). Raises ``RuntimeError`` when this torch has no
    CPU memory profiler."""
    with memory_session() as recording:
        fn()
    return _running_peak(recording.memory_deltas()), TENSOR_PEAK_METHOD


def tensor_peak_bytes(step: Callable[[], Any], seen: bool = False) -> Tuple[int, str]:
    """Run ``step`` in a ``memory_session``; return (peak, method): the largest
    sum of CPU tensor bytes allocated during the step and live at once (frees of tensors made before
    the step are not seen by the profiler), and how it was read. Raises ``RuntimeError`` when this
    torch has no CPU memory profiler.

    The figure comes from the second of two sessions: the profiler forgets nothing between sessions,
    so the first sees tensors of earlier work freed (or not) by chance; in the second, every free of
    the step's own previous tensors is known, and the figure repeats to the byte. The first session
    is never read: it costs the profiled step alone. ``seen``: the step has just run once in a
    ``memory_session`` already (the FLOPs count's step, ``flops.count_step(..., profile_memory=True)``),
    which serves as the first session."""
    if not seen:
        with memory_session():
            step()
    return running_peak_of(step)


def net_tensor_bytes(step: Callable[[], Any], n: int, device: str) -> int:
    """Net tensor bytes ``n`` calls of ``step`` allocated and left live: on the CPU the sum of the
    profiler's raw allocation records (frees of tensors the profiler saw allocated count, so call it
    once beforehand to make it learn the live ones), on CUDA the allocator's ``memory_allocated``."""
    if device == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        for _ in range(n):
            step()
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated() - start
    with profiler_session.session() as recording:
        for _ in range(n):
            step()
    return sum(recording.memory_deltas())
