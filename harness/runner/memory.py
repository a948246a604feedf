"""Peak memory of a case: the CUDA allocator's peak, or the process high-water mark.

On Linux the kernel's high-water mark (``VmHWM`` in /proc/self/status) can be reset
by writing 5 to /proc/self/clear_refs; glibc's free lists are first returned with
``malloc_trim`` so the pre-case baseline is what is really live. Elsewhere the
fallback is ``ru_maxrss``, which cannot be reset: it reports growth beyond the
process's earlier maximum only, so it under-reports after a bigger case (the record
says which method was used).
"""
import ctypes
import ctypes.util
import os
import resource
import sys
from typing import Dict, Optional

import torch

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
