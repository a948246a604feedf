"""How faithful and how cheap is the harness's timing? Prints the figures.

1. Ratio of medians: the same model step timed in one process by the harness
   (``harness.runner.timing.time_step``) and by ``torch.utils.benchmark.Timer.blocked_autorange``,
   alternating A B A B so drift hits both alike. Goal: within 3%.
2. Per-case overhead: a real scenario run through the manager and worker; for every
   ok record, its wall time minus the warm-up and timed iterations (model builds,
   reference pass, accuracy comparison, the round trip to the worker, writing the
   record). Goal: median under 0.3 s.

    python benchmarks/bench_timing.py [--model cbam_classifier_tiny] [--rounds 5] [--scenario smoke] [--threads 1]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch.utils import benchmark  # noqa: E402

import models  # noqa: E402
from harness.commands.run import run_scenario  # noqa: E402
from harness.runner import timing  # noqa: E402


def _train_step(name: str, batch_size: int):
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
    step = _train_step(name, batch_size)
    ours, theirs = [], []
    for _ in range(rounds):
        out = timing.time_step(step, warmup_iters=3, warmup_s=0.1, min_sample_s=0.02, samples=25, budget_s=60)
        ours.append(statistics.median(out["samples_s"]))
        # Timer runs with one thread unless told: give it the same count as ours.
        m = benchmark.Timer(stmt="step()", globals={"step": step},
                            num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_s)
        theirs.append(m.median)
    print("model %s, batch %d, torch %s, %d threads" % (name, batch_size, torch.__version__, torch.get_num_threads()))
    for i, (a, b) in enumerate(zip(ours, theirs), 1):
        print("  round %d: harness %.3f ms   blocked_autorange %.3f ms   ratio %.3f" % (i, a * 1e3, b * 1e3, a / b))
    ratio = statistics.median(ours) / statistics.median(theirs)
    print("ratio of medians (harness / blocked_autorange): %.3f  (%+.1f%%; goal within 3%%)" % (
        ratio, (ratio - 1) * 100))
    # Each round times both back to back, so its ratio cancels slower drift of the machine.
    paired = statistics.median(a / b for a, b in zip(ours, theirs))
    print("median of per-round ratios: %.3f  (%+.1f%%)" % (paired, (paired - 1) * 100))


def per_case_overhead(scenario: str) -> None:
    with tempfile.TemporaryDirectory() as out:
        lines = []
        run_scenario(scenario, out_dir=out, env_label="bench", print_fn=lines.append)
        with open(os.path.join(out, "bench.jsonl")) as fh:
            recs = [json.loads(line) for line in fh]
    overheads = [r["wall_s"] - r["timing"]["warmup_s"] - r["timing"]["timed_s"] for r in recs if r["status"] == "ok"]
    walls = [r["wall_s"] for r in recs]
    if not overheads:
        print("no ok cases to measure")
        return
    overheads.sort()
    print("scenario %s: %d cases (%d ok), wall %.1f s in all" % (scenario, len(recs), len(overheads), sum(walls)))
    print("per-case overhead: median %.3f s, p90 %.3f s, max %.3f s  (goal: median under 0.3 s)" % (
        statistics.median(overheads), overheads[int(0.9 * (len(overheads) - 1))], overheads[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cbam_classifier_tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-s", type=float, default=0.5)
    parser.add_argument("--scenario", default="smoke")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the in-process comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ratio_of_medians(args.model, args.batch_size, args.rounds, args.min_run_s)
    per_case_overhead(args.scenario)


if __name__ == "__main__":
    main()
