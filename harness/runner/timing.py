"""Timing one step: warm-up, calibrated iterations per sample, raw samples kept.

Like ``torch.utils.benchmark``'s ``blocked_autorange``, each sample times a block of
``iters_per_sample`` iterations so it lasts well above timer resolution, and every
sample is kept (``samples_s``: seconds per iteration in that block). On CUDA the
block is bracketed by events and synchronised. A per-case budget bounds the timed
work: a step far slower than planned takes fewer samples (at least one) and the
result says so in ``reduced``.

With a ``probe`` (``harness.runner.speed_probe``), the probe runs once right after each sample
and the time it reports is kept in ``probe_samples_s``, aligned with ``samples_s``: how
fast the machine was at that moment, for the gate's probe-relative comparison.
"""
import math
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch


def _quantile(sorted_values: List[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default), without numpy.
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_s: List[float], batch_size: int) -> Dict[str, float]:
    """Median, IQR and throughput (items of the batch per second) of raw samples."""
    ordered = sorted(samples_s)
    median_s = statistics.median(ordered)
    return {
        "median_s": median_s,
        "iqr_s": _quantile(ordered, 0.75) - _quantile(ordered, 0.25),
        "throughput_per_s": batch_size / median_s if median_s > 0 else float("inf"),
    }


class _Timer:
    """Wall clock on the CPU; CUDA events (with a synchronise) on the GPU."""

    def __init__(self, device: str, clock: Callable[[], float] = time.perf_counter):
        self.cuda = device == "cuda"
        self.clock = clock

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def block(self, step: Callable[[], None], iters: int) -> float:
        """Seconds for ``iters`` calls of ``step``."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                step()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
        t0 = self.clock()
        for _ in range(iters):
            step()
        return self.clock() - t0


def time_step(step: Callable[[], None], device: str = "cpu", warmup_iters: int = 2, warmup_s: float = 0.05,
              min_sample_s: float = 0.02, samples: int = 7, budget_s: float = 10.0, done_iters: int = 0,
              clock: Callable[[], float] = time.perf_counter, probe: Optional[Callable[[], float]] = None,
              probe_description: Optional[str] = None) -> Dict:
    """Warm up, calibrate and sample ``step``; return raw samples and the plan used.

    ``done_iters`` counts iterations already run (the accuracy step) toward warm-up.
    ``probe``, when given, runs once after each sample and returns the seconds it
    measured (``probe_samples_s``); it does not count toward ``budget_s``.
    """
    timer = _Timer(device, clock)
    timer.sync()
    n, t0 = done_iters, clock()
    per_iter_s = None
    while n < warmup_iters or (clock() - t0) < warmup_s or per_iter_s is None:
        dt = timer.block(step, 1)
        per_iter_s = dt if per_iter_s is None else min(per_iter_s, dt)
        n += 1
        if clock() - t0 > budget_s:  # a pathologically slow step: stop warming up
            break
    warm_elapsed_s = clock() - t0
    iters = max(1, int(math.ceil(min_sample_s / max(per_iter_s, 1e-9))))
    planned = samples
    affordable = int(budget_s // max(per_iter_s * iters, 1e-9))
    reduced = None
    if affordable < samples:
        planned = max(1, affordable)
        reduced = "budget: %d of %d samples (step %.3g s, case budget %.3g s)" % (
            planned, samples, per_iter_s, budget_s)
    raw: List[float] = []
    probe_raw: List[float] = []
    timed_s = 0.0
    for _ in range(planned):
        t_sample = clock()
        raw.append(timer.block(step, iters) / iters)
        timed_s += clock() - t_sample
        if probe is not None:
            probe_raw.append(probe())
    out = {"samples_s": raw, "iters_per_sample": iters, "warmup_iters": n, "warmup_s": warm_elapsed_s,
           "timed_s": timed_s, "reduced": reduced,
           "probe_samples_s": probe_raw if probe is not None else None,
           "probe": probe_description if probe is not None else None}
    return out
