"""How trustworthy is the regression gate on this machine? Measures it and prints the figures.

Everything runs through the real A/B runner (``harness.commands.ab.run_ab``: git worktrees,
interleaved rounds A B B A ..., one fresh ``python -m harness run`` per round, then the
gate) on a throw-away ``git clone`` of the current HEAD of this repository, made under
the system temporary folder. Nothing is committed here: the fault commits live in the
clone only, which is deleted at the end (``--keep-clone`` keeps it). Only HEAD is
measured: uncommitted changes to the harness are not (the faults are those of
``benchmarks/gate_faults.py`` as it is in the working tree: the fault commit adds a copy).

What is measured. By default ``scenarios/gate_bench.toml``, a scenario tuned for measuring
the gate (68 cases, 41 samples of 10 ms, ``time_factor = 1.05``), 10 rounds a side.
``--instructions`` adds ab's instruction pass (``run_ab(..., instructions=True)``: the
first round of each side also counts each ok case's instructions per step under
valgrind/callgrind); the gate then judges time on the counts, which machine load does not
move, so the default becomes 1 round a side. The pull-request workflow
(``.github/workflows/ab-gate.yml``) runs something else: its own scenario
(``scenarios/smoke.toml``: 12 cases, 5 samples, the gate's default thresholds) with
``--instructions`` and ``ab``'s default round count for it (1). ``--workflow`` measures
that: the scenario, ``--instructions`` and ``--rounds`` are read from the workflow
file's ``nox -s ab`` command (ab's own default where it passes no ``--rounds``: 1 with
``--instructions``, else 3), and the gate uses that scenario's ``[gate]`` table, as the
workflow's run does. ``--scenario`` takes any file or a name in ``scenarios/``. The
machine still differs: the workflow runs on a hosted runner, this benchmark wherever it
is started.

1. A/A: HEAD against itself. A case the gate calls regressed is a false alarm (it would
   fail a pull request); a case it calls improved is a false improvement (a wrong line
   in the pull-request comment). Printed: per kind (time, memory, accuracy, status) the
   share of compared verdicts that are regressed, improved and inconclusive; overall,
   the share of compared cases with a regressed verdict, with an improved one, and with
   either (goal: at most 1% each); and the wall time.
2. Injected faults, each a commit on top of HEAD in the clone. A fault is injected into
   the models of ``AFFECTED_MODELS`` only (``--fault-models``; ``all`` injects it into
   every model, as before; for work10 and tmem10, every model they are calibrated for),
   so each has an unaffected set: the cases of the other models, and the cases of
   affected models the fault's code does not change (drift: the amp_bf16 cases; ckpt:
   everything but mswr_net_tiny's reentrant train cases; tmem10: the eval cases).
   Printed per fault: detection, the share of the affected cases it should flag that the
   gate calls regressed in the expected kind (goal: at least 95%); false alarms, the
   share of unaffected cases called regressed (any kind), and false improvements, the
   share called improved; other-kind, affected cases regressed in another kind; and the
   wall time of the A/B run. What each fault injects, exactly, is in
   ``benchmarks/gate_faults.py`` (through the runner's declared fault hooks,
   ``harness.runner.fault_hooks``: the fault commit only adds files, it patches no line).
   What the gate should say:

   ``slow10``  (the timed step busy-waits 10% of its own time) time regressed on every
               affected case judged on wall time (the targets); with ``--instructions`` the
               counts decide time and do not move, so there are no targets, and the gate
               should say unchanged or inconclusive ("wall time only").
   ``mem10``   (a buffer of 10% of the case's peak held through timing) every affected case's
               peak grows by ~10%. On the process peak, the gate's memory rule needs > 5% AND
               > ``memory_floor_bytes`` (16 MiB by default), so only cases with a baseline peak
               above 10 x the floor can be flagged: in gate_bench, the memory-sized cases
               (200-330 MiB) of mswr_net_tiny and sharp_tiny (that of hsifusion_tiny is an
               unaffected one). Where both sides carry the exact tensor peak of a step (every
               CPU case now), the gate judges memory on that, which a buffer held outside the
               step does not reach: such cases are no target (tmem10 is the fault the tensor
               peak sees). Expected: memory regressed on the targets ("eligible"); reported
               for all affected cases too, with the held sizes (``injected-held.jsonl``).
   ``drift``   (fp32 outputs rounded through bfloat16, relative error ~1e-3; the calibrated
               rule allows fp32 10x its own error against float64, ~1e-7) accuracy regressed
               on every affected fp32 case, twice: fidelity, and outputs changed between
               revisions (20 + 20 of 68 in gate_bench, one round a side, 2026-11-27).
   ``ckpt``    (mswr_net_tiny built as its twin ``mswr_net_legacy_ckpt_tiny``; one model
               whatever ``--fault-models`` says) accuracy (missing gradients) regressed on the
               mswr_net_tiny train cases with ``checkpoint=reentrant``; nothing else changes.
   ``work10``  (a few leaf sub-modules computed twice, values unchanged) every gate_bench case
               of an affected model counts about 8-15% more instructions per step (callgrind,
               one thread; the figures beside ``gate_faults.WORK10_SITES``), and the tensor peak
               stays put where the gate could see it (under 0.3% in cbam_classifier_tiny,
               mswr_net_tiny and sharp_tiny; at most 16 KiB, under the 64 KiB floor, in the
               small models). Expected: time regressed on every affected case (judged on the
               instruction counts with ``--instructions``, else on wall time).
   ``tmem10``  (a full-size mask saved for backward at a few sites, in training) injected into
               the two affected models whose tensor peaks can show it (mswr_net_tiny,
               sharp_tiny; ``gate_faults.TMEM10_SITES`` says why not the others). The tensor
               peak of a step grows by 9.6-12.7% in every affected gate_bench train case (torch
               2.15, before #14's AdamW train step), its instruction count by about 1% (time
               unchanged for the gate). The gate's memory rule on the tensor peak needs > 5%
               AND > 64 KiB (``tensor_memory_floor_bytes``), so the targets ("eligible") are
               the cases whose baseline tensor peak times the model's smallest calibrated
               growth (``gate_faults.TMEM10_GROWTH``) exceeds both. Expected: memory regressed
               on the targets; reported for all affected cases too.

   With only some cases changed, the Benjamini-Hochberg correction has fewer true
   changes among its tests than when every case is slowed, so ``slow10``'s detection can
   be lower than with ``--fault-models all``.

3. Round spread, per A/B run and side: for each case, the sample sd of the log of its
   round medians (one round = one process), of the step time and of step time / probe
   time, and the median of those over the cases; and the case whose round medians span
   the widest range, with that range.
4. Sensitivity: each A/B run's records are gated again (in this process, same
   ``compare``) with the first k rounds of each side only, with the gate's default
   thresholds instead of the scenario's ``[gate]`` table (when it has one), with
   ``time_basis = "probe"`` ("+probe": step time relative to ``harness.runner.speed_probe``)
   and with ``time_test = "samples"`` ("+samples": the sample test trusted at any round
   count), so one long run shows what fewer rounds, the probe or the sample test would
   have given.

Outputs under ``--out`` (default results/bench-gate, ignored by git): one folder per
A/B run (``aa``, ``slow10``, ...) with the runner's records (A/, B/), ``gate-verdicts.json``,
``gate-summary.md`` and ``ab-rounds.json`` (and mem10's ``injected-held.jsonl``); ``bench-gate.json`` (every figure),
``bench-gate.txt`` (what was printed) and ``rounds.log`` (the rounds' own output).

    python benchmarks/bench_gate.py [--rounds 10] [--quick] [--only-aa] [--faults slow10,ckpt]
    python benchmarks/bench_gate.py --instructions --faults work10,tmem10   # one round a side, counted
    python benchmarks/bench_gate.py --workflow            # what the pull-request workflow runs
    python benchmarks/bench_gate.py --faults slow10 --fault-models all   # the fault in every case

Run it in the analysis environment (pandas, scipy) that also has torch (and valgrind for
``--instructions``). On the 2-core machine one round of gate_bench takes about 60-90 s,
so an A/B run takes about 2 x rounds x 75 s; the default (A/A and six faults, 10 rounds)
about three hours. With four faults, ``--quick`` (3 rounds, three models: 22 cases) took
19 minutes and ``--workflow`` (then 3 rounds of smoke's 12 cases without instruction
counts, A/A, slow10 and drift) 3 minutes there, beside other jobs. The instruction pass
runs each case's steps under valgrind, tens of times slower than natively (seconds for a
small case, over ten minutes for mswr_net_tiny's amp_bf16 case at batch 48); its share of
a run is not measured here.
"""
import argparse
import contextlib
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (ROOT, os.path.join(ROOT, "benchmarks")):  # benchmarks/ is not a package
    if _path not in sys.path:
        sys.path.insert(0, _path)

