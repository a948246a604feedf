"""How trustworthy is the regression gate on this machine? Measures it and prints the figures.

Everything runs through the real A/B runner (``harness.commands.ab.run_ab``: git worktrees,
interleaved rounds A B B A ..., one fresh ``python -m harness run`` per round, then the
gate) on a throw-away ``git clone`` of the current HEAD of this repository, made under
the system temporary folder. Nothing is committed here: the fault commits live in the
clone only, which is deleted at the end (``--keep-clone`` keeps it).

1. A/A: HEAD against itself on ``scenarios/gate_bench.toml``. A case the gate calls
   regressed is a false alarm. Printed: the share of compared cases called regressed per
   kind (time, memory, accuracy, status) and overall (goal: at most 1%), the share of
   timing verdicts that are inconclusive, and the wall time.
2. Injected faults, each a commit on top of HEAD in the clone, measured as the share of
   the affected cases the gate calls regressed in the expected kind (goal: at least 95%),
   with the false alarms (regressions on unaffected cases, or of another kind) and the
   wall time of the A/B run. What each fault injects, exactly:

   ``slow10``  harness/runner/execute.py: the timed step of every case is wrapped so that each
               call, after doing the real step, busy-waits on ``time.perf_counter`` for
               10% of the time the step itself took. Every iteration is 1.10x as long;
               nothing else changes (the fidelity step and the reference are untouched).
               Expected: time regressed on every case.
   ``mem10``   harness/runner/execute.py: after the first (fidelity) step and the reset of the
               peak tracker, one more untimed step is run, the peak so far is read
               (``PeakMemory.result()``: the case's own peak) and a buffer of 10% of it
               (``torch.ones(n, dtype=uint8)``, so every page is touched) is held through
               warm-up and timing, freed after the peak is read. Every case's peak grows
               by ~10%. The gate's memory rule needs > 5% AND > ``memory_floor_bytes``
               (16 MiB by default), so only cases with a baseline peak above 10 x the floor
               can be flagged: the scenario's four memory-sized cases (200-330 MiB).
               Expected: memory regressed on those ("eligible"); reported for all cases too.
   ``drift``   harness/runner/execute.py: in fp32 cases, the model's forward and inference
               outputs are rounded through bfloat16 (``t.to(bfloat16).to(t.dtype)``,
               about 3 significant digits, relative error ~1e-3) before the loss, the
               backward and the fidelity snapshot; the fp32 reference is untouched. The
               fp32 tolerance is 1e-4. Expected: accuracy regressed on every fp32 case.
   ``ckpt``    models/mswr.py: ``mswr_net_tiny`` is registered with the zoo's fault twin
               class ``MSWRNetLegacyCheckpoint`` (the legacy reentrant checkpoint wrapper
               of audit bug #2, as in ``mswr_net_legacy_ckpt_tiny``), same config.
               Expected: accuracy (missing gradients) regressed on the mswr_net_tiny train
               cases with ``checkpoint=reentrant``; nothing else changes.

3. Sensitivity: each A/B run's records are gated again (in this process, same
   ``compare``) with the first k rounds of each side only, with the gate's default
   thresholds instead of the scenario's ``[gate]`` table, and with ``time_basis =
   "probe"`` ("+probe": step time relative to ``harness.runner.speed_probe``), so one long run
   shows what fewer rounds, or the probe, would have given.

Outputs under ``--out`` (default results/bench-gate, ignored by git): one folder per
A/B run (``aa``, ``slow10``, ...) with the runner's records (A/, B/), ``gate-verdicts.json``,
``gate-summary.md`` and ``ab-rounds.json``; ``bench-gate.json`` (every figure),
``bench-gate.txt`` (what was printed) and ``rounds.log`` (the rounds' own output).

    python benchmarks/bench_gate.py [--rounds 10] [--quick] [--only-aa] [--faults slow10,ckpt]

Run it in the analysis environment (pandas, scipy) that also has torch. On the 2-core
machine one round of the scenario takes about 60-90 s, so an A/B run takes about
2 x rounds x 75 s; the default (A/A and four faults, 10 rounds) about two hours.
"""
import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from harness.commands.ab import run_ab  # noqa: E402  (standard library only)

