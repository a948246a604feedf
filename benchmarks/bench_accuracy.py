"""What the float64-calibrated accuracy check costs and says, in figures.

1. ``overhead``: every tiny zoo model (train and eval, fp32, batch 2) run through
   ``execute.run_case`` twice per round, with and without the float64 reference (switched off
   by making it fail, which is the fixed-tolerance fallback path), interleaved in one process
   so that the machine's drift hits both arms alike; prints the median ``overhead_s`` of each
   arm and the median added per case (the issue's budget: <= 0.3 s median per case).
2. ``records``: for record folders given with ``--records``, accuracy failures per
   environment and the worst ratio to the expected error per precision and environment, with
   the case that gave it.

Usage: ``python benchmarks/bench_accuracy.py [--rounds 2] [--records results/default ...]``
"""
import argparse
import glob
import json
import os
import statistics
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def overhead(rounds: int, patterns):
    import torch

    import models
    from harness.runner import execute
    from harness.scenario import spec as scenario

    torch.set_num_threads(1)
    measure = dict(scenario.MEASURE_DEFAULTS, warmup_iters=1, warmup_s=0.02, min_sample_s=0.01, samples=5,
                   case_budget_s=2.0)
    settings = {"measure": measure, "tolerance": dict(scenario.TOLERANCE_DEFAULTS)}
    real = execute._reference

    def without_float64(case, seed, wide, options=None):
        if wide:
            raise RuntimeError("float64 reference switched off by benchmarks/bench_accuracy.py")
        return real(case, seed, wide, options)

    cases = [dict(model=name, mode=mode, batch_size=2, size=models.get_spec(name).default_sizes[0],
                  precision="fp32", checkpoint="none", device="cpu")
             for name in models.list_models(patterns) for mode in ("train", "eval")]
    with_s, without_s = [], []
    for rnd in range(rounds):
        for case in cases:
            pair = {}
            for arm in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
                execute._reference = real if arm == "on" else without_float64
                execute.SHARED_REFERENCES.clear()  # each arm makes its own references: their cost is measured
                r = execute.run_case(case, settings)
                if r["status"] == "ok":
                    pair[arm] = r["overhead_s"]
            execute._reference = real
            if len(pair) == 2:
                with_s.append(pair["on"])
                without_s.append(pair["off"])
        print("round %d/%d: %d cases" % (rnd + 1, rounds, len(with_s) // (rnd + 1)), flush=True)
    print("torch %s, %d tiny-zoo cases x %d rounds (interleaved): overhead_s median with the float64 reference "
          "%.3f s, without %.3f s; added per case: median %.3f s, max %.3f s" % (
              torch.__version__, len(cases), rounds, statistics.median(with_s), statistics.median(without_s),
              statistics.median([a - b for a, b in zip(with_s, without_s)]),
              max(a - b for a, b in zip(with_s, without_s))))


def records(folders):
    fails, ok, worst = defaultdict(int), defaultdict(int), {}
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
            for line in open(path, encoding="utf-8"):
                r = json.loads(line)
                if r["status"] != "ok" or not r.get("accuracy"):
                    continue
                env, acc, c = r.get("env_label"), r["accuracy"], r["case"]
                ok[env] += 1
                fails[env] += not acc["passed"]
                key = (c["precision"], env)
                if acc.get("ratio") is not None and acc["ratio"] > worst.get(key, (-1,))[0]:
                    worst[key] = (acc["ratio"], acc.get("limit"), c["model"], c["mode"], c["checkpoint"],
                                  acc.get("worst"))
    for env in sorted(ok):
        print("%-14s ok %4d  accuracy failed %3d" % (env, ok[env], fails[env]))
    for (precision, env), (ratio, limit, model, mode, ckpt, where) in sorted(worst.items()):
        print("  %-9s %-14s worst ratio %6.3g (limit %s)  %s %s ckpt=%s %s" % (
            precision, env, ratio, limit, model, mode, ckpt, where))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="rounds of the overhead comparison (default 2)")
    p.add_argument("--models", default="*_tiny", help="model glob of the overhead comparison (default *_tiny)")
    p.add_argument("--records", nargs="*", default=[], help="record folders to summarise (skips the overhead)")
    args = p.parse_args(argv)
    if args.records:
        records(args.records)
    else:
        overhead(args.rounds, [args.models])
    return 0


if __name__ == "__main__":
    sys.exit(main())