import gate_faults as gf  # noqa: E402  (standard library only at import)

from harness.commands.ab import run_ab  # noqa: E402  (standard library only)
from harness.runner import fault_hooks  # noqa: E402  (standard library only)
from harness.vocab import AGGREGATE_CASE_KEY  # noqa: E402

KINDS = ("time", "memory", "accuracy", "status")
COMPARED = ("regressed", "improved", "unchanged", "inconclusive")
GOAL_FALSE_ALARM = 0.01
GOAL_DETECTION = 0.95
DEFAULT_SCENARIO = os.path.join(ROOT, "scenarios", "gate_bench.toml")
DEFAULT_OUT = os.path.join(ROOT, "results", "bench-gate")
WORKFLOW = os.path.join(ROOT, ".github", "workflows", "ab-gate.yml")
#: ``--quick``: a few models that still hold a case of every fault (mswr_net_tiny has the
#: reentrant-checkpoint and memory-sized cases) and an unaffected model (attention_mha_tiny).
QUICK_ONLY = ("model=mswr_net_tiny,cbam_classifier_tiny,attention_mha_tiny",)
QUICK_ROUNDS = 3
#: ``--workflow``: the faults that have affected cases in smoke.toml (no memory-sized case
#: for mem10, no mswr_net_tiny for ckpt; since #14 gave cbam_classifier_tiny the ResNet stem
#: its tensor peak is below where tmem10's growth clears the floor, and smoke has no other
#: tmem10 model). With the workflow's instruction pass, time is judged on the counts: work10
#: is the slowdown they should see, slow10 (a busy-wait in the timed pass only) one they
#: cannot, which shows what wall time beside them still does.
WORKFLOW_FAULTS = ("slow10", "work10", "drift")
#: The models a fault is injected into by default (``--fault-models``); the cases of the
#: others are its unaffected set. Every scenario the benchmark runs has both kinds:
#: gate_bench (7 of its 14 models; memory-sized cases of mswr_net_tiny and sharp_tiny
#: affected, of hsifusion_tiny not), ``--quick`` (cbam_classifier_tiny and mswr_net_tiny
#: affected, attention_mha_tiny not) and smoke (cbam_classifier_tiny affected,
#: attention_mha_tiny not).
AFFECTED_MODELS = ("attention_gqa_tiny", "attention_linear_tiny", "cbam_classifier_tiny", "graph_vae_tiny",
                   "llm_decoder_tiny", "mswr_net_tiny", "sharp_tiny")
