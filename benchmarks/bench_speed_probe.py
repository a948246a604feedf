"""Does the speed probe track the machine's speed? Measures it and prints the figures.

In one process, for ``--seconds``, it times alternately the probe of
``harness.runner.speed_probe`` and one step of a few tiny zoo cases (the same steps the
runner times), then cuts the series into windows of ``--window`` rounds (about one
case's timed window) and prints, per model: the spread (sd of the log) of its windowed
median step time, the correlation of that log with the probe's, and the spread of the
windowed median of the per-sample ratio step / probe, which is what the gate tests.
A probe that tracks the machine leaves the ratio's spread far below the step's own.

    python benchmarks/bench_speed_probe.py [--seconds 150] [--window 41] [--threads 1]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from harness.runner import execute, speed_probe  # noqa: E402

CASES = (("cbam_classifier_tiny", "eval"), ("mswr_net_tiny", "train"), ("attention_mha_tiny", "train"))


def build_steps():
    steps = {}
    for name, mode in CASES:
        case = dict(model=name, mode=mode, batch_size=2, size=32, precision="fp32", checkpoint="none",
                    device="cpu", channels_last=False, compile=False)
        model, inputs, target = execute._build(case, 0, True)
        steps["%s %s" % (name, mode)] = execute._make_step(model, inputs, target, case, True)[0]
    return steps


def record(steps, probe, seconds: float):
    """Per round: the probe's time and each step's time, in seconds."""
    clock = time.perf_counter
    series = {name: [] for name in ["probe"] + list(steps)}
    end = clock() + seconds
    while clock() < end:
        series["probe"].append(probe())  # it times its own calls, after untimed ones
        for name, step in steps.items():
            t0 = clock()
            step()
            series[name].append(clock() - t0)
    return {k: np.asarray(v) for k, v in series.items()}


def windowed_log_median(values: np.ndarray, window: int) -> np.ndarray:
    n = len(values) // window
    return np.log([np.median(values[i * window:(i + 1) * window]) for i in range(n)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=150.0, help="how long to record (default 150)")
    p.add_argument("--window", type=int, default=41, help="rounds per window, like a case's samples (default 41)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the shipped scenarios)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = build_steps()
    probe = speed_probe.make_probe("cpu")
    print("recording %.0f s: probe (%s) and %s, alternately" % (args.seconds, speed_probe.DESCRIPTION,
                                                                 ", ".join(steps)))
    series = record(steps, probe, args.seconds)
    n = len(series["probe"])
    lp = windowed_log_median(series["probe"], args.window)
    print("%d rounds, %d windows of %d; probe median %.3f ms, sd(log windowed median) %.3f" % (
        n, len(lp), args.window, 1e3 * np.median(series["probe"]), lp.std()))
    print("%-28s %10s %14s %12s %18s %8s" % ("case", "median", "sd(log step)", "r(probe)", "sd(log step/probe)",
                                              "gain"))
    for name in steps:
        ls = windowed_log_median(series[name], args.window)
        lr = windowed_log_median(series[name] / series["probe"], args.window)
        print("%-28s %8.2f ms %14.3f %12.2f %18.3f %7.1fx" % (
            name, 1e3 * np.median(series[name]), ls.std(), np.corrcoef(ls, lp)[0, 1], lr.std(), ls.std() / lr.std()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