KINDS = ("time", "memory", "accuracy", "status")
COMPARED = ("regressed", "improved", "unchanged", "inconclusive")
GOAL_FALSE_ALARM = 0.01
GOAL_DETECTION = 0.95
DEFAULT_SCENARIO = os.path.join(ROOT, "scenarios", "gate_bench.toml")
DEFAULT_OUT = os.path.join(ROOT, "results", "bench-gate")
#: ``--quick``: a few models that still hold a case of every fault (mswr_net_tiny has the
#: reentrant-checkpoint and memory-sized cases).
QUICK_ONLY = ("model=mswr_net_tiny,cbam_classifier_tiny,attention_mha_tiny",)
QUICK_ROUNDS = 3
COMMIT_ID = ("-c", "user.name=torchmatrix bench_gate", "-c", "user.email=bench-gate@localhost")


class BenchError(Exception):
    """The benchmark cannot go on (git, a patch anchor that is gone, ...)."""


# ---------------------------------------------------------------- pure helpers

def parse_case_key(key: str) -> Dict[str, str]:
    """``model=x;mode=train;batch=2;...`` as a dict of text values."""
    return dict(part.split("=", 1) for part in str(key).split(";") if "=" in part)


def replace_once(text: str, anchor: str, replacement: str, where: str) -> str:
    """``text`` with its single ``anchor`` replaced; BenchError when it is missing or repeated."""
    count = text.count(anchor)
    if count != 1:
        raise BenchError("%s: the patch anchor %r occurs %d times (expected once); the file changed, update "
                         "benchmarks/bench_gate.py" % (where, anchor.strip()[:80], count))
    return text.replace(anchor, replacement)


def share(n: int, d: int) -> Optional[float]:
    return (n / d) if d else None


def fmt_share(n: int, d: int) -> str:
    return "n/a (0 cases)" if not d else "%.1f%% (%d/%d)" % (100.0 * n / d, n, d)


def _compared_cases(verdicts: Sequence[Dict]) -> Dict[str, List[Dict]]:
    """Verdicts by case key, for the cases compared on both sides (status verdict compared)."""
    by_case: Dict[str, List[Dict]] = {}
    for v in verdicts:
        by_case.setdefault(v["case_key"], []).append(v)
    return {k: vs for k, vs in by_case.items()
            if any(v["kind"] == "status" and v["verdict"] in COMPARED for v in vs)}


def aa_figures(verdicts: Sequence[Dict]) -> Dict:
    """False-alarm figures of an A/A comparison: per kind and overall."""
    out: Dict = {"kinds": {}}
    for kind in KINDS:
        vs = [v for v in verdicts if v["kind"] == kind and v["verdict"] in COMPARED]
        counts = {name: sum(1 for v in vs if v["verdict"] == name) for name in COMPARED}
        out["kinds"][kind] = dict(counts, compared=len(vs), regressed_share=share(counts["regressed"], len(vs)),
                                  improved_share=share(counts["improved"], len(vs)),
                                  inconclusive_share=share(counts["inconclusive"], len(vs)))
    cases = _compared_cases(verdicts)
    flagged = sorted(k for k, vs in cases.items() if any(v["verdict"] == "regressed" for v in vs))
    out["cases"] = len(cases)
    out["cases_regressed"] = len(flagged)
    out["regressed_share"] = share(len(flagged), len(cases))
    out["regressed_cases"] = flagged
    out["not_compared"] = sum(1 for v in verdicts if v["kind"] == "status" and v["verdict"] not in COMPARED)
    return out