COMMIT_ID = ("-c", "user.name=torchmatrix bench_gate", "-c", "user.email=bench-gate@localhost")


class BenchError(Exception):
    """The benchmark cannot go on (git, a HEAD without fault hooks, ...)."""


# ---------------------------------------------------------------- pure helpers

def parse_case_key(key: str) -> Dict[str, str]:
    """``model=x;mode=train;batch=2;...`` as a dict of text values."""
    return dict(part.split("=", 1) for part in str(key).split(";") if "=" in part)


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


def _with(vs: Sequence[Dict], verdict: str, kinds: Optional[Sequence[str]] = None) -> bool:
    return any(v["verdict"] == verdict and (kinds is None or v["kind"] in kinds) for v in vs)


def aa_figures(verdicts: Sequence[Dict]) -> Dict:
    """False-alarm figures of an A/A comparison, per kind and overall.

    Both directions are wrong in an A/A run: ``regressed`` (a false alarm: it fails the
    gate) and ``improved`` (a false improvement). ``flagged`` counts cases with either.
    Accuracy counts each case's checks (fidelity and outputs); ``aggregate`` lists the
    run-wide time verdicts, which are not cases.
    """
    out: Dict = {"kinds": {}}
    # The run-wide time verdict is not a case: reported apart, kept out of the per-kind counts.
    out["aggregate"] = [v["verdict"] for v in verdicts if v["case_key"] == AGGREGATE_CASE_KEY]
    for kind in KINDS:
        vs = [v for v in verdicts if v["kind"] == kind and v["verdict"] in COMPARED
              and v["case_key"] != AGGREGATE_CASE_KEY]
        counts = {name: sum(1 for v in vs if v["verdict"] == name) for name in COMPARED}
        out["kinds"][kind] = dict(counts, compared=len(vs), regressed_share=share(counts["regressed"], len(vs)),
                                  improved_share=share(counts["improved"], len(vs)),
                                  inconclusive_share=share(counts["inconclusive"], len(vs)))
    cases = _compared_cases(verdicts)
    regressed = sorted(k for k, vs in cases.items() if _with(vs, "regressed"))
    improved = sorted(k for k, vs in cases.items() if _with(vs, "improved"))
    flagged = sorted(set(regressed) | set(improved))
    out["cases"] = len(cases)
    out["cases_regressed"] = len(regressed)
    out["regressed_share"] = share(len(regressed), len(cases))
    out["regressed_cases"] = regressed
    out["cases_improved"] = len(improved)
    out["improved_share"] = share(len(improved), len(cases))
    out["improved_cases"] = improved
    out["cases_flagged"] = len(flagged)
    out["flagged_share"] = share(len(flagged), len(cases))
    out["not_compared"] = sum(1 for v in verdicts if v["kind"] == "status" and v["verdict"] not in COMPARED)
    return out


def _every_case(case: Dict[str, str]) -> bool:
    return True


def _every_target(case: Dict[str, str], vs: List[Dict], table: Dict) -> bool:
    return True


@dataclass
class Fault:
    """An injected fault (``name``: one of ``gate_faults.INSTALLERS``) and how to score the gate on it."""

    name: str
    title: str
    kinds: Tuple[str, ...]  # verdict kinds that count as detecting it
    #: (case axes) -> the fault's code changes this case when injected into its model
    touched: Callable[[Dict[str, str]], bool] = _every_case
    #: (case axes, the case's verdicts, gate table) -> among the affected cases, the gate
    #: should flag this one (a regression of the expected kind on an affected case that is
    #: not a target is not a false alarm)
    target: Callable[[Dict[str, str], List[Dict], Dict], bool] = _every_target
    #: the fault injects into the models it is given only (``--fault-models``)
    scoped: bool = True

    def injected(self, models: Optional[Sequence[str]]) -> Tuple[str, Optional[Sequence[str]]]:
        """The ``(name, models)`` entry of a fault commit's activation (None: its own choice)."""
        return self.name, (models if self.scoped else None)


def is_affected(fault: Fault, case: Dict[str, str], models: Optional[Sequence[str]] = None) -> bool:
    """The fault, injected into ``models`` (None: every model), changes ``case``."""
    if fault.scoped and models is not None and case.get("model") not in models:
        return False
    return fault.touched(case)


def fault_figures(verdicts: Sequence[Dict], fault: Fault, table: Optional[Dict] = None,
                  models: Optional[Sequence[str]] = None) -> Dict:
    """Detection and false-alarm figures of a fault's A/B comparison (injected into ``models``)."""
    cases = _compared_cases(verdicts)
    affected, targets, detected, affected_flagged, other_kind = [], [], [], [], []
    unaffected, false_alarms, false_improved = [], [], []
    for key, vs in sorted(cases.items()):
        case = parse_case_key(key)
        if not is_affected(fault, case, models):
            unaffected.append(key)
            if _with(vs, "regressed"):
                false_alarms.append(key)
            if _with(vs, "improved"):
                false_improved.append(key)
            continue
        affected.append(key)
        if _with(vs, "regressed", fault.kinds):
            affected_flagged.append(key)
        if fault.target(case, vs, table or {}):
            targets.append(key)
            if _with(vs, "regressed", fault.kinds):
                detected.append(key)
        if any(v["verdict"] == "regressed" and v["kind"] not in fault.kinds for v in vs):
            other_kind.append(key)
    return {
        "cases": len(cases), "targets": len(targets), "detected": len(detected),
        "detected_share": share(len(detected), len(targets)),
        "target_cases": targets, "missed_cases": [k for k in targets if k not in detected],
        "affected": len(affected), "affected_flagged": len(affected_flagged),
        "unaffected": len(unaffected), "false_alarms": len(false_alarms),
        "false_alarm_share": share(len(false_alarms), len(unaffected)),
        "false_alarm_cases": false_alarms,
        "false_improved": len(false_improved), "false_improved_share": share(len(false_improved), len(unaffected)),
        "false_improved_cases": false_improved,
        "other_kind_alarms": len(other_kind), "other_kind_cases": other_kind,
    }


