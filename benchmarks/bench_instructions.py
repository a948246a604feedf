"""Are the harness's instruction counts right and repeatable? Measures it and prints the figures.

1. Repeatability: one case is run ``--processes`` times (default 3), each a fresh
   ``python -m harness run --instructions`` (its own counting worker under valgrind); printed:
   each process's instructions per step and tensor peak, and their spread ((max - min) / min).
2. Agreement: the same step (built by ``harness.runner.execute``, its first step taken
   uncounted, as the harness does) counted by PyTorch's own ``torch.utils.benchmark.Timer.collect_callgrind``
   in its own valgrind process; printed: its count per step and its ratio to the harness's
   median (goal: within 1%).

Run it with the Python of the environment to measure (the tests' environments, say)::

    PYTHONPATH=. .nox/tests-torch-1-10/bin/python benchmarks/bench_instructions.py
    PYTHONPATH=. .nox/tests-torch-latest/bin/python benchmarks/bench_instructions.py --model attention_mha_tiny

Needs valgrind. Each process costs ``import torch`` under valgrind (about 30 s on torch 1.10,
100-140 s on the newest on the 2-core machine) plus the case.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCENARIO = """[scenario]
name = "bench_instructions"

[matrix]
model = ["{model}"]
mode = ["{mode}"]
batch_size = [{batch}]
size = ["default"]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]

[measure]
samples = 3
threads = 1
instructions = true
instructions_repeats = {repeats}
"""

#: Timer's setup: the case's step exactly as the harness builds it and its first step taken
#: (uncounted in the harness too), one thread.
TIMER_SETUP = """
import json
import torch
torch.set_num_threads(1)
from harness.runner import execute
case = json.loads({case!r})
model, inputs, target, step, step_keep, _ = execute.case_step(case, 0)
torch.manual_seed(0)
step()
"""


def harness_counts(args, tmp: str) -> list:
    """(instructions per step, tensor peak bytes, case) of each fresh process."""
    path = os.path.join(tmp, "bench_instructions.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(SCENARIO.format(model=args.model, mode=args.mode, batch=args.batch, repeats=args.repeats))
    out = []
    for i in range(args.processes):
        folder = os.path.join(tmp, "p%d" % i)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "harness", "run", path, "--out", folder, "--env-label", "e"],
                              cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit("harness run failed:\n%s%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
        with open(os.path.join(folder, "e.jsonl"), encoding="utf-8") as fh:
            rec = json.loads(fh.readline())
        counted = rec.get("instructions") or {}
        if counted.get("status") != "ok":
            sys.exit("no count: %s" % counted)
        out.append((counted["per_iter"], rec["memory"]["tensor_peak_bytes"], rec["case"]))
        print("process %d: %s instructions/step (repeats %s), tensor peak %s bytes, %.0f s" % (
            i + 1, "{:,.0f}".format(counted["per_iter"]), ", ".join("{:,.0f}".format(x) for x in
                                                                 counted["repeats_per_iter"]),
            "{:,}".format(rec["memory"]["tensor_peak_bytes"]), time.perf_counter() - t0), flush=True)
    return out


def timer_count(case: dict, number: int) -> float:
    """Instructions per step by ``Timer.collect_callgrind`` (its own valgrind subprocess)."""
    import torch.utils.benchmark as benchmark

    # torch 1.10's collect_callgrind starts the first `python` on PATH, not sys.executable.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ["PYTHONPATH"] = ROOT + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    timer = benchmark.Timer(stmt="step()", setup=TIMER_SETUP.format(case=json.dumps(case)), num_threads=1)
    stats = timer.collect_callgrind(number=number, repeats=1)
    stats = stats[0] if isinstance(stats, tuple) else stats
    return stats.counts(denoise=False) / float(stats.number_per_run)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cbam_classifier_tiny")
    parser.add_argument("--mode", default="train", choices=("train", "eval"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--processes", type=int, default=3, help="fresh harness processes (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="the harness's instructions_repeats (default 2)")
    parser.add_argument("--number", type=int, default=3, help="steps Timer.collect_callgrind counts (default 3)")
    args = parser.parse_args(argv)
    import torch

    print("torch %s, Python %s, %s %s b%d fp32 cpu" % (torch.__version__, sys.version.split()[0], args.model,
                                                        args.mode, args.batch), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        runs = harness_counts(args, tmp)
    counts = [c for c, _, _ in runs]
    peaks = [p for _, p, _ in runs]
    middle = statistics.median(counts)
    print("harness: median %s instructions/step; spread over %d processes %.2e; tensor peaks %s (spread %.2e)" % (
        "{:,.0f}".format(middle), len(runs), (max(counts) - min(counts)) / min(counts),
        sorted(set(peaks)), (max(peaks) - min(peaks)) / min(peaks)), flush=True)
    t0 = time.perf_counter()
    reference = timer_count(runs[0][2], args.number)
    print("Timer.collect_callgrind(number=%d): %s instructions/step, %.0f s; harness / Timer = %.4f" % (
        args.number, "{:,.0f}".format(reference), time.perf_counter() - t0, middle / reference), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