@dataclass
class Fault:
    """An injected fault: the patch that makes its commit and how to score the gate on it."""

    name: str
    title: str
    kinds: Tuple[str, ...]  # verdict kinds that count as detecting it
    patches: List[Tuple[str, Callable[[str], str]]] = field(default_factory=list)
    #: (case axes, the case's verdicts, gate table) -> the gate should flag this case
    target: Callable[[Dict[str, str], List[Dict], Dict], bool] = lambda case, vs, table: True
    #: (case axes) -> the fault touches this case at all (a regression of the expected
    #: kind on a touched case is not a false alarm, even where it was not required)
    touched: Callable[[Dict[str, str]], bool] = lambda case: True


def fault_figures(verdicts: Sequence[Dict], fault: Fault, table: Optional[Dict] = None) -> Dict:
    """Detection and false-alarm figures of a fault's A/B comparison."""
    cases = _compared_cases(verdicts)
    targets, detected, unaffected, false_alarms, other_kind = [], [], [], [], []
    for key, vs in sorted(cases.items()):
        case = parse_case_key(key)
        regressed = [v for v in vs if v["verdict"] == "regressed"]
        expected = [v for v in regressed if v["kind"] in fault.kinds]
        if fault.target(case, vs, table or {}):
            targets.append(key)
            if expected:
                detected.append(key)
        if not fault.touched(case):
            unaffected.append(key)
            if regressed:
                false_alarms.append(key)
        elif any(v["kind"] not in fault.kinds for v in regressed):
            other_kind.append(key)
    touched = [k for k in cases if fault.touched(parse_case_key(k))]
    touched_flagged = [k for k in touched if any(v["verdict"] == "regressed" and v["kind"] in fault.kinds
                                                 for v in cases[k])]
    return {
        "cases": len(cases), "targets": len(targets), "detected": len(detected),
        "detected_share": share(len(detected), len(targets)),
        "missed_cases": [k for k in targets if k not in detected],
        "touched": len(touched), "touched_flagged": len(touched_flagged),
        "unaffected": len(unaffected), "false_alarms": len(false_alarms),
        "false_alarm_share": share(len(false_alarms), len(unaffected)),
        "false_alarm_cases": false_alarms,
        "other_kind_alarms": len(other_kind), "other_kind_cases": other_kind,
    }


def _memory_target(case: Dict[str, str], vs: List[Dict], table: Dict) -> bool:
    """Cases whose +10% is above both memory thresholds (from the baseline peak)."""
    from harness.gate_config import thresholds_for

    th = thresholds_for(case.get("model", ""), table)
    for v in vs:
        if v["kind"] == "memory" and v.get("baseline") is not None:
            growth = 0.10 * float(v["baseline"])
            return growth > th["memory_floor_bytes"] and 0.10 > th["memory_frac"]
    return False


# ---------------------------------------------------------------- the faults' patches

EXECUTE = "harness/runner/execute.py"
RUN_CASE = "\n\ndef run_case("
MAKE_STEP_CALL = "        step, step_keep = _make_step(model, inputs, target, case, use_case_config=True)\n"

SLOW_HELPER = '''

def _injected_slowdown(step):
    """Injected by benchmarks/bench_gate.py (slow10): busy-wait 10% of each step's own time."""
    def slowed():
        t0 = time.perf_counter()
        step()
        until = time.perf_counter() + 0.10 * (time.perf_counter() - t0)
        while time.perf_counter() < until:
            pass
    return slowed
'''


def _patch_slow(text: str) -> str:
    text = replace_once(text, RUN_CASE, SLOW_HELPER + RUN_CASE, EXECUTE)
    return replace_once(text, MAKE_STEP_CALL, MAKE_STEP_CALL + "        step = _injected_slowdown(step)\n", EXECUTE)


MEM_RESET = "        mem.reset_peak()\n"
MEM_READ = '        result["memory"] = mem.result()\n'