def _memory_target(case: Dict[str, str], vs: List[Dict], table: Dict) -> bool:
    """mem10's targets: cases judged on the process peak (not on the tensor peak, which a buffer
    held outside the step leaves alone) whose +10% is above both memory thresholds."""
    from harness.scenario.gate_config import thresholds_for

    th = thresholds_for(case.get("model", ""), table)
    for v in vs:
        if v["kind"] == "memory" and v.get("baseline") is not None:
            if v.get("measure", "peak_mem_bytes") != "peak_mem_bytes":
                return False
            growth = 0.10 * float(v["baseline"])
            return growth > th["memory_floor_bytes"] and 0.10 > th["memory_frac"]
    return False


def _wall_time_target(case: Dict[str, str], vs: List[Dict], table: Dict) -> bool:
    """slow10's targets: cases whose time is judged on wall time; where both sides carry
    instruction counts they decide, and a busy-wait in the timed pass does not move them."""
    return not any(v["kind"] == "time" and v.get("basis") == "instructions" for v in vs)


def ab_default_rounds(instructions: bool) -> int:
    """``harness ab``'s round count when no ``--rounds`` is given: 1 with ``--instructions`` (the
    counts decide time, and load does not move them), else 3 (wall-time verdicts need 3)."""
    return 1 if instructions else 3


def workflow_run(path: str = WORKFLOW) -> Dict:
    """What the pull-request workflow runs: ``{"scenario": path, "rounds": n, "rounds_given":
    bool, "instructions": bool, "command": text}``.

    Read from the workflow's ``nox -s ab -- ...`` command (a YAML folded block, read as
    text: no YAML parser needed) with ``harness ab``'s own argument parser, so a
    ``--rounds`` the workflow does not pass takes ab's default (``ab_default_rounds``:
    1 with ``--instructions``, else 3). BenchError when there is no such command.
    """
    from harness.commands import ab

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    at = text.find("nox -s ab --")
    if at < 0:
        raise BenchError("%s: no `nox -s ab --` command found" % path)
    lines = [text[at:].split("\n", 1)[0]]
    for line in text[at:].split("\n")[1:]:
        if not line.strip() or line.lstrip().startswith(("- ", "#")) or re.match(r"\s*[\w-]+:(\s|$)", line):
            break
        lines.append(line.strip())
    command = " ".join(lines)
    words = shlex.split(re.sub(r"\$\{\{.*?\}\}", "EXPR", command))[len("nox -s ab --".split()):]
    # A shell variable ($TRUST_FLAG) expands to an optional flag or to nothing: not an argument here.
    words = [w for w in words if not re.fullmatch(r"\$\w+", w)]
    parser = argparse.ArgumentParser(add_help=False)
    ab.add_arguments(parser)
    try:
        args, _ = parser.parse_known_args(words)
    except SystemExit:  # argparse has printed why
        raise BenchError("%s: cannot read `%s` as `harness ab` arguments" % (path, command)) from None
    from harness.scenario.spec import resolve_path

    scenario = args.scenario
    if "/" in scenario and not os.path.exists(os.path.join(ROOT, scenario)):
        scenario = os.path.join("scenarios", os.path.basename(scenario))  # the PR checkout's copy (../pr/...)
    scenario = resolve_path(scenario)  # as `harness ab` does, run from the repository root
    # getattr: an ab without the option (an older checkout) reads the command without it
    instructions = bool(getattr(args, "instructions", False))
    rounds_given = args.rounds is not None
    return {"scenario": scenario if os.path.isabs(scenario) else os.path.join(ROOT, scenario),
            "rounds": args.rounds if rounds_given else ab_default_rounds(instructions),
            "rounds_given": rounds_given, "instructions": instructions, "command": command}


# ---------------------------------------------------------------- the faults (benchmarks/gate_faults.py)

def _mswr_reentrant_train(case: Dict[str, str]) -> bool:
    return case.get("model") == "mswr_net_tiny" and case.get("mode") == "train" \
        and case.get("checkpoint") == "reentrant"


def _tensor_memory_target(case: Dict[str, str], vs: List[Dict], table: Dict) -> bool:
    """tmem10's targets: cases judged on the tensor peak whose growth, at the model's smallest
    calibrated one (``gate_faults.TMEM10_GROWTH``), exceeds both memory thresholds."""
    from harness.scenario.gate_config import thresholds_for

    th = thresholds_for(case.get("model", ""), table)
    frac = gf.TMEM10_GROWTH.get(case.get("model", ""), 0.0)
    for v in vs:
        if v["kind"] == "memory" and v.get("measure") == "tensor_peak_bytes" and v.get("baseline") is not None:
            return frac * float(v["baseline"]) > th["tensor_memory_floor_bytes"] and frac > th["memory_frac"]
    return False


