"""How faithful and how cheap is the harness's timing? Prints the figures.

1. Ratio of medians: the same model step timed in one process by the harness
   (``harness.runner.timing.time_step``, without the speed probe) and by
   ``torch.utils.benchmark.Timer.blocked_autorange``, ``--rounds`` times each in the
   order of ``harness.commands.ab.round_order``: A B B A A B ... (A: the harness, B:
   Timer), so each round's pair swaps who goes first and a drift of the machine that is
   linear in time cancels over every two rounds. Printed: each round's medians and
   ratio, the ratio of the medians and the median of the per-round ratios. Goal: within 3%.
2. Per-case overhead: a real scenario (``--scenario``, default smoke; ``--only`` narrows
   it) run through the manager and worker. For every ok record: its ``wall_s`` (taken by
   the manager around the round trip to the worker) minus the warm-up and the timed
   iterations. That includes, per case: the speed probe run after every sample on the
   CPU (``harness.runner.speed_probe``: its timed calls, recorded in
   ``probe_samples_s``, and its untimed warm-up calls), the model builds, the fidelity
   step, the fp32 reference pass, the accuracy comparison and the round trip to the
   worker. It does not include the first worker's start-up (before the first case's
   clock starts) or writing the record (after ``wall_s`` is taken); after a crash or a
   timeout the next case's ``wall_s`` does include a fresh worker's start-up (a run
   with no failed case has none, and the figure says how many failed). Goal: median
   under 0.3 s. Printed beside it, measured separately:

   - the speed probe's part of each case: its recorded timed calls, scaled to whole
     probe calls by the ratio (whole call / timed part) measured in this process, and
     the overhead without it; and one whole probe call (the probe's cost per sample);
   - the worker's start-up: ``--worker-starts`` fresh workers (the scenario's thread
     count and backend) timed from launch to ready;
   - the run's fixed cost: the scenario run's wall time minus the sum of its cases'
     ``wall_s`` (a worker start-up, loading the scenario, writing the records).

    python benchmarks/bench_timing.py [--model cbam_classifier_tiny] [--rounds 5] [--scenario smoke] [--threads 1]
    python benchmarks/bench_timing.py --rounds 2 --min-run-s 0.2 --only model=cbam_classifier_tiny  # smallest
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.commands.ab import round_order  # noqa: E402  (standard library only)

#: Which side of ``round_order`` measures what.
SIDES = {"A": "harness", "B": "blocked_autorange"}


def interleave(rounds: int, measure: Callable[[str], float]) -> Tuple[List[float], List[float], str]:
    """Call ``measure(side)`` for ``rounds`` rounds a side in ``round_order`` (A B B A A B ...).

    Returns (A's results, B's results, the order as text); round i is (A[i], B[i]),
    measured back to back.
    """
    seq = round_order(rounds)
    got: Dict[str, List[float]] = {"A": [], "B": []}
    for side in seq:
        got[side].append(measure(side))
    return got["A"], got["B"], "".join(seq)


def overhead_parts(rec: Dict, probe_scale: float) -> Dict[str, float]:
    """A record's per-case overhead, and the speed probe's estimated part of it.

    ``probe_scale``: whole probe call / its timed part (the probe also runs untimed
    warm-up calls, which no record holds).
    """
    t = rec["timing"]
    overhead = rec["wall_s"] - t["warmup_s"] - t["timed_s"]
    probe = sum(t.get("probe_samples_s") or []) * probe_scale
    return {"overhead_s": overhead, "probe_s": probe, "rest_s": overhead - probe}


def run_fixed_cost(run_wall_s: float, records: Sequence[Dict]) -> float:
    """What a run costs beyond its cases' ``wall_s``: worker start-up, scenario loading, record writing."""
    return run_wall_s - sum(r["wall_s"] for r in records)


def _quantiles(values: Sequence[float]) -> str:
    v = sorted(values)
    return "median %.3f s, p90 %.3f s, max %.3f s" % (statistics.median(v), v[int(0.9 * (len(v) - 1))], v[-1])


