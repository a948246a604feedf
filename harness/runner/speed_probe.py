"""A fixed CPU workload timed beside every sample, to measure how fast the machine is right now.

On a shared machine the speed of the CPU changes by tens of percent from second to
second (another tenant on the sibling hyperthread, frequency changes): on the 2-core
CI machine kind, the median of the same case moved by 20% (sd of the log) between
rounds, so an A/B run with ten rounds a side could not tell a 10% slowdown from noise.
Those changes hit every workload at once: timing three tiny zoo steps and this probe
alternately for 100 s in one process, the log of each step's median over windows of 41
steps correlated with the probe's at r = 0.95-0.98, and the windowed median of the
per-sample ratio step / probe spread 3.6-6.1 times less than the step's own (sd of the
log 0.03-0.05 against 0.15-0.21).

So ``harness.runner.timing.time_step`` runs the probe once right after each sample and keeps
its time (``probe_samples_s``, aligned with ``samples_s``); the gate reports the change
of step time *relative to the probe* and, with ``time_basis = "probe"``, tests it (see
``harness.analysis.gate``). Through the A/B runner (68 cases, 8 rounds a side) that
cut a case's spread between rounds from 0.20 to 0.07 (sd of the log); what remains is
each process's own speed for each case, which more samples do not shrink. It is not
the default because the probe is not fully independent of the code before it: its
first version, timed from its first call, ran 1.4-2.0 ms instead of 0.9-1.3 ms after a
busy-wait injected into every step, so a case 1.24x slower read 0.77x against it. The
probe now runs untimed calls before its timed ones (see ``make_probe``). The probe is a
small float32 convolution stack: convolutions are what most zoo models spend their
time in, and a matrix-multiply or pure-Python probe tracked the models less closely.
It never touches the model, allocates ~40 KiB once (input, weights and output:
8 x 24 x 24 and 8 x 8 x 3 x 3 float32), and costs about 1.7 ms a sample.

The figures, measured on the 2-core shared CI machine kind, and the commands that
measure them again (other machines give other numbers):

- 20% between rounds, and 0.20 -> 0.07 with the probe (68 cases of
  ``scenarios/gate_bench.toml``, 8 rounds a side): the "round spread" lines (step,
  step/probe) of ``python benchmarks/bench_gate.py --faults slow10 --fault-models all
  --rounds 8``; its "scenario" and "scenario +probe" sensitivity rows show what ten
  rounds, or fewer, detect of the 10% slowdown with and without the probe;
- r = 0.95-0.98, 3.6-6.1 times less, 0.03-0.05 against 0.15-0.21:
  ``python benchmarks/bench_speed_probe.py --seconds 100`` (columns ``r(probe)``,
  ``gain``, ``sd(log step/probe)`` and ``sd(log step)``);
- 1.4-2.0 ms after a busy-wait, 1.24x read as 0.77x: measured with the first version
  of the probe (no untimed calls) by ``python benchmarks/bench_gate.py --faults slow10``;
  the present probe warms up, so the command no longer reproduces it;
- about 1.7 ms a sample: "one whole call" in the output of
  ``python benchmarks/bench_timing.py``.

CPU only: on CUDA the step is timed by events on the GPU, where the host's
neighbours matter far less, so ``make_probe("cuda")`` returns None.
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