FAULTS: Dict[str, Fault] = {f.name: f for f in (
    Fault("slow10", "10% slower step (busy-wait)", ("time",), target=_wall_time_target),
    Fault("mem10", "+10% peak memory (held buffer)", ("memory",), target=_memory_target),
    Fault("drift", "fp32 outputs rounded via bf16", ("accuracy",),
          touched=lambda case: case.get("precision") == "fp32"),
    Fault("ckpt", "mswr_net_tiny -> legacy reentrant ckpt", ("accuracy", "status"), touched=_mswr_reentrant_train,
          scoped=False),
    Fault("work10", "+10% arithmetic (layers computed twice)", ("time",),
          touched=lambda case: case.get("model") in gf.WORK10_SITES),
    Fault("tmem10", "+10% tensor peak, train (full-size mask)", ("memory",),
          touched=lambda case: case.get("model") in gf.TMEM10_SITES and case.get("mode") == "train",
          target=_tensor_memory_target),
)}


def apply_faults(tree: str, faults: fault_hooks.Faults) -> List[str]:
    """Make the checkout ``tree`` inject ``faults`` (``(name, models)`` entries) by adding files only
    (``gate_faults.activate``); returns them, relative to ``tree``. BenchError when the tree's
    runner declares no fault hooks (a HEAD older than them would run every fault unfaulted)."""
    if not os.path.isfile(os.path.join(tree, "harness", "runner", "fault_hooks.py")):
        raise BenchError("%s: harness/runner/fault_hooks.py is missing; this benchmark injects its faults through "
                         "the runner's fault hooks, which this revision does not have" % tree)
    return gf.activate(tree, faults)


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


def fault_commit(clone: str, base: str, faults: fault_hooks.Faults, message: str) -> str:
    """Commit, on top of ``base`` in ``clone``, the files that inject ``faults``; return the commit id."""
    _git(clone, "checkout", "--quiet", "--detach", base)
    added = apply_faults(clone, faults)
    _git(clone, "add", "--", *added)
    _git(clone, *COMMIT_ID, "commit", "--quiet", "-m", message)
    commit = _git(clone, "rev-parse", "HEAD")
    _git(clone, "checkout", "--quiet", "--detach", base)
    return commit