def _patch_mem(text: str) -> str:
    extra = ("        step()  # injected by bench_gate.py (mem10): size a buffer of 10% of the peak, hold it\n"
             "        _injected_bytes = max(1, int(0.10 * mem.result()[\"peak_bytes\"]))\n"
             "        _injected_extra = torch.ones(_injected_bytes, dtype=torch.uint8, device=case[\"device\"])\n")
    text = replace_once(text, MEM_RESET, MEM_RESET + extra, EXECUTE)
    keep = ("        result[\"memory\"][\"injected_extra_bytes\"] = _injected_bytes\n"
            "        del _injected_extra\n")
    return replace_once(text, MEM_READ, MEM_READ + keep, EXECUTE)


DRIFT_HELPER = '''

def _injected_bf16_round(value):
    """Injected by benchmarks/bench_gate.py (drift): floating outputs rounded through bfloat16."""
    if isinstance(value, torch.Tensor):
        return value.to(torch.bfloat16).to(value.dtype) if value.is_floating_point() else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[_injected_bf16_round(v) for v in value])
    if isinstance(value, (list, tuple)):
        return type(value)(_injected_bf16_round(v) for v in value)
    if isinstance(value, dict):
        return {k: _injected_bf16_round(v) for k, v in value.items()}
    return value


def _injected_drift(fn):
    def drifted(*args):
        return _injected_bf16_round(fn(*args))
    return drifted
'''
MAKE_STEP_DEF = "\n\ndef _make_step("
TRAIN_BRANCH = '    if case["mode"] == "train":\n        model.train()\n'


def _patch_drift(text: str) -> str:
    text = replace_once(text, MAKE_STEP_DEF, DRIFT_HELPER + MAKE_STEP_DEF, EXECUTE)
    inject = ('    if use_case_config and prec == "fp32":  # injected by bench_gate.py (drift)\n'
              "        forward, infer = _injected_drift(forward), _injected_drift(infer)\n")
    return replace_once(text, TRAIN_BRANCH, inject + TRAIN_BRANCH, EXECUTE)


MSWR = "models/mswr.py"


def _patch_ckpt(text: str) -> str:
    return replace_once(text, '    "mswr_net_tiny", MSWRNet, _TINY,\n',
                        '    "mswr_net_tiny", MSWRNetLegacyCheckpoint, _TINY,\n', MSWR)


FAULTS: Dict[str, Fault] = {f.name: f for f in (
    Fault("slow10", "10% slower step (busy-wait)", ("time",), [(EXECUTE, _patch_slow)]),
    Fault("mem10", "+10% peak memory (held buffer)", ("memory",), [(EXECUTE, _patch_mem)], target=_memory_target),
    Fault("drift", "fp32 outputs rounded via bf16", ("accuracy",), [(EXECUTE, _patch_drift)],
          target=lambda case, vs, table: case.get("precision") == "fp32",
          touched=lambda case: case.get("precision") == "fp32"),
    Fault("ckpt", "mswr_net_tiny -> legacy reentrant ckpt", ("accuracy", "status"), [(MSWR, _patch_ckpt)],
          target=lambda case, vs, table: (case.get("model") == "mswr_net_tiny" and case.get("mode") == "train"
                                          and case.get("checkpoint") == "reentrant"),
          touched=lambda case: (case.get("model") == "mswr_net_tiny" and case.get("mode") == "train"
                                and case.get("checkpoint") == "reentrant")),
)}


def apply_fault(tree: str, fault: Fault) -> None:
    """Patch the files of ``tree`` (a checkout) in place for ``fault``."""
    for rel, patch in fault.patches:
        path = os.path.join(tree, rel)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(patch(text))


# ---------------------------------------------------------------- git and runs

