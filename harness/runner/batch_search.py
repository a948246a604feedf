"""The largest batch that fits, in the manager: the search of a case whose batch size is ``max``.

Doubling from ``[max_batch] start`` while probes fit (never above ``limit``), then bisection
between the largest batch that fitted and the smallest that did not. Each probe is one fresh
worker (``harness.runner.batch_probe``) that builds the case at that batch size and takes two
steps, so an out-of-memory error, or the kernel killing the worker, costs that probe only.

A probe fits when it ran (``ok``) and its memory stayed within the cap; it does not fit when it
needed more than the cap or ran out of memory (``oom``). Anything else (an error, unsupported,
crashed, timeout) ends the search: the record takes that probe's status, with the largest batch
that fitted before it. The search's answer is the record's ``max_batch`` part; the record has no
timing or accuracy (a normal case with that batch size measures those).
"""
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness.runner.worker_process import Worker
from harness.units import format_bytes

GIB = 1 << 30


def cap_bytes(device: str, settings: Dict[str, Any]) -> Optional[int]:
    """The cap of ``device`` from the ``[max_batch]`` settings; None: the device's own memory."""
    gib = settings["cpu_cap_gib"] if device == "cpu" else settings["cuda_cap_gib"]
    return int(gib * GIB) if gib else None


def _fits(probe: Dict[str, Any], cap: Optional[int]) -> Optional[bool]:
    """True (fits), False (needs more than the cap, or ran out of memory), None (the search cannot go on)."""
    if probe["status"] == "oom":
        return False
    if probe["status"] != "ok":
        return None
    return cap is None or probe["peak_bytes"] <= cap


def _unfit_reason(probe: Dict[str, Any], cap: Optional[int]) -> str:
    if probe["status"] == "oom":
        return probe.get("reason") or "out of memory"
    return "needs %s, %s over the cap of %s" % (format_bytes(probe["peak_bytes"]),
                                                 format_bytes(probe["peak_bytes"] - cap), format_bytes(cap))


def search(probe: Callable[[int], Dict[str, Any]], start: int, limit: int, cap: Optional[int],
           print_fn: Callable[[str], None] = print) -> Dict[str, Any]:
    """Search with ``probe`` (batch size -> the probe's result, as ``batch_probe.probe_case`` gives it);
    return the record's measured part: ``status``, ``reason`` and ``max_batch``."""
    t0 = time.perf_counter()
    probes: List[Dict[str, Any]] = []

    def take(batch: int) -> Optional[bool]:
        got = dict(probe(batch), batch_size=batch)
        fits = _fits(got, cap)
        got["fits"] = fits
        probes.append(got)
        if fits is None:
            verdict = "%s: %s" % (got["status"], (got.get("reason") or "")[:100])
        else:
            verdict = "fits" if fits else "does not fit (%s)" % _unfit_reason(got, cap)
        print_fn("      probe batch %-6d %s%s, %.1f s" % (
            batch, verdict, "" if fits is False or got.get("peak_bytes") is None
            else " (%s)" % format_bytes(got["peak_bytes"]), got.get("wall_s") or 0.0))
        return fits

    fitted, unfit, failed = 0, None, None
    batch = start
    while True:  # doubling
        fits = take(batch)
        if fits is None:
            failed = probes[-1]
            break
        if not fits:
            unfit = batch
            break
        fitted = batch
        if batch >= limit:
            break
        batch = min(2 * batch, limit)
    while failed is None and unfit is not None and unfit - fitted > 1:  # bisection
        mid = (fitted + unfit) // 2
        fits = take(mid)
        if fits is None:
            failed = probes[-1]
        elif fits:
            fitted = mid
        else:
            unfit = mid
    by_batch = {p["batch_size"]: p for p in probes}
    if failed is not None:
        limited_by = "failed"
    elif unfit is None:
        limited_by = "limit"
    else:
        limited_by = "oom" if by_batch[unfit]["status"] == "oom" else "cap"
    criterion = next((p.get("criterion") for p in probes if p.get("criterion")), None)
    part = {"batch_size": fitted, "limited_by": limited_by, "first_unfit": unfit, "cap_bytes": cap,
            "criterion": criterion, "peak_bytes": by_batch[fitted]["peak_bytes"] if fitted else None,
            "start": start, "limit": limit,
            "probes": [{k: p.get(k) for k in ("batch_size", "status", "fits", "peak_bytes", "rss_peak_bytes",
                                              "reason", "wall_s")} for p in probes],
            "search_s": time.perf_counter() - t0}
    result: Dict[str, Any] = {"status": "ok", "reason": None, "max_batch": part}
    if failed is not None:
        result["status"] = failed["status"]
        result["reason"] = "probe at batch %d: %s%s" % (failed["batch_size"], failed.get("reason") or "",
                                                         "; batch %d fitted" % fitted if fitted else "")
    elif not fitted:
        result["status"] = "oom"
        result["reason"] = "batch %d does not fit: %s" % (unfit, _unfit_reason(by_batch[unfit], cap))
    return result


def probe_in_fresh_worker(worker_factory: Callable[[], Worker], ask: Callable, case: Dict[str, Any],
                          settings: Dict[str, Any], timeout_s: float, cap: Optional[int]
                          ) -> Tuple[Callable[[int], Dict[str, Any]], Dict[str, Any]]:
    """A ``probe`` function for ``search`` that runs each probe in a fresh worker (``worker_factory``;
    ``ask(worker, case, settings, timeout_s, probe)`` -> (result, worker still usable), as the manager
    asks a worker for a case), and a dict whose ``env`` is the last worker's environment."""
    seen: Dict[str, Any] = {"env": None}

    def probe(batch: int) -> Dict[str, Any]:
        worker = worker_factory()
        try:
            seen["env"] = worker.env.get(case["device"]) or worker.env.get("cpu")
            result, _ = ask(worker, dict(case, batch_size=batch), settings, timeout_s, {"cap_bytes": cap})
        finally:
            worker.close()
        return result

    return probe, seen