@contextlib.contextmanager
def environment(name: str, value: str):
    """``os.environ[name] = value`` for the block (the rounds' processes inherit it)."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


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
             extra_args: Sequence[str], log_path: str, console: Console, instructions: bool = False) -> Dict:
    """One A/B run (``instructions``: with ab's instruction pass); returns its exit code, wall
    time, round times and load averages."""
    out_dir = os.path.join(out, label)
    loads: List[float] = []

    def progress(text: str) -> None:
        if hasattr(os, "getloadavg"):
            loads.append(os.getloadavg()[0])
        console.progress("%s: %s" % (label, text))

    console("%s: A %s vs B %s, %d rounds each%s -> %s" % (
        label, base[:10], head[:10], rounds, ", instructions counted in the first" if instructions else "", out_dir))
    t0 = time.time()
    with output_to(log_path):
        code = run_ab(clone, base, head, scenario, rounds=rounds, out_dir=out_dir, python=sys.executable,
                      extra_args=list(extra_args), timeout_s=1800.0, instructions=instructions, print_fn=progress)
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


def memory_shown(held: Dict[str, List[int]], verdicts: Sequence[Dict], keys: Sequence[str]) -> List[Dict]:
    """For mem10: per case, the buffer held (median over candidate rounds) and how much of
    it the recorded peak shows (candidate median peak - baseline median peak) / buffer."""
    out = []
    for v in verdicts:
        if v["kind"] == "memory" and v["case_key"] in keys and v["case_key"] in held:
            extra = statistics.median(held[v["case_key"]])
            growth = float(v["candidate"]) - float(v["baseline"])
            out.append({"case_key": v["case_key"], "baseline": v["baseline"], "candidate": v["candidate"],
                        "held_bytes": extra, "shown": growth / extra if extra else None, "verdict": v["verdict"]})
    return out


def side_records(folder: str) -> List[Dict]:
    """The good records of the ``*.jsonl`` files of ``folder`` (one side of an A/B run)."""
    from harness.record.store import read_records

    out: List[Dict] = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".jsonl"):
            out.extend(read_records(os.path.join(folder, name)))
    return out


def round_medians(records: Sequence[Dict]) -> Dict[str, List[Tuple[float, Optional[float]]]]:
    """Per case key, one (median step time, median of step / probe per sample or None) per
    ok record (one record = one round: one process), as the gate computes them."""
    out: Dict[str, List[Tuple[float, Optional[float]]]] = {}
    for rec in records:
        t = rec.get("timing") or {}
        samples = [x for x in t.get("samples_s") or [] if x and x > 0]
        if rec.get("status") != "ok" or not samples:
            continue
        probes = t.get("probe_samples_s") or []
        rel = statistics.median(s / p for s, p in zip(samples, probes)) \
            if len(probes) == len(samples) and all(p and p > 0 for p in probes) else None
        out.setdefault(rec["case_key"], []).append((statistics.median(samples), rel))
    return out


def round_spread(per_case: Dict[str, List[Tuple[float, Optional[float]]]]) -> Dict:
    """How far a case's round medians spread: per case the sample sd of the log of its round
    medians, of the step time and of step / probe (where every round has the probe), the
    median of those over the cases with 2 or more rounds, and the case whose step medians
    span the widest range (its lowest and highest round median)."""
    step_sd, rel_sd, widest = [], [], None
    for key, rows in sorted(per_case.items()):
        if len(rows) < 2:
            continue
        steps = [r[0] for r in rows]
        step_sd.append(statistics.stdev(math.log(x) for x in steps))
        if all(r[1] is not None for r in rows):
            rel_sd.append(statistics.stdev(math.log(r[1]) for r in rows))
        if widest is None or max(steps) / min(steps) > widest[2] / widest[1]:
            widest = (key, min(steps), max(steps), len(steps))
    return {"cases": len(step_sd), "step_sd_log": statistics.median(step_sd) if step_sd else None,
            "probe_cases": len(rel_sd), "probe_sd_log": statistics.median(rel_sd) if rel_sd else None,
            "widest": widest}


def print_spread(console: Console, label: str, out_dir: str) -> Dict:
    """The round-spread line of each side of an A/B run; returns the figures."""
    figs = {}
    for side in ("A", "B"):
        f = figs[side] = round_spread(round_medians(side_records(os.path.join(out_dir, side))))
        if not f["cases"]:
            continue
        w = f["widest"]
        console("  %s side %s round spread (sd of the log of a case's round medians, median over %d cases): step "
                "%.3f, step/probe %s; widest: %s, round medians %.2f-%.2f ms over %d rounds" % (
                    label, side, f["cases"], f["step_sd_log"],
                    "%.3f" % f["probe_sd_log"] if f["probe_sd_log"] is not None else "n/a (no probe)",
                    w[0], 1e3 * w[1], 1e3 * w[2], w[3]))
    return figs


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
    def goal(value: Optional[float]) -> str:
        return "meets" if (value or 0) <= GOAL_FALSE_ALARM else "MISSES"

    console("  overall, of compared cases: called regressed %s (%s the goal <= %.0f%%), called improved %s (%s "
            "the goal <= %.0f%%), either %s; timing inconclusive %s" % (
                fmt_share(fig["cases_regressed"], fig["cases"]), goal(fig["regressed_share"]),
                100 * GOAL_FALSE_ALARM, fmt_share(fig["cases_improved"], fig["cases"]),
                goal(fig["improved_share"]), 100 * GOAL_FALSE_ALARM, fmt_share(fig["cases_flagged"], fig["cases"]),
                fmt_share(t["inconclusive"], t["compared"])))
    for key in fig["regressed_cases"][:10]:
        console("    false alarm (regressed): %s" % key)
    for key in fig["improved_cases"][:10]:
        console("    false improvement: %s" % key)


def _unaffected_cell(n: int, f: Dict) -> str:
    return fmt_share(n, f["unaffected"]) if f["unaffected"] else "none unaffected"


def print_fault_table(console: Console, rows: List[Dict]) -> None:
    console("")
    console("Injected faults (targets = affected cases the gate should flag, of all compared; detected = targets "
            "regressed in the expected kind; false alarms / false improved = unaffected cases called regressed / "
            "improved, any kind; other-kind = affected cases regressed in another kind):")
    head = "  %-7s %-40s %-9s %-18s %-10s %-16s %-16s %-10s %s" % (
        "fault", "what", "targets", "detected", "unaffected", "false alarms", "false improved", "other-kind",
        "A/B wall")
    console(head)
    for r in rows:
        f = r["figures"]
        console("  %-7s %-40s %-9s %-18s %-10s %-16s %-16s %-10s %.0f s (%d rounds each)" % (
            r["fault"], r["title"], "%d/%d" % (f["targets"], f["cases"]), fmt_share(f["detected"], f["targets"]),
            str(f["unaffected"]), _unaffected_cell(f["false_alarms"], f), _unaffected_cell(f["false_improved"], f),
            str(f["other_kind_alarms"]), r["run"]["wall_s"], len(r["run"]["round_s"]) // 2))
        if r.get("models"):
            console("          injected into %s" % ", ".join(r["models"]))
        if f["targets"] and f["detected_share"] is not None and f["detected_share"] < GOAL_DETECTION:
            console("          MISSES the goal >= %.0f%%; missed e.g. %s" % (
                100 * GOAL_DETECTION, "; ".join(f["missed_cases"][:3])))
        if r["fault"] == "mem10":
            console("          every affected case holds +10%%; the gate flagged %d of all %d affected (%d are judged "
                    "on the process peak above its floor; the tensor peak does not see the buffer)" % (
                        f["affected_flagged"], f["affected"], f["targets"]))
        if r["fault"] == "tmem10":
            console("          every affected train step keeps ~10%% more tensor memory; the gate flagged %d of all "
                    "%d affected (%d are above both thresholds)" % (f["affected_flagged"], f["affected"], f["targets"]))
        for key in f["false_alarm_cases"][:5]:
            console("          false alarm: %s" % key)
        for key in f["false_improved_cases"][:5]:
            console("          false improvement: %s" % key)


def sensitivity(run: Dict, fault: Optional[Fault], tables: Dict[str, Dict], rounds: int,
                models: Optional[Sequence[str]] = None) -> List[Dict]:
    """Figures for the first k rounds of each side and for each thresholds table."""
    df_b, df_c = load_sides(run["out_dir"])
    rows = []
    for name, table in tables.items():
        for k in round_counts(rounds):
            verdicts = regate(df_b, df_c, table, k)
            fig = aa_figures(verdicts) if fault is None else fault_figures(verdicts, fault, table, models)
            rows.append({"table": name, "rounds": k, "figures": fig})
    return rows


def print_sensitivity(console: Console, label: str, rows: List[Dict], fault: Optional[Fault]) -> None:
    console("  %s with the first k rounds per side:" % label)
    for r in rows:
        f = r["figures"]
        if fault is None:
            console("    %-18s k=%-2d regressed %-15s improved %-15s %s  time inconclusive %s" % (
                r["table"], r["rounds"], fmt_share(f["cases_regressed"], f["cases"]),
                fmt_share(f["cases_improved"], f["cases"]), _kind_cells(f),
                fmt_share(f["kinds"]["time"]["inconclusive"], f["kinds"]["time"]["compared"])))
        else:
            console("    %-18s k=%-2d detected %-16s false alarms %-14s false improved %-14s other-kind %d" % (
                r["table"], r["rounds"], fmt_share(f["detected"], f["targets"]),
                fmt_share(f["false_alarms"], f["unaffected"]) if f["unaffected"] else "-",
                fmt_share(f["false_improved"], f["unaffected"]) if f["unaffected"] else "-",
                f["other_kind_alarms"]))


# ---------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Measure the regression gate: A/A false alarms and injected faults, "
                                            "through the real A/B runner on a throw-away clone of HEAD.")
    p.add_argument("--rounds", type=int, help="rounds per side of every A/B run (default 10; 3 with --quick; 1 with "
                                              "--instructions; the workflow's with --workflow)")
    p.add_argument("--quick", action="store_true", help="a fast look: %d rounds, three models (%s)" % (
        QUICK_ROUNDS, QUICK_ONLY[0]))
    p.add_argument("--workflow", action="store_true",
                   help="measure what the pull-request workflow (.github/workflows/ab-gate.yml) runs: its scenario, "
                        "--instructions and round count, read from its `nox -s ab` command (smoke.toml, with "
                        "--instructions, 1 round), and by default the faults that have affected cases there (%s)"
                        % ", ".join(WORKFLOW_FAULTS))
    p.add_argument("--instructions", action="store_true",
                   help="count instructions under valgrind in the first round of each side (`harness ab "
                        "--instructions`): the gate judges time on the counts, so the default --rounds becomes 1 "
                        "(with --workflow: taken from the workflow's command when it passes it)")
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: results/bench-gate)")
    p.add_argument("--only-aa", action="store_true", help="run the A/A comparison only")
    p.add_argument("--skip-aa", action="store_true", help="run the faults only")
    p.add_argument("--faults", default=None, help="comma-separated faults to inject, from %s (default: all; with "
                                                  "--workflow: %s)" % (", ".join(FAULTS), ",".join(WORKFLOW_FAULTS)))
    p.add_argument("--fault-models", default=",".join(AFFECTED_MODELS), metavar="M1,M2|all",
                   help="the models the faults are injected into; the other models' cases are the unaffected set "
                        "(default: %s; `all`: every model, no unaffected set but a fault's own)"
                        % ",".join(AFFECTED_MODELS))
    p.add_argument("--scenario", default=None, help="scenario file or a name in scenarios/ (default: gate_bench)")
    p.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2",
                   help="passed to every `harness run` (keep matching cases only); repeatable")
    p.add_argument("--repo", default=ROOT, help="repository whose HEAD is measured (default: this checkout)")
    p.add_argument("--keep-clone", action="store_true", help="keep the throw-away clone (its path is printed)")
    p.add_argument("--sample", default=None, help="which run's Markdown summary to print at the end "
                                                  "(aa or a fault name; default: the last run)")
    return p


def make_plan(args: argparse.Namespace, workflow: str = WORKFLOW) -> Dict:
    """What to run, from the parsed options: scenario, rounds, whether ab counts instructions,
    faults, extra ``harness run`` arguments, the models to inject into (None: all) and a line
    saying what is measured. BenchError for options that do not fit together."""
    from harness.scenario.spec import resolve_path

    if args.workflow and args.quick:
        raise BenchError("--workflow and --quick measure different things: pick one")
    if args.workflow and args.scenario:
        raise BenchError("--workflow takes the workflow's scenario; leave --scenario out")
    what = "the scenario given" if args.scenario else "the tuned gate_bench scenario (not what the workflow runs)"
    instructions = bool(args.instructions)
    if args.workflow:
        wf = workflow_run(workflow)
        scenario = wf["scenario"]
        instructions = instructions or wf["instructions"]
        # the workflow's --rounds, else ab's default for the instruction pass as run here (this
        # option may add it to a workflow that does not pass it)
        rounds = wf["rounds"] if wf["rounds_given"] else ab_default_rounds(instructions)
        default_faults: Sequence[str] = WORKFLOW_FAULTS
        what = "what %s runs: `%s`" % (os.path.relpath(workflow, ROOT), wf["command"])
        if instructions and not wf["instructions"]:
            what += ", with --instructions added"
    else:
        scenario = resolve_path(args.scenario) if args.scenario else DEFAULT_SCENARIO
        rounds = 1 if instructions else QUICK_ROUNDS if args.quick else 10
        default_faults = tuple(FAULTS)
    if args.rounds is not None:
        rounds = args.rounds
    scenario = os.path.abspath(scenario)
    if not os.path.isfile(scenario):
        raise BenchError("scenario %s: no such file" % scenario)
    if rounds < 1:
        raise BenchError("--rounds must be >= 1")
    if args.only_aa:
        faults: List[str] = []
    elif args.faults is None:
        faults = list(default_faults)
    else:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise BenchError("unknown fault(s) %s; choose from %s" % (", ".join(unknown), ", ".join(FAULTS)))
    models = None if args.fault_models.strip() == "all" else \
        tuple(m.strip() for m in args.fault_models.split(",") if m.strip())
    if models is not None and not models:
        raise BenchError("--fault-models: name at least one model, or `all`")
    extra: List[str] = []
    for item in (list(QUICK_ONLY) if args.quick else []) + args.only:
        extra += ["--only", item]
    return {"scenario": scenario, "rounds": rounds, "faults": faults, "extra": extra, "models": models,
            "what": what, "instructions": instructions}


def threshold_tables(table: Dict) -> Dict[str, Dict]:
    """The tables the sensitivity section regates with: the scenario's, the defaults (when
    the scenario has its own), each also with ``time_basis = "probe"``, and the scenario's
    with ``time_test = "samples"`` (the sample test trusted whatever the round count: what
    one round a side gave before the gate required 3)."""
    samples = {"time_test": "samples"}
    if not table:  # the scenario's table is the defaults (smoke.toml has no [gate])
        return {"defaults": {}, "defaults +probe": {"time_basis": "probe"}, "defaults +samples": samples}
    return {"scenario": table, "scenario +probe": dict(table, time_basis="probe"),
            "scenario +samples": dict(table, **samples), "defaults": {}, "defaults +probe": {"time_basis": "probe"}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = make_plan(args)
        if plan["instructions"] and shutil.which("valgrind") is None:
            # without it every count is "unsupported" and one round a side decides no time verdict
            raise BenchError("counting instructions needs valgrind on PATH")
    except BenchError as exc:
        print("bench_gate: %s" % exc, file=sys.stderr)
        return 2
    scenario, rounds, faults, extra, models, instructions = (
        plan[k] for k in ("scenario", "rounds", "faults", "extra", "models", "instructions"))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "rounds.log")

    from harness.analysis.gate import load_gate_table

    table = load_gate_table(scenario)
    # "+probe": the same records gated on step time / speed-probe time (time_basis = "probe")
    tables = threshold_tables(table)
    console = Console()
    console("bench_gate: scenario %s, %d rounds per side%s%s; python %s; out %s" % (
        os.path.relpath(scenario, ROOT), rounds, " (%s)" % " ".join(extra) if extra else "",
        ", instructions counted (valgrind) in the first round of each side" if instructions else "",
        sys.executable, out))
    console("  measuring %s" % plan["what"])
    console("  gate thresholds: %s; faults injected into %s; rounds' output goes to %s" % (
        json.dumps(table, sort_keys=True) if table else "the gate's defaults (the scenario has no [gate] table)",
        "every model" if models is None else ", ".join(models), log_path))
    doc: Dict = {"scenario": scenario, "rounds": rounds, "instructions": instructions, "extra_args": extra,
                 "gate_table": table,
                 "measuring": plan["what"], "fault_models": list(models) if models is not None else "all",
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": {}}
    clone = None
    try:
        clone, base = make_clone(args.repo)
        console("  throw-away clone of %s at %s: %s" % (args.repo, base[:10], clone))
        doc["commit"] = base
        if not args.skip_aa:
            run = run_pair(clone, base, base, "aa", scenario, rounds, out, extra, log_path, console, instructions)
            with open(os.path.join(run["out_dir"], "gate-verdicts.json"), encoding="utf-8") as fh:
                verdicts = json.load(fh)["verdicts"]
            fig = aa_figures(verdicts)
            print_aa(console, fig, run)
            spread = print_spread(console, "A/A", run["out_dir"])
            sens = sensitivity(run, None, tables, rounds)
            print_sensitivity(console, "A/A", sens, None)
            doc["runs"]["aa"] = {"run": run, "figures": fig, "spread": spread, "sensitivity": sens}
        rows = []
        for name in faults:
            fault = FAULTS[name]
            head = fault_commit(clone, base, [fault.injected(models)],
                                "bench_gate: inject %s (%s)" % (fault.name, fault.title))
            held_log = os.path.join(out, name, "injected-held.jsonl")  # mem10's notes, see gf.MEM_LOG_ENV
            if os.path.exists(held_log):
                os.remove(held_log)
            os.makedirs(os.path.dirname(held_log), exist_ok=True)
            with environment(gf.MEM_LOG_ENV, held_log), environment(fault_hooks.ENV, "1"):
                run = run_pair(clone, base, head, name, scenario, rounds, out, extra, log_path, console,
                               instructions)
            with open(os.path.join(run["out_dir"], "gate-verdicts.json"), encoding="utf-8") as fh:
                verdicts = json.load(fh)["verdicts"]
            fig = fault_figures(verdicts, fault, table, models)
            row = {"fault": name, "title": fault.title, "commit": head, "run": run, "figures": fig,
                   "models": list(models) if models is not None and fault.scoped else None}
            rows.append(row)
            print_fault_table(console, [row])
            if name == "mem10":
                row["memory_shown"] = memory_shown(gf.held_bytes(held_log), verdicts, fig["target_cases"])
                for m in row["memory_shown"]:
                    console("          %-60s %6.1f -> %6.1f MiB, held %5.1f MiB, the peak shows %3.0f%% of it: %s" % (
                        m["case_key"][:60], m["baseline"] / 2 ** 20, m["candidate"] / 2 ** 20,
                        m["held_bytes"] / 2 ** 20, 100 * (m["shown"] or 0), m["verdict"]))
            row["spread"] = print_spread(console, name, run["out_dir"])
            row["sensitivity"] = sensitivity(run, fault, tables, rounds, models)
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
