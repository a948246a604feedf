"""The gate on deterministic evidence, one round a side: A/A and several faults per A/B run.

With ``ab --instructions`` the time verdicts rest on instruction counts and memory on the
exact tensor peak, so one round a side decides; but one A/B run of ``scenarios/gate_bench.toml``
with the instruction pass takes about 20 minutes on the 2-core machine, and
``benchmarks/bench_gate.py`` runs one A/B run per fault. This benchmark runs fewer: each
"mix" is one fault commit carrying several of bench_gate's faults (``benchmarks/gate_faults.py``),
each injected into its own models (the models of one mix are disjoint), so one A/B run
scores them all. Per fault, the figures are bench_gate's
(``fault_figures``): detection over its target cases, and false alarms over the cases no
fault of the mix touches (the cases of the mix's other faults are left out of its figures).

Runs (``--runs``, default all three; ``--parallel`` runs them side by side, which makes their
wall times longer, not their counts different):

- ``aa``: HEAD against itself: false alarms per kind, and the run-wide verdict;
- ``mix1``: work10 (+10% arithmetic) in four models, slow10 (busy-wait) in two, ckpt
  (mswr_net_tiny's legacy checkpoint) and cswin (cswin_v2_tiny built as its twin with the
  audit's unconditional clone, ``cswin_v2_clone_fault_tiny``);
- ``mix2``: tmem10 (+10% tensor memory kept through the step) in two models, drift (fp32
  outputs rounded through bf16) in two.

    python benchmarks/bench_gate_combined.py [--runs aa,mix1,mix2] [--parallel] [--out DIR]

Outputs under ``--out`` (default results/bench-gate-combined): one folder per run as
bench_gate writes them, ``bench-gate-combined.json`` (every figure) and the printed text.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import bench_gate as bg  # noqa: E402 - benchmarks/ is not a package; its folder is on sys.path when run

from harness.runner import fault_hooks  # noqa: E402
from harness.vocab import AGGREGATE_CASE_KEY  # noqa: E402

CSWIN_FAULT = bg.Fault("cswin", "cswin_v2_tiny -> unconditional clone (audit #3)", ("memory",),
                       touched=lambda case: case.get("model") == "cswin_v2_tiny", scoped=False)
FAULTS = dict(bg.FAULTS, cswin=CSWIN_FAULT)

#: run -> [(fault, the models it is injected into)]; None for faults that pick their model.
MIXES: Dict[str, List[Tuple[str, Optional[Tuple[str, ...]]]]] = {
    "aa": [],
    "mix1": [("work10", ("attention_gqa_tiny", "attention_linear_tiny", "graph_vae_tiny", "llm_decoder_tiny")),
             ("slow10", ("hsifusion_tiny", "wavediff_tiny")), ("ckpt", None), ("cswin", None)],
    "mix2": [("tmem10", ("cbam_classifier_tiny", "sharp_tiny")), ("drift", ("attention_mha_tiny", "ris_music_tiny"))],
}


def mix_commit(clone: str, base: str, run: str) -> str:
    """The run's fault commit on top of ``base`` (``base`` itself for the A/A run)."""
    if not MIXES[run]:
        return base
    return bg.fault_commit(clone, base, [FAULTS[name].injected(models) for name, models in MIXES[run]],
                           "bench_gate_combined: %s" % run)


def figures(run: str, verdicts: Sequence[Dict], table: Dict) -> Dict:
    """A/A figures, or per fault of the mix its figures over its own and the untouched cases."""
    per_case = [v for v in verdicts if v["case_key"] != AGGREGATE_CASE_KEY]
    out: Dict = {"aggregate": [v for v in verdicts if v["case_key"] == AGGREGATE_CASE_KEY]}
    if not MIXES[run]:
        out["aa"] = bg.aa_figures(per_case)
        return out
    out["faults"] = {}
    for name, models in MIXES[run]:
        others = [(FAULTS[n], m) for n, m in MIXES[run] if n != name]
        mine = [v for v in per_case
                if not any(bg.is_affected(f, bg.parse_case_key(v["case_key"]), m) for f, m in others)]
        out["faults"][name] = dict(bg.fault_figures(mine, FAULTS[name], table, models), models=models)
    return out


def run_one(run: str, args) -> Dict:
    console = bg.Console()
    clone, base = bg.make_clone(ROOT)
    try:
        head = mix_commit(clone, base, run)
        log = os.path.join(args.out, "%s.log" % run)
        with bg.environment(fault_hooks.ENV, "1"):
            pair = bg.run_pair(clone, base, head, run, args.scenario, 1, args.out, [], log, console,
                               instructions=True)
        with open(os.path.join(pair["out_dir"], "gate-verdicts.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
        table = doc.get("gate_table") or {}
        return dict(pair, figures=figures(run, doc["verdicts"], table))
    finally:
        shutil.rmtree(clone, ignore_errors=True)


def print_run(result: Dict) -> None:
    fig = result["figures"]
    print("== %s: A/B run %.1f min (one round a side, instructions counted), gate exit %d" % (
        result["label"], result["wall_s"] / 60.0, result["exit_code"]))
    for v in fig["aggregate"]:
        print("   run-wide time: %s: %s" % (v["verdict"], v["reason"]))
    if "aa" in fig:
        aa = fig["aa"]
        for kind, k in aa["kinds"].items():
            print("   %-8s compared %3d: regressed %d, improved %d, inconclusive %d" % (
                kind, k["compared"], k["regressed"], k["improved"], k["inconclusive"]))
        print("   cases with a false alarm: %d of %d; with a false improvement: %d" % (
            aa["cases_regressed"], aa["cases"], aa["cases_improved"]))
        for key in aa["regressed_cases"] + aa["improved_cases"]:
            print("     %s" % key)
    for name, f in fig.get("faults", {}).items():
        print("   %-7s detected %s of %s targets (%s); affected %d, flagged in its kind %d; false alarms %d of %d "
              "untouched cases; other-kind alarms %d" % (
                  name, f["detected"], f["targets"], "-" if f["detected_share"] is None else
                  "%.0f%%" % (100 * f["detected_share"]), f["affected"], f["affected_flagged"], f["false_alarms"],
                  f["unaffected"], f["other_kind_alarms"]))
        for key in f["missed_cases"]:
            print("     missed: %s" % key)
        for key in f["false_alarm_cases"] + f["other_kind_cases"]:
            print("     alarm: %s" % key)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="aa,mix1,mix2", help="comma-separated: aa, mix1, mix2 (default all)")
    parser.add_argument("--scenario", default=bg.DEFAULT_SCENARIO)
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "bench-gate-combined"))
    parser.add_argument("--parallel", action="store_true", help="run the A/B runs side by side")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child of --parallel: run this one, print JSON
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    if args.one:
        json.dump(run_one(args.one, args), sys.stdout)
        return 0
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in MIXES]
    if unknown:
        parser.error("unknown run(s) %s; choose from %s" % (", ".join(unknown), ", ".join(MIXES)))
    t0 = time.time()
    if args.parallel:
        procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--one", r, "--scenario",
                                   args.scenario, "--out", args.out], stdout=subprocess.PIPE, text=True)
                 for r in runs]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    else:
        results = [run_one(r, args) for r in runs]
    for result in results:
        print_run(result)
    print("all runs: %.1f min%s" % ((time.time() - t0) / 60.0, " (side by side)" if args.parallel else ""))
    with open(os.path.join(args.out, "bench-gate-combined.json"), "w", encoding="utf-8") as fh:
        json.dump({"runs": results, "parallel": args.parallel}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
