"""A fixed CPU workload timed beside every sample, to measure how fast the machine is right now.

What it is, why a convolution, what the gate does with it (``time_basis``) and its figures
with their commands: docs/gate.md, "Time", "The speed probe" (and "The figures").
``harness.runner.timing.time_step`` runs it once right after each sample and keeps its
time (``probe_samples_s``, aligned with ``samples_s``). CPU only: ``make_probe("cuda")``
returns None.
"""
import time
from typing import Callable, Optional

import torch

#: Written into every record beside the probe's times; the gate compares probe-relative
#: times only between records whose probe has the same description.
DESCRIPTION = "conv2d 8->8 ch, 3x3, 24x24, float32: 24 timed calls after 16 untimed"
_WARMUP_CALLS = 16
_TIMED_CALLS = 24

_cached: Optional[Callable[[], float]] = None


def make_probe(device: str) -> Optional[Callable[[], float]]:
    """The probe for ``device`` (built once per process), or None where there is none.

    Calling it returns the seconds its timed calls took.
    """
    global _cached
    if device != "cpu":
        return None
    if _cached is None:
        gen = torch.Generator().manual_seed(1234)
        x = torch.randn(1, 8, 24, 24, generator=gen)  # (b, c, h, w)
        w = torch.randn(8, 8, 3, 3, generator=gen) / 9.0
        conv2d = torch.nn.functional.conv2d
        clock = time.perf_counter

        def probe() -> float:
            with torch.no_grad():
                # Untimed first: right after scalar code (a sleep, a busy-wait) the same 24
                # calls took 11% longer than right after a model step (vector units and
                # clocks settling); after 16 untimed calls the three agreed within 3%.
                # Measured once, by hand, while choosing the warm-up: no benchmark in the
                # repository repeats it; benchmarks/bench_gate.py --faults slow10 shows
                # its effect (the probe-relative ratio against the plain one).
                for _ in range(_WARMUP_CALLS):
                    conv2d(x, w, padding=1)
                t0 = clock()
                for _ in range(_TIMED_CALLS):
                    conv2d(x, w, padding=1)
                return clock() - t0

        probe()  # first call: oneDNN primitive creation, not part of any sample
        _cached = probe
    return _cached
