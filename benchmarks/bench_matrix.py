"""The matrix's cost and decisiveness: the engine's interleaved rounds against the one-environment-at-a-time
run of an earlier revision, an A/A run and a planted slowdown. Prints every figure; asserts nothing.

The environments are the ones ``nox -s matrix`` built (``.nox/matrix-torch-*/bin/python``; warm: the
installs are not timed here). Modes, each on the same scenario slice (``--scenario``, ``--only``):

- ``engine`` (default): ``python -m harness matrix`` over ``--envs`` with ``--rounds`` rounds.
- ``before REV``: the revision REV (a ``git worktree`` under the system temporary folder, removed at the
  end) runs ``python -m harness run`` in each environment one after another, as ``nox -s matrix`` did
  before the engine; then the accuracy verdicts of both runs are compared case by case (the engine's
  first round against REV's only one).
- ``aa``: the newest environment twice, as two variants (``latest-a``, ``latest-b``).
- ``slowdown``: the newest environment twice, the second a copy of this tree whose workers busy-wait
  10% of every timed step (``benchmarks/gate_faults.py``'s ``slow10`` through the declared fault hooks).

Figures per run: wall time; per environment the ok cases, the median per-case ``overhead_s`` (everything
in a case but warm-up and timed samples; first round and later rounds apart) and the extras' medians;
the share of warm-up and timed samples in the run's wall time; the wall time of the extras after the
timed rounds (the FLOPs and tensor peak of a run of several rounds or variants). For ``aa`` and ``slowdown``: the
(model, precision) cells the report calls faster or slower from the paired rounds, with the 95% interval
and the correction it states, and the per-environment geometric mean with its interval.

    python benchmarks/bench_matrix.py engine --envs latest,1.10 --only model=cbam_classifier_tiny
    python benchmarks/bench_matrix.py before HEAD~3 --envs latest,1.10 --only model=cbam_classifier_tiny
    python benchmarks/bench_matrix.py aa --only model=cbam*,attention*
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
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVS = ("latest", "1.10", "1.11", "1.12", "1.13", "2.0", "2.1")


def env_python(label: str) -> str:
    """The interpreter of the matrix environment ``label`` (``latest``, ``1.10``, ...) that nox built."""
    path = os.path.join(ROOT, ".nox", "matrix-torch-" + label.replace(".", "-"), "bin", "python")
    if not os.path.exists(path):
        raise SystemExit("%s missing: build it with nox -s \"matrix(torch=%s)\" -- smoke --dry-run" % (path, label))
    return path


def _records(folder: str) -> Dict[str, List[Dict]]:
    """The records of each file of ``folder``, as every reader sees them (the counts and extras files merged)."""
    sys.path.insert(0, ROOT)
    from harness.record.store import read_records

    return {name[:-len(".jsonl")]: read_records(os.path.join(folder, name))
            for name in sorted(os.listdir(folder)) if name.endswith(".jsonl")}


def _load() -> str:
    with open("/proc/loadavg", encoding="utf-8") as fh:
        return " ".join(fh.read().split()[:3])


#: The line the engine prints when the timed rounds are over and the extras after them begin.
PASS_HEAD = "extras after the rounds"


def engine_run(variants: List[Tuple[str, str, Optional[str], Dict[str, str]]], scenario: str, only: List[str],
               rounds: Optional[int], out: str, cwd: str = ROOT) -> Tuple[float, Optional[float]]:
    """Wall seconds of one ``harness matrix`` run of ``variants`` ((label, python, root, env)) into ``out``, and
    of its extras after the rounds (None: it ran none)."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    cmd = [sys.executable, "-m", "harness", "matrix", scenario, "--out", out]
    for label, python, root, env in variants:
        path = os.path.join(out, "..", label + ".variant.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"label": label, "python": python, "root": root, "env": env}, fh)
        cmd += ["--variant-file", path]
    for item in only:
        cmd += ["--only", item]
    if rounds:
        cmd += ["--rounds", str(rounds)]
    t0 = time.perf_counter()
    t_pass = None
    lines: List[str] = []
    proc = subprocess.Popen(cmd, cwd=cwd, env=dict(os.environ, PYTHONPATH=cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if t_pass is None and line.startswith(PASS_HEAD):
            t_pass = time.perf_counter()
        lines.append(line)
    proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(cmd), "".join(lines)[-6000:]))
    return wall, (time.perf_counter() - t_pass if t_pass is not None else None)


def before_run(tree: str, envs: List[str], scenario: str, only: List[str], out: str) -> float:
    """Wall seconds of REV's way: ``harness run`` in each environment one after another."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    for label in envs:
        cmd = [env_python(label), "-m", "harness", "run", scenario, "--out", out, "--env-label", "torch-" + label]
        for item in only:
            cmd += ["--only", item]
        proc = subprocess.run(cmd, cwd=tree, env=dict(os.environ, PYTHONPATH=tree), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit("%s failed in %s:\n%s" % (" ".join(cmd), tree, proc.stderr[-3000:]))
    return time.perf_counter() - t0


def figures(wall_s: float, by_label: Dict[str, List[Dict]], pass_s: Optional[float] = None) -> None:
    """Print the run's figures (see the module docstring)."""
    timed_s = 0.0
    for label, records in by_label.items():
        ok = [r for r in records if r["status"] == "ok" and r.get("timing")]
        timed_s += sum(r["timing"]["warmup_s"] + r["timing"]["timed_s"] for r in ok)
        first = [r for r in ok if ((r.get("round") or {}).get("index") or 1) == 1]
        later = [r for r in ok if ((r.get("round") or {}).get("index") or 1) > 1]
        extras: Dict[str, List[float]] = {}
        for r in first:
            for name, seconds in ((r.get("extras") or {}).get("seconds") or {}).items():
                extras.setdefault(name, []).append(seconds)
        print("  %-14s %4d records, %4d ok cases; overhead median %.3f s/case (first round), %s (later rounds); "
              "extras median s %s" % (
                  label, len(records), len(first), statistics.median(r["overhead_s"] for r in first) if first else 0,
                  "%.3f s/case" % statistics.median(r["overhead_s"] for r in later) if later else "-",
                  json.dumps({k: round(statistics.median(v), 3) for k, v in sorted(extras.items())})))
    print("  wall %.1f s; warm-up and timed samples %.1f s = %.0f%% of the wall time" % (
        wall_s, timed_s, 100 * timed_s / wall_s))
    if pass_s is not None:
        print("  of which the extras after the rounds (flops, tensor peak; as many workers as cores): %.1f s" % pass_s)


def _verdicts(records: List[Dict]) -> Dict[str, Tuple]:
    out = {}
    for r in records:
        if ((r.get("round") or {}).get("index") or 1) != 1:
            continue
        acc = r.get("accuracy") or {}
        out[r["case_key"]] = (r["status"], acc.get("passed"), acc.get("ratio"), acc.get("rule"))
    return out


def compare_verdicts(old: Dict[str, List[Dict]], new: Dict[str, List[Dict]]) -> None:
    cases = differ = 0
    for label in sorted(set(old) & set(new)):
        a, b = _verdicts(old[label]), _verdicts(new[label])
        keys = set(a) | set(b)
        bad = sorted(k for k in keys if a.get(k) != b.get(k))
        cases += len(keys)
        differ += len(bad)
        for k in bad[:5]:
            print("  %s %s: %s -> %s" % (label, k, a.get(k), b.get(k)))
    print("accuracy verdicts (status, passed, ratio, rule), first round against the earlier run: %d cases, %d "
          "differ" % (cases, differ))


def paired_calls(folder: str, ref: str = "latest-a") -> None:
    """What the report says of the other variant against ``ref``, from the paired rounds: the (model,
    precision) cells of its speed heatmap called faster or slower, and the at-a-glance geometric mean."""
    sys.path.insert(0, ROOT)
    from harness.analysis.load import load_records
    from harness.analysis.report import heatmap, paired
    from harness.analysis.report.frame import prepare_frame
    from harness.measures import default_thresholds

    df = prepare_frame(load_records([folder])[0])[0]
    cells = heatmap.cells(df, ref, heatmap.TIME)
    cells = cells[cells["env"] != ref] if "env" in cells.columns else cells
    decisive = cells[cells["decisive"].fillna(False).astype(bool)]
    print("  heatmap: %d (model, precision) cells, %d called faster or slower (%.1f%%): 95%% intervals over paired "
          "rounds, %s over the cells, floor %.0f%%" % (
              len(cells), len(decisive), 100.0 * len(decisive) / max(len(cells), 1), paired.CORRECTION,
              100 * paired.floor_frac(default_thresholds())))
    for _, row in decisive.head(8).iterrows():
        print("    %s %s: x%.3f (%.3f to %.3f)" % (row.get("model"), row.get("precision"), row["ratio"],
                                                  row["ci_lo"], row["ci_hi"]))
    for _, row in paired.env_intervals(df, ref, default_thresholds()).iterrows():
        print("  at a glance: %s against %s: x%.3f (95%% CI %.3f to %.3f), %s" % (
            row["env"], ref, row["ratio"], row["lo"], row["hi"], "decisive" if row["decisive"] else "within noise"))


def slowed_tree(tmp: str) -> str:
    """A copy of this tree whose workers busy-wait 10% of each timed step (the slow10 fault, all models)."""
    sys.path.insert(0, ROOT)
    from harness.runner import fault_hooks

    tree = os.path.join(tmp, "slowed")
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".git", ".nox", "results", "__pycache__"))
    fault_hooks.write_activation(tree, os.path.join(ROOT, "benchmarks", "gate_faults.py"), [("slow10", None)])
    return tree


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="engine", choices=("engine", "before", "aa", "slowdown"))
    parser.add_argument("rev", nargs="?", help="with 'before': the revision to run the old way")
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated environments (default: all seven)")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2")
    parser.add_argument("--rounds", type=int, default=None, help="engine rounds (default: the scenario's)")
    parser.add_argument("--keep", help="keep the records in this folder")
    args = parser.parse_args(argv)
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    tmp = tempfile.mkdtemp(prefix="bench-matrix-")
    out = os.path.join(args.keep or tmp, args.mode)
    print("%s: scenario %s, only %s, load %s" % (args.mode, args.scenario, args.only or "-", _load()), flush=True)
    tree = None
    try:
        if args.mode == "engine":
            wall, pass_s = engine_run([("torch-" + e, env_python(e), None, {}) for e in envs], args.scenario,
                                      args.only, args.rounds, out)
        elif args.mode == "before":
            if not args.rev:
                raise SystemExit("before: name the revision (e.g. HEAD~3)")
            tree = os.path.join(tmp, "before")
            subprocess.run(["git", "worktree", "add", "--detach", tree, args.rev], cwd=ROOT, check=True,
                           capture_output=True)
            wall, pass_s = before_run(tree, envs, args.scenario, args.only, out), None
        else:
            latest = env_python("latest")
            second = (None, {}) if args.mode == "aa" else (slowed_tree(tmp), {"TORCHMATRIX_INJECT_FAULTS": "1"})
            wall, pass_s = engine_run([("latest-a", latest, None, {}), ("latest-b", latest) + second],
                                      args.scenario, args.only, args.rounds, out)
        records = _records(out)
        print("%s: %d environments, load after %s" % (args.mode, len(records), _load()))
        figures(wall, records, pass_s)
        if args.mode in ("aa", "slowdown"):
            paired_calls(out)
        if args.mode == "before" and args.keep and os.path.isdir(os.path.join(args.keep, "engine")):
            compare_verdicts(records, _records(os.path.join(args.keep, "engine")))
    finally:
        if tree:
            subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
