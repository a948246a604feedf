"""A fixed CPU workload timed beside every sample, to measure how fast the machine is right now.

On a shared machine the speed of the CPU changes by tens of percent from second to
second (another tenant on the sibling hyperthread, frequency changes): on the 2-core
CI machine kind, the median of the same case moved by 20% (sd of the log) between
rounds, so an A/B run with ten rounds a side could not tell a 10% slowdown from noise.
Those changes hit every workload at once: timing three tiny zoo steps and this probe
alternately for 100 s in one process (``benchmarks/bench_speed_probe.py``), the log of
each step's median over windows of 41 steps correlated with the probe's at r =
0.95-0.98, and the windowed median of the per-sample ratio step / probe spread 3.6-6.1
times less than the step's own (sd of the log 0.03-0.05 against 0.15-0.21).

So ``harness.timing.time_step`` runs the probe once right after each sample and keeps
its time (``probe_samples_s``, aligned with ``samples_s``); the gate can then compare
step times *relative to the probe* (see ``harness.analysis.gate``). The probe is a
small float32 convolution stack: convolutions are what most zoo models spend their
time in, and a matrix-multiply or pure-Python probe tracked the models less closely.
It never touches the model, allocates ~40 KiB once, and costs about 1 ms a sample.

CPU only: on CUDA the step is timed by events on the GPU, where the host's
neighbours matter far less, so ``make_probe("cuda")`` returns None.
"""
from typing import Callable, Optional

import torch

#: Written into every record beside the probe's times; the gate compares probe-relative
#: times only between records whose probe has the same description.
DESCRIPTION = "conv2d 8->8 ch, 3x3, 24x24, float32, 24 calls"
_CALLS = 24

_cached: Optional[Callable[[], None]] = None


def make_probe(device: str) -> Optional[Callable[[], None]]:
    """The probe for ``device`` (built once per process), or None where there is none."""
    global _cached
    if device != "cpu":
        return None
    if _cached is None:
        gen = torch.Generator().manual_seed(1234)
        x = torch.randn(1, 8, 24, 24, generator=gen)  # (b, c, h, w)
        w = torch.randn(8, 8, 3, 3, generator=gen) / 9.0
        conv2d = torch.nn.functional.conv2d

        def probe() -> None:
            with torch.no_grad():
                for _ in range(_CALLS):
                    conv2d(x, w, padding=1)

        probe()  # first call: oneDNN primitive creation, not part of any sample
        _cached = probe
    return _cached