def _train_step(name: str, batch_size: int):
    import torch

    import models

    model = models.create_model(name)
    models.init_parameters(model, 0)
    spec = models.get_spec(name)
    inputs, target = model.example_inputs(batch_size, spec.default_sizes[0], models.SeededGenerator(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        model.loss(model(*inputs), target).backward()
        optimizer.step()

    return step


def ratio_of_medians(name: str, batch_size: int, rounds: int, min_run_s: float) -> None:
    import torch
    from torch.utils import benchmark

    from harness.runner import timing

    step = _train_step(name, batch_size)

    def measure(side: str) -> float:
        if side == "A":
            out = timing.time_step(step, warmup_iters=3, warmup_s=0.1, min_sample_s=0.02, samples=25, budget_s=60)
            return statistics.median(out["samples_s"])
        # Timer runs with one thread unless told: give it the same count as ours.
        return benchmark.Timer(stmt="step()", globals={"step": step},
                               num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_s).median

    ours, theirs, order = interleave(rounds, measure)
    print("model %s, batch %d, torch %s, %d threads; order %s (A = %s, B = %s)" % (
        name, batch_size, torch.__version__, torch.get_num_threads(), " ".join(order), SIDES["A"], SIDES["B"]))
    for i, (a, b) in enumerate(zip(ours, theirs), 1):
        print("  round %d (%s first): harness %.3f ms   blocked_autorange %.3f ms   ratio %.3f" % (
            i, SIDES[order[2 * (i - 1)]], a * 1e3, b * 1e3, a / b))
    ratio = statistics.median(ours) / statistics.median(theirs)
    print("ratio of medians (harness / blocked_autorange): %.3f  (%+.1f%%; goal within 3%%)" % (
        ratio, (ratio - 1) * 100))
    # Each round times both back to back, so its ratio cancels slower drift of the machine.
    paired = statistics.median(a / b for a, b in zip(ours, theirs))
    print("median of per-round ratios: %.3f  (%+.1f%%)" % (paired, (paired - 1) * 100))


def probe_cost(calls: int = 20) -> Tuple[float, float]:
    """(whole speed-probe call / its timed part, seconds of a whole call), measured in this
    process: medians of ``calls`` calls."""
    from harness.runner import speed_probe

    probe = speed_probe.make_probe("cpu")
    ratios, whole = [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        timed = probe()
        whole.append(time.perf_counter() - t0)
        ratios.append(whole[-1] / timed)
    return statistics.median(ratios), statistics.median(whole)


def worker_start_s(scenario: str, starts: int) -> List[float]:
    """Seconds from launching a worker (the scenario's threads and backend) to its ready message."""
    from harness.runner.worker_process import Worker
    from harness.scenario import spec as scen

    sc = scen.load(scen.resolve_path(scenario))
    out = []
    for _ in range(starts):
        t0 = time.perf_counter()
        worker = Worker(sc.measure["threads"], sc.backend)
        try:
            worker.start()
            out.append(time.perf_counter() - t0)
        finally:
            worker.close()
    return out


def per_case_overhead(scenario: str, only: Sequence[str], starts: int) -> None:
    from harness.commands.run import run_scenario

    with tempfile.TemporaryDirectory() as out:
        lines: List[str] = []
        t0 = time.perf_counter()
        code = run_scenario(scenario, out_dir=out, env_label="bench", only=list(only), print_fn=lines.append)
        run_wall = time.perf_counter() - t0
        path = os.path.join(out, "bench.jsonl")
        recs = []
        if os.path.exists(path):
            with open(path) as fh:
                recs = [json.loads(line) for line in fh]
    ok = [r for r in recs if r["status"] == "ok"]
    if not ok:
        print("no ok cases to measure (run_scenario exit code %d)" % code)
        return
    scale, call_s = probe_cost()
    parts = [overhead_parts(r, scale) for r in ok]
    failed = [r for r in recs if r["status"] in ("crashed", "timeout")]
    print("scenario %s%s: %d cases (%d ok), wall %.1f s in all (run_scenario: %.1f s)" % (
        scenario, " (%s)" % " ".join(only) if only else "", len(recs), len(ok), sum(r["wall_s"] for r in recs),
        run_wall))
    print("per-case overhead, with the speed probe, without the worker start-up%s: %s  (goal: median under 0.3 s)"
          % (" (but %d crashed or timed-out cases: the case after each includes a fresh worker's)" % len(failed)
             if failed else "", _quantiles([p["overhead_s"] for p in parts])))
    print("  of which the speed probe after each sample: %s  (recorded timed calls x %.2f, the whole call / "
          "timed part measured here; one whole call %.2f ms)" % (
              _quantiles([p["probe_s"] for p in parts]), scale, 1e3 * call_s))
    print("  the overhead without the speed probe: %s" % _quantiles([p["rest_s"] for p in parts]))
    if starts:
        times = worker_start_s(scenario, starts)
        print("worker start-up (once per run; in no per-case figure but that of the case after a crash or a "
              "timeout): median %.3f s of %d starts (%s)" % (
                  statistics.median(times), len(times), ", ".join("%.2f" % t for t in times)))
    print("the run's fixed cost beyond its cases (a worker start-up, scenario loading, record writing): %.3f s"
          % run_fixed_cost(run_wall, recs))


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cbam_classifier_tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side of the ratio (order A B B A ...)")
    parser.add_argument("--min-run-s", type=float, default=0.5, help="blocked_autorange's min_run_time")
    parser.add_argument("--scenario", default="smoke")
    parser.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2",
                        help="keep the scenario's matching cases only (as `harness run --only`); repeatable")
    parser.add_argument("--worker-starts", type=int, default=3, help="worker start-ups to time (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the in-process comparison")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    import torch

    torch.set_num_threads(args.threads)
    ratio_of_medians(args.model, args.batch_size, args.rounds, args.min_run_s)
    per_case_overhead(args.scenario, args.only, args.worker_starts)


if __name__ == "__main__":
    main()