def _git(repo: str, *args: str) -> str:
    proc = subprocess.run(["git", "-C", repo] + list(args), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError("git %s (in %s) failed: %s" % (" ".join(args), repo, (proc.stderr or proc.stdout).strip()))
    return proc.stdout.strip()


def make_clone(source: str, parent: Optional[str] = None) -> Tuple[str, str]:
    """A throw-away clone of ``source``'s HEAD: (path, commit)."""
    head = _git(source, "rev-parse", "HEAD")
    path = tempfile.mkdtemp(prefix="torchmatrix-bench-gate-", dir=parent)
    _git(path, "clone", "--quiet", "--no-hardlinks", os.path.abspath(source), ".")
    _git(path, "checkout", "--quiet", "--detach", head)
    return path, head


def fault_commit(clone: str, base: str, fault: Fault) -> str:
    """Commit ``fault`` on top of ``base`` in ``clone``; return the commit id."""
    _git(clone, "checkout", "--quiet", "--detach", base)
    apply_fault(clone, fault)
    _git(clone, *COMMIT_ID, "commit", "--quiet", "-a", "-m", "bench_gate: inject %s (%s)" % (fault.name, fault.title))
    commit = _git(clone, "rev-parse", "HEAD")
    _git(clone, "checkout", "--quiet", "--detach", base)
    return commit


@contextlib.contextmanager
def output_to(log_path: str):
    """Send this process's file descriptors 1 and 2 (and its children's) to ``log_path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class Console:
    """Prints to the terminal (even while fds 1 and 2 go to the log) and keeps a copy."""

    def __init__(self):
        self.fh = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        self.lines: List[str] = []
        self.t0 = time.time()

    def __call__(self, text: str = "") -> None:
        self.lines.append(text)
        self.fh.write(text + "\n")
        self.fh.flush()

    def progress(self, text: str) -> None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        self("  [%6.0f s, load %.1f] %s" % (time.time() - self.t0, load, text))


def run_pair(clone: str, base: str, head: str, label: str, scenario: str, rounds: int, out: str,
             extra_args: Sequence[str], log_path: str, console: Console) -> Dict:
    """One A/B run; returns its exit code, wall time, round times and load averages."""
    out_dir = os.path.join(out, label)
    loads: List[float] = []

    def progress(text: str) -> None:
        if hasattr(os, "getloadavg"):
            loads.append(os.getloadavg()[0])
        console.progress("%s: %s" % (label, text))

    console("%s: A %s vs B %s, %d rounds each -> %s" % (label, base[:10], head[:10], rounds, out_dir))
    t0 = time.time()
    with output_to(log_path):
        code = run_ab(clone, base, head, scenario, rounds=rounds, out_dir=out_dir, python=sys.executable,
                      extra_args=list(extra_args), timeout_s=1800.0, print_fn=progress)
    wall = time.time() - t0
    rounds_log = {}
    path = os.path.join(out_dir, "ab-rounds.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            rounds_log = json.load(fh)
    round_s = [r["seconds"] for r in rounds_log.get("rounds", [])]
    bad = [r for r in rounds_log.get("rounds", []) if r.get("rc") != 0]
    console.progress("%s: gate exit code %d, %.0f s (rounds %.0f-%.0f s)%s" % (
        label, code, wall, min(round_s or [0]), max(round_s or [0]),
        "; %d round(s) failed, see %s" % (len(bad), log_path) if bad else ""))
    if code not in (0, 1):
        raise BenchError("%s: the A/B run ended with exit code %d; see %s" % (label, code, log_path))
    return {"label": label, "out_dir": out_dir, "exit_code": code, "wall_s": wall, "round_s": round_s,
            "load_avg_1min": loads, "failed_rounds": len(bad)}


# ---------------------------------------------------------------- re-gating

def load_sides(out_dir: str):
    from harness.analysis.load import load_records

    df_b, _ = load_records([os.path.join(out_dir, "A")])
    df_c, _ = load_records([os.path.join(out_dir, "B")])
    return df_b, df_c


def first_rounds(df, k: int):
    """The records of the first ``k`` rounds (runs) of one side."""
    starts = df.groupby("run_id")["time_utc"].min().sort_values()
    return df[df["run_id"].isin(list(starts.index[:k]))]


def regate(df_b, df_c, table: Dict, k: Optional[int] = None) -> List[Dict]:
    from harness.analysis.gate import compare

    if k is not None:
        df_b, df_c = first_rounds(df_b, k), first_rounds(df_c, k)
    return compare(df_b, df_c, table)


def memory_shown(out_dir: str, verdicts: Sequence[Dict], keys: Sequence[str]) -> List[Dict]:
    """For mem10: per case, the buffer held (median over candidate rounds) and how much of
    it the recorded peak shows (candidate median peak - baseline median peak) / buffer."""
    import statistics

    from harness.record_store import read_records

    held: Dict[str, List[int]] = {}
    folder = os.path.join(out_dir, "B")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".jsonl"):
            for rec in read_records(os.path.join(folder, name)):
                extra = (rec.get("memory") or {}).get("injected_extra_bytes")
                if extra:
                    held.setdefault(rec["case_key"], []).append(extra)
    out = []
    for v in verdicts:
        if v["kind"] == "memory" and v["case_key"] in keys and v["case_key"] in held:
            extra = statistics.median(held[v["case_key"]])
            growth = float(v["candidate"]) - float(v["baseline"])
            out.append({"case_key": v["case_key"], "baseline": v["baseline"], "candidate": v["candidate"],
                        "held_bytes": extra, "shown": growth / extra if extra else None, "verdict": v["verdict"]})
    return out


def round_counts(rounds: int) -> List[int]:
    """The k values of the sensitivity table: 1, 2, 3, 5, ... up to ``rounds``."""
    return [k for k in (1, 2, 3, 5, 7, 10, 15, 20) if k < rounds] + [rounds]


# ---------------------------------------------------------------- printing

def _kind_cells(fig: Dict) -> str:
    return "  ".join("%s %s" % (k, fmt_share(fig["kinds"][k]["regressed"], fig["kinds"][k]["compared"]))
                     for k in KINDS)


def print_aa(console: Console, fig: Dict, run: Dict) -> None:
    t = fig["kinds"]["time"]
    console("")
    console("A/A (same revision twice), %d rounds each, %.0f s:" % (len(run["round_s"]) // 2, run["wall_s"]))
    console("  cases compared: %d (not compared: %d)" % (fig["cases"], fig["not_compared"]))
    for kind in KINDS:
        c = fig["kinds"][kind]
        console("  %-8s regressed %-16s improved %-16s inconclusive %s" % (
            kind, fmt_share(c["regressed"], c["compared"]), fmt_share(c["improved"], c["compared"]),
            fmt_share(c["inconclusive"], c["compared"])))
    goal = "meets" if (fig["regressed_share"] or 0) <= GOAL_FALSE_ALARM else "MISSES"
    console("  overall: %s of compared cases called regressed (%s the goal <= %.0f%%); timing inconclusive %s" % (
        fmt_share(fig["cases_regressed"], fig["cases"]), goal, 100 * GOAL_FALSE_ALARM,
        fmt_share(t["inconclusive"], t["compared"])))
    for key in fig["regressed_cases"][:10]:
        console("    false alarm: %s" % key)


def print_fault_table(console: Console, rows: List[Dict]) -> None:
    console("")
    console("Injected faults (detected = regressed in the expected kind; false alarms = regressions on unaffected "
            "cases; other-kind = regressions of another kind on affected cases):")
    head = "  %-7s %-40s %-9s %-18s %-16s %-12s %s" % ("fault", "what", "affected", "detected", "false alarms",
                                                        "other-kind", "A/B wall")
    console(head)
    for r in rows:
        f = r["figures"]
        console("  %-7s %-40s %-9s %-18s %-16s %-12s %.0f s (%d rounds each)" % (
            r["fault"], r["title"], "%d/%d" % (f["targets"], f["cases"]), fmt_share(f["detected"], f["targets"]),
            fmt_share(f["false_alarms"], f["unaffected"]) if f["unaffected"] else "none unaffected",
            str(f["other_kind_alarms"]), r["run"]["wall_s"], len(r["run"]["round_s"]) // 2))
        if f["targets"] and f["detected_share"] is not None and f["detected_share"] < GOAL_DETECTION:
            console("          MISSES the goal >= %.0f%%; missed e.g. %s" % (
                100 * GOAL_DETECTION, "; ".join(f["missed_cases"][:3])))
        if r["fault"] == "mem10":
            console("          every case holds +10%%; the gate flagged %d of all %d (only %d are above the floor)" % (
                f["touched_flagged"], f["touched"], f["targets"]))


def sensitivity(run: Dict, fault: Optional[Fault], tables: Dict[str, Dict], rounds: int) -> List[Dict]:
    """Figures for the first k rounds of each side and for each thresholds table."""
    df_b, df_c = load_sides(run["out_dir"])
    rows = []
    for name, table in tables.items():
        for k in round_counts(rounds):
            verdicts = regate(df_b, df_c, table, k)
            fig = aa_figures(verdicts) if fault is None else fault_figures(verdicts, fault, table)
            rows.append({"table": name, "rounds": k, "figures": fig})
    return rows


def print_sensitivity(console: Console, label: str, rows: List[Dict], fault: Optional[Fault]) -> None:
    console("  %s with the first k rounds per side:" % label)
    for r in rows:
        f = r["figures"]
        if fault is None:
            console("    %-18s k=%-2d overall %-15s %s  time inconclusive %s" % (
                r["table"], r["rounds"], fmt_share(f["cases_regressed"], f["cases"]), _kind_cells(f),
                fmt_share(f["kinds"]["time"]["inconclusive"], f["kinds"]["time"]["compared"])))
        else:
            console("    %-18s k=%-2d detected %-16s false alarms %-14s other-kind %d" % (
                r["table"], r["rounds"], fmt_share(f["detected"], f["targets"]),
                fmt_share(f["false_alarms"], f["unaffected"]) if f["unaffected"] else "-",
                f["other_kind_alarms"]))


# ---------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Measure the regression gate: A/A false alarms and injected faults, "
                                            "through the real A/B runner on a throw-away clone of HEAD.")
    p.add_argument("--rounds", type=int, help="rounds per side of every A/B run (default 10; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="a fast look: %d rounds, three models (%s)" % (
        QUICK_ROUNDS, QUICK_ONLY[0]))
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: results/bench-gate)")
    p.add_argument("--only-aa", action="store_true", help="run the A/A comparison only")
    p.add_argument("--skip-aa", action="store_true", help="run the faults only")
    p.add_argument("--faults", default=",".join(FAULTS), help="comma-separated faults to inject, from %s "
                                                                "(default: all)" % ", ".join(FAULTS))
    p.add_argument("--scenario", default=DEFAULT_SCENARIO, help="scenario file (default: scenarios/gate_bench.toml)")
    p.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2",
                   help="passed to every `harness run` (keep matching cases only); repeatable")
    p.add_argument("--repo", default=ROOT, help="repository whose HEAD is measured (default: this checkout)")
    p.add_argument("--keep-clone", action="store_true", help="keep the throw-away clone (its path is printed)")
    p.add_argument("--sample", default=None, help="which run's Markdown summary to print at the end "
                                                  "(aa or a fault name; default: the last run)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    faults = [] if args.only_aa else [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        print("unknown fault(s) %s; choose from %s" % (", ".join(unknown), ", ".join(FAULTS)), file=sys.stderr)
        return 2
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else 10)
    if rounds < 1:
        print("--rounds must be >= 1", file=sys.stderr)
        return 2
    extra: List[str] = []
    for item in (list(QUICK_ONLY) if args.quick else []) + args.only:
        extra += ["--only", item]
    scenario = os.path.abspath(args.scenario)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "rounds.log")

    from harness.analysis.gate import load_gate_table

    table = load_gate_table(scenario)
    # "+probe": the same records gated on step time / speed-probe time (time_basis = "probe")
    tables = {"scenario": table, "scenario +probe": dict(table, time_basis="probe"), "defaults": {},
              "defaults +probe": {"time_basis": "probe"}}
    console = Console()
    console("bench_gate: scenario %s, %d rounds per side%s; python %s; out %s" % (
        os.path.relpath(scenario, ROOT), rounds, " (quick: %s)" % " ".join(extra) if extra else "",
        sys.executable, out))
    console("  gate thresholds: %s; rounds' output goes to %s" % (
        json.dumps(table, sort_keys=True) if table else "the gate's defaults", log_path))
    doc: Dict = {"scenario": scenario, "rounds": rounds, "extra_args": extra, "gate_table": table,
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": {}}
    clone = None
    try:
        clone, base = make_clone(args.repo)
        console("  throw-away clone of %s at %s: %s" % (args.repo, base[:10], clone))
        doc["commit"] = base
        if not args.skip_aa:
            run = run_pair(clone, base, base, "aa", scenario, rounds, out, extra, log_path, console)
            with open(os.path.join(run["out_dir"], "gate-verdicts.json"), encoding="utf-8") as fh:
                verdicts = json.load(fh)["verdicts"]
            fig = aa_figures(verdicts)
            print_aa(console, fig, run)
            sens = sensitivity(run, None, tables, rounds)
            print_sensitivity(console, "A/A", sens, None)
            doc["runs"]["aa"] = {"run": run, "figures": fig, "sensitivity": sens}
        rows = []
        for name in faults:
            fault = FAULTS[name]
            head = fault_commit(clone, base, fault)
            run = run_pair(clone, base, head, name, scenario, rounds, out, extra, log_path, console)
            with open(os.path.join(run["out_dir"], "gate-verdicts.json"), encoding="utf-8") as fh:
                verdicts = json.load(fh)["verdicts"]
            fig = fault_figures(verdicts, fault, table)
            row = {"fault": name, "title": fault.title, "commit": head, "run": run, "figures": fig}
            rows.append(row)
            print_fault_table(console, [row])
            if name == "mem10":
                targets = [k for k, vs in _compared_cases(verdicts).items()
                           if fault.target(parse_case_key(k), vs, table)]
                row["memory_shown"] = memory_shown(run["out_dir"], verdicts, targets)
                for m in row["memory_shown"]:
                    console("          %-60s %6.1f -> %6.1f MiB, held %5.1f MiB, the peak shows %3.0f%% of it: %s" % (
                        m["case_key"][:60], m["baseline"] / 2 ** 20, m["candidate"] / 2 ** 20,
                        m["held_bytes"] / 2 ** 20, 100 * (m["shown"] or 0), m["verdict"]))
            row["sensitivity"] = sensitivity(run, fault, tables, rounds)
            print_sensitivity(console, name, row["sensitivity"], fault)
            doc["runs"][name] = row
            _save(out, doc, console)
        if rows:
            print_fault_table(console, rows)
        if "aa" in doc["runs"]:
            print_aa(console, doc["runs"]["aa"]["figures"], doc["runs"]["aa"]["run"])
        sample = args.sample or (faults[-1] if faults else "aa")
        md = os.path.join(out, sample, "gate-summary.md")
        if os.path.exists(md):
            console("")
            console("Sample Markdown summary (%s):" % md)
            console("")
            with open(md, encoding="utf-8") as fh:
                console(fh.read().rstrip("\n"))
    except BenchError as exc:
        console("bench_gate: error: %s" % exc)
        _save(out, doc, console)
        return 2
    except KeyboardInterrupt:
        console("bench_gate: interrupted")
        _save(out, doc, console)
        return 130
    finally:
        if clone and not args.keep_clone:
            shutil.rmtree(clone, ignore_errors=True)
        elif clone:
            console("  clone kept: %s" % clone)
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _save(out, doc, console)
    console("figures: %s" % os.path.join(out, "bench-gate.json"))
    return 0


def _save(out: str, doc: Dict, console: Console) -> None:
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    with open(os.path.join(out, "bench-gate.json"), "w", encoding="utf-8") as fh:
        json.dump(clean(doc), fh, indent=1, sort_keys=True)
        fh.write("\n")
    with open(os.path.join(out, "bench-gate.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(console.lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
