"""The machine's measured matmul peak: what a case's achieved FLOP/s is a fraction of.

Measured once per environment run and device (the manager asks the first worker, not every
worker start), in the worker's thread setting (``[measure] threads``), for each dtype the
precisions compute in (``harness.precisions.COMPUTE_DTYPES``: float32, bfloat16, float16;
amp precisions in their low dtype). For each dtype: square ``n x n`` matrix products,
``n`` doubled from ``START_N`` until one product takes ``TARGET_PRODUCT_S`` or ``n`` reaches
the device's cap, then repeated for about ``budget_s``; the peak is the best repeat's FLOP/s
(2 n^3 per product). A dtype this build cannot multiply (float16 on 1.10's CPU) says why
instead. The backend flags the worker pinned (TF32 on CUDA) are in force, as they are for the
cases.
"""
import time
from typing import Any, Callable, Dict, Iterable, Tuple

from harness.precisions import COMPUTE_DTYPES

DTYPES = COMPUTE_DTYPES
START_N = 128
TARGET_PRODUCT_S = 0.02
MAX_N = {"cpu": 2048, "cuda": 8192}
METHOD = "best of repeated n x n torch.mm, 2 n^3 FLOPs per product"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _product_s(a, b, device: str) -> float:
    """Seconds of one ``a @ b``, the device synchronized around it."""
    import torch

    _sync(device)
    start = time.perf_counter()
    torch.mm(a, b)
    _sync(device)
    return time.perf_counter() - start


def matmul_peak(device: str, dtype_name: str, budget_s: float = 0.5) -> Dict[str, Any]:
    """``{"flops_per_s", "n", "repeats", "seconds"}`` of square matrix products of ``dtype_name``
    on ``device``, or ``{"error"}`` when this build cannot multiply them."""
    # here, not at the top: the manager imports this module for ``measure_in`` only
    import torch

    from harness.runner.precision import torch_dtype

    dtype = torch_dtype(dtype_name)
    start = time.perf_counter()
    try:
        n = START_N
        while True:
            gen = torch.Generator().manual_seed(0)
            a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
            b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
            torch.mm(a, b)  # first call: kernel selection, allocation
            took = _product_s(a, b, device)
            spent = time.perf_counter() - start
            if took >= TARGET_PRODUCT_S or n >= MAX_N.get(device, 2048) or spent + 8 * took > budget_s:
                break
            n *= 2
        best, repeats = took, 1
        while True:
            elapsed = time.perf_counter() - start
            if (repeats >= 3 and elapsed >= budget_s) or elapsed >= 4 * budget_s:
                break
            best = min(best, _product_s(a, b, device))
            repeats += 1
    except (RuntimeError, TypeError) as exc:
        return {"error": "%s: %s" % (type(exc).__name__, str(exc).strip().split("\n")[0][:200]),
                "seconds": time.perf_counter() - start}
    return {"flops_per_s": 2.0 * n ** 3 / best, "n": n, "repeats": repeats, "seconds": time.perf_counter() - start}


def measure(device: str, budget_s: float = 0.5) -> Dict[str, Any]:
    """The record's ``roofline`` part for ``device``: the matmul peak of each dtype in ``DTYPES``."""
    import torch

    start = time.perf_counter()
    return {"device": device, "threads": torch.get_num_threads(), "method": METHOD,
            "matmul": {name: matmul_peak(device, name, budget_s) for name in DTYPES},
            "wall_s": time.perf_counter() - start}


#: Seconds the manager waits for a worker's roofline (three dtypes of about a second each).
TIMEOUT_S = 120.0


def measure_in(worker, ask: Callable, devices: Iterable[str], print_fn=print) -> Tuple[Dict[str, Dict], bool]:
    """In the manager: ask ``worker`` (through ``ask``, ``manager.ask_worker``) for the roofline of each
    device once; return ``{device: part}`` and whether the worker can take the cases. A failure is
    the part's ``error``, never the run's."""
    out: Dict[str, Dict] = {}
    for device in sorted(devices):
        result, usable = ask(worker, {"roofline": True, "device": device}, {}, TIMEOUT_S)
        if result.get("status") in ("crashed", "timeout"):
            result = {"device": device, "error": "%s: %s" % (result["status"], result.get("reason"))}
        out[device] = result
        peaks = ", ".join("%s %s" % (k, "%.3g GFLOP/s" % (v["flops_per_s"] / 1e9) if v.get("flops_per_s") else "-")
                          for k, v in (result.get("matmul") or {}).items())
        print_fn("roofline %s (%s threads): %s" % (device, result.get("threads"), peaks or result.get("error")))
        if not usable:
            return out, False
    return out, True
