"""What a case costs besides its measurement, and whether that moved: two checkouts side by side.

Runs the same slice of a scenario (default: ``scenarios/default.toml``, ``--only`` the models
given) with ``python -m harness run`` in two checkouts of this repository: the base (``--base
REV``, a ``git worktree`` made under the system temporary folder and removed at the end) and
this working tree (or ``--head REV``, another such worktree). The rounds interleave (base,
head, head, base, ...) so that the machine's drift falls on both alike; each run is a fresh
process of the same interpreter (``--python``: an environment with torch, e.g.
``.nox/tests-torch-1-10/bin/python``). Printed per side and round: the run's wall time, the
median per-case ``overhead_s`` (everything but warm-up and timed samples) of the ok cases, the
share of warm-up and timed samples in the cases' time, and, where the records have them, the
median seconds of each extra (``extras.seconds``). Then whether the two sides' accuracy
verdicts are identical, case by case (status, ``accuracy.passed``, ratio, rule).

    python benchmarks/bench_case_overhead.py --base HEAD~1 --python .nox/tests-torch-latest/bin/python \\
        --models cbam_classifier_tiny,attention_gqa_tiny --rounds 2
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tree: str, python: str, scenario: str, models: str, out: str) -> Tuple[float, List[Dict]]:
    """(wall seconds, records) of one run of the slice in ``tree``."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [python, "-m", "harness", "run", scenario, "--only", "model=" + models, "--out", out,
           "--env-label", "e"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=dict(os.environ, PYTHONPATH=tree), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit("%s failed in %s:\n%s" % (" ".join(cmd), tree, proc.stderr[-2000:]))
    with open(os.path.join(out, "e.jsonl"), encoding="utf-8") as fh:
        return wall, [json.loads(line) for line in fh if line.strip()]


def _figures(wall: float, records: List[Dict]) -> Dict:
    ok = [r for r in records if r["status"] == "ok"]
    timed = sum(r["timing"]["warmup_s"] + r["timing"]["timed_s"] for r in ok)
    spent = sum(r["duration_s"] for r in ok)
    extras: Dict[str, List[float]] = {}
    for r in ok:
        for name, seconds in ((r.get("extras") or {}).get("seconds") or {}).items():
            extras.setdefault(name, []).append(seconds)
    return {"wall_s": wall, "cases": len(records), "ok": len(ok),
            "overhead_median_s": statistics.median(r["overhead_s"] for r in ok) if ok else None,
            "timed_share": timed / spent if spent else None,
            "extras_median_s": {k: statistics.median(v) for k, v in sorted(extras.items())}}


def _verdicts(records: List[Dict]) -> Dict[str, Tuple]:
    out = {}
    for r in records:
        acc = r.get("accuracy") or {}
        out[r["case_key"]] = (r["status"], acc.get("passed"), acc.get("ratio"), acc.get("rule"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the base revision (default HEAD: the working tree's "
                                                       "uncommitted change against its commit)")
    parser.add_argument("--head", default=None, help="the head revision (default: this working tree as it is)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter both sides run with")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--models", default="cbam_classifier_tiny", help="comma-separated model names")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs both sides (default 2)")
    args = parser.parse_args(argv)
    python = os.path.abspath(args.python) if os.sep in args.python else args.python  # the runs start elsewhere

    tmp = tempfile.mkdtemp(prefix="bench-case-overhead-")
    base_tree = os.path.join(tmp, "base")
    subprocess.run(["git", "worktree", "add", "--detach", base_tree, args.base], cwd=ROOT, check=True,
                   capture_output=True)
    trees = {"base": base_tree, "head": ROOT}
    if args.head:
        trees["head"] = os.path.join(tmp, "head")
        subprocess.run(["git", "worktree", "add", "--detach", trees["head"], args.head], cwd=ROOT, check=True,
                       capture_output=True)
    seen: Dict[str, List[Dict]] = {"base": [], "head": []}
    verdicts: Dict[str, Dict] = {}
    try:
        for rnd in range(args.rounds):
            for side in (("base", "head") if rnd % 2 == 0 else ("head", "base")):
                wall, records = _run(trees[side], python, args.scenario, args.models,
                                     os.path.join(tmp, "out-" + side))
                fig = _figures(wall, records)
                seen[side].append(fig)
                verdicts.setdefault(side, _verdicts(records))
                print("round %d %-4s: %d cases (%d ok) in %.1f s; overhead median %.3f s/case; warm-up and timed "
                      "samples %.0f%% of case time; extras median s %s" % (
                          rnd + 1, side, fig["cases"], fig["ok"], fig["wall_s"], fig["overhead_median_s"] or 0.0,
                          100 * (fig["timed_share"] or 0.0),
                          json.dumps({k: round(v, 3) for k, v in fig["extras_median_s"].items()})), flush=True)
    finally:
        for side in ("base", "head"):
            if trees[side] != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", trees[side]], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    for side in ("base", "head"):
        figs = seen[side]
        print("%s (%s): wall median %.1f s, overhead median %.3f s/case over %d rounds" % (
            side, args.base if side == "base" else (args.head or "working tree"),
            statistics.median(f["wall_s"] for f in figs), statistics.median(f["overhead_median_s"] for f in figs),
            len(figs)))
    base_v, head_v = verdicts["base"], verdicts["head"]
    differ = sorted(k for k in set(base_v) | set(head_v) if base_v.get(k) != head_v.get(k))
    print("accuracy verdicts (status, passed, ratio, rule): %d cases, %d differ%s" % (
        len(set(base_v) | set(head_v)), len(differ), "".join("\n  %s: %s -> %s" % (k, base_v.get(k), head_v.get(k))
                                                            for k in differ[:10])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
