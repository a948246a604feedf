"""The regression gate: compare a candidate's records with a baseline's, give verdicts.

Entry points: ``run_gate`` (files in, exit code out; prints the Markdown summary,
writes the verdicts JSON) and ``compare`` (two DataFrames from
``harness.analysis.load.load_records`` in, a list of verdict dicts out; the HTML
report uses it too). ``python -m harness.analysis.gate --help`` runs it stand-alone.

Exit codes (``EXIT_*``):

* 0 ``EXIT_PASS``: nothing regressed (improved, inconclusive, new and vanished cases
  do not fail the gate).
* 1 ``EXIT_REGRESSION``: at least one verdict is ``regressed``.
* 2 ``EXIT_INPUT_ERROR``: a missing file or folder, a store with no good record, a
  record of another schema version, baseline and candidate from different scenarios,
  a bad ``[gate]`` table or override, or no case comparable at all (every pair in
  different environments). The message names the file.
* 3 ``EXIT_INTERNAL_ERROR``: a bug; the traceback goes to stderr.

Matching. Records are matched by ``case_key`` and environment fingerprint (torch,
python, device, CUDA... as ``harness.envinfo`` computes it). A case key present on both
sides but only in different environments is ``not_comparable`` (the differing fields
are named), never compared. Several records of one case in one environment on one side
(rounds of an A/B run) are pooled.

Verdicts, one dict per (case, environment, kind); ``kind`` is ``time``, ``memory``,
``accuracy`` or ``status``; ``verdict`` one of ``VERDICTS``:

* time: ``ratio`` is candidate median / baseline median of the pooled samples.
  ``regressed`` only when the ratio exceeds ``time_factor`` AND the change is
  significant after Benjamini-Hochberg correction over every timing test of the run
  (``q_value <= q``); ``improved`` symmetrically (ratio below 1/time_factor).
  The test (``time_test``, see ``harness.gate_config``) is a two-sided Mann-Whitney U
  on the pooled raw samples, or, with enough rounds per side, Welch's t-test on the
  log of the per-round medians, because samples of one process share its speed and
  are not independent. When every ok record of both sides carries the runner's
  speed-probe times (``harness.speed_probe``: a fixed workload timed after each
  sample) from the same probe, ``probe_ratio`` reports the change of step time /
  probe time, and with ``time_basis = "probe"`` the test and ``ratio`` use it: the
  machine's speed changes cancel (a case's spread between rounds fell from 0.20 to
  0.07, sd of the log, on the shared 2-core machine) and a 10% slowdown of every case
  was found in 17 of 68 cases with 5 rounds a side instead of 0. Opt-in, because the
  code under test can change the probe's own speed: the probe's first version (no
  untimed warm-up) read a case 1.24× slower by its plain medians as 0.77×. A
  probe-relative change whose plain medians moved the other way is ``inconclusive``.
  ``median_ratio`` is the plain ratio of medians either way; ``relative_to`` names
  the probe used or is None. ``inconclusive`` when the sample sizes make significance
  impossible (smallest achievable exact Mann-Whitney p-value above q: 3 vs 3 samples
  can never reach p < 0.1), or when the ratio is beyond the factor but the test is not
  significant (the noise is too large to tell), or, with ``time_test = "auto"`` and
  fewer than ``min_rounds`` rounds a side, when the sample test is significant beyond
  the factor: one process's samples are not independent, and on the 2-core machine an
  A/A comparison of one round a side called 32-41% of 68 cases regressed this way in
  two runs (0% with 3 or more rounds a side; ``benchmarks/bench_gate.py``).
  ``time_test = "samples"`` trusts single runs. Otherwise ``unchanged``.
* memory: ``regressed`` when the peak grows by more than ``memory_frac`` of the
  baseline AND by more than ``memory_floor_bytes``; ``improved`` symmetrically.
  Per side the median over rounds is used. Different measuring methods on the two
  sides are ``not_comparable``.
* accuracy, ``check`` ``fidelity``: ``regressed`` when the fidelity check passed in
  every baseline round and fails in a candidate round, or the relative error
  (outputs, gradients) was within its tolerance and now exceeds it; ``improved`` when
  it failed in every baseline round and passes in every candidate round.
  ``check`` ``task``: ``regressed`` when the task metric worsens (direction from
  ``higher_is_better``) by more than ``task_drop`` (metric units) AND more than
  ``task_drop_frac`` of the baseline's magnitude.
* status: ``regressed`` when the case was ``ok`` in every baseline round and is
  anything else in a candidate round, or worked in some baseline round and in no
  candidate round (a new failure: always a regression); ``improved`` when it never
  worked before and works in every candidate round. ``new`` and ``vanished``: a
  (case, environment) on one side only. ``not_comparable``: see Matching.

Every verdict dict has ``case_key, model, env_fingerprint, env_label, kind, verdict,
baseline, candidate, ratio, p_value, q_value, reason``, plus ``check``,
``baseline_env_label``, ``baseline_env_fingerprint``, ``env`` (torch, python, device
as text), ``n_baseline``, ``n_candidate``, ``rounds_baseline``, ``rounds_candidate``,
``test`` and ``how`` (the timing test, as a name and as text), ``median_ratio``,
``probe_ratio`` and ``relative_to`` (time), ``unit`` and
``threshold`` (the numbers used) where they apply. ``baseline``/``candidate`` are
median seconds (time), median peak bytes (memory), the worst relative error or the
task metric (accuracy), status counts (status). q-values come from one BH correction
over every testable timing comparison of the run; a per-model ``q`` only moves that
model's cut.
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import traceback
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

from harness.analysis.gate_markdown import format_duration, render_markdown
from harness.analysis.load import InputError, load_records
from harness.gate_config import apply_overrides, thresholds_for, validate_gate_table

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_INPUT_ERROR = 2
EXIT_INTERNAL_ERROR = 3

KINDS = ("status", "accuracy", "memory", "time")
VERDICTS = ("regressed", "improved", "unchanged", "inconclusive", "not_comparable", "new", "vanished")

#: Version of the verdicts JSON written by ``run_gate``.
VERDICTS_SCHEMA = "torchmatrix-gate/1"

#: Environment fields named when two fingerprints differ.
ENV_FIELDS = ("torch", "python", "numpy", "cuda", "cudnn", "device", "device_name")


# ---------------------------------------------------------------- statistics helpers

def min_exact_mannwhitney_p(n1: int, n2: int) -> float:
    """Smallest two-sided p-value an exact Mann-Whitney U test can give for n1 vs n2 samples.

    It is reached when the two samples do not overlap at all: ``2 / C(n1+n2, n1)``.
    """
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def mannwhitney_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value, as ``scipy.stats.mannwhitneyu(x, y)`` gives it.

    Same method choice as scipy's ``"auto"``: exact for small samples without ties,
    else the normal approximation with tie and continuity corrections, computed here
    directly because scipy's call costs ~7 ms on the 2-core CI machine (a full matrix
    has thousands of cases).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        return 1.0
    xy = np.concatenate([x, y])
    _, inverse, counts = np.unique(xy, return_inverse=True, return_counts=True)
    ties = bool((counts > 1).any())
    if (n1 <= 8 or n2 <= 8) and not ties:
        return float(stats.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    r1 = float(average_rank[inverse[:n1]].sum())
    u1 = r1 - n1 * (n1 + 1) / 2.0
    u = max(u1, n1 * n2 - u1)
    n = n1 + n2
    tie_term = float((counts.astype(float) ** 3 - counts).sum())
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return float(min(1.0, max(0.0, math.erfc(z / math.sqrt(2.0)))))


def bh_qvalues(p_values: Sequence[float]) -> List[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given."""
    p = np.asarray(list(p_values), dtype=float)
    if p.size == 0:
        return []
    fdc = getattr(stats, "false_discovery_control", None)
    if fdc is not None:
        return [float(x) for x in fdc(p, method="bh")]
    m = p.size  # pragma: no cover - scipy < 1.11
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return [float(x) for x in out]


def _num(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _positive_samples(value: Any) -> List[float]:
    if value is None or isinstance(value, float):
        return []
    try:
        items = list(value)
    except TypeError:
        return []
    out = []
    for item in items:
        x = _num(item)
        if x is not None and x > 0:
            out.append(x)
    return out


def _short(text: Any, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------- grouping

def _fingerprint(row: Dict) -> str:
    fp = row.get("env_fingerprint")
    if isinstance(fp, str) and fp:
        return fp
    parts = ["%s=%s" % (f, row.get(f)) for f in ("torch", "python", "cuda", "device", "device_name")]
    return "fields:" + ";".join(parts)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _env_text(row: Dict) -> str:
    bits = []
    for field, label in (("torch", "torch"), ("python", "py"), ("device", ""), ("cuda", "CUDA")):
        value = row.get(field)
        if not _missing(value):
            bits.append(("%s %s" % (label, value)).strip())
    return ", ".join(bits)


def _env_diff(b: Dict, c: Dict) -> str:
    diffs = []
    for field in ENV_FIELDS:
        vb, vc = b.get(field), c.get(field)
        if _missing(vb) and _missing(vc):
            continue
        if str(vb) != str(vc):
            diffs.append("%s %s → %s" % (field, vb, vc))
    if not diffs:
        return "environment fingerprints differ (%s vs %s) in fields other than %s" % (
            _short(b.get("_fp"), 24), _short(c.get("_fp"), 24), ", ".join(ENV_FIELDS))
    return "different environments: " + "; ".join(diffs)


class _Group:
    """The records (rows of ``load_records``, as dicts) of one (case_key, fingerprint) on one side."""

    def __init__(self, rows: List[Dict]):
        self.rows = rows
        self.first = rows[0]
        self.statuses = [str(r.get("status")) for r in rows]
        self.reasons = [r.get("reason") for r in rows]
        self.ok = [r for r in rows if r.get("status") == "ok"]

    @property
    def label(self) -> Optional[str]:
        label = self.first.get("env_label")
        return label if isinstance(label, str) else None

    def samples(self) -> Tuple[List[float], List[float]]:
        """(pooled samples, per-round medians) over the ok records."""
        pooled, round_medians = [], []
        for row in self.ok:
            samples = _positive_samples(row.get("samples_s"))
            if samples:
                pooled.extend(samples)
                round_medians.append(_median(samples))
            else:
                median = _num(row.get("median_s"))
                if median is not None and median > 0:
                    pooled.append(median)
                    round_medians.append(median)
        return pooled, round_medians

    def relative(self) -> Optional[Tuple[str, List[float], List[float]]]:
        """(probe description, pooled step/probe ratios, per-round median ratios) over the ok
        records; None unless every one holds probe times aligned with its samples."""
        descriptions, pooled, round_medians = set(), [], []
        for row in self.ok:
            samples = _positive_samples(row.get("samples_s"))
            probes = _positive_samples(row.get("probe_samples_s"))
            description = row.get("probe")
            if not samples or len(probes) != len(samples) or not isinstance(description, str):
                return None
            ratios = [s / p for s, p in zip(samples, probes)]
            descriptions.add(description)
            pooled.extend(ratios)
            round_medians.append(_median(ratios))
        if len(descriptions) != 1:
            return None
        return descriptions.pop(), pooled, round_medians

    def column(self, name: str, ok_only: bool = True) -> List[Any]:
        rows = self.ok if ok_only else self.rows
        return [r.get(name) for r in rows if not _missing(r.get(name))]


def _groups(df: pd.DataFrame) -> Dict[Tuple[str, str], _Group]:
    grouped: Dict[Tuple[str, str], List[Dict]] = {}
    for row in df.to_dict("records"):
        if _missing(row.get("case_key")):
            continue
        fp = _fingerprint(row)
        row["_fp"] = fp
        grouped.setdefault((str(row["case_key"]), fp), []).append(row)
    return {k: _Group(v) for k, v in sorted(grouped.items())}


# ---------------------------------------------------------------- verdict builders

def _verdict(kind: str, verdict: str, key: str, model: Any, fp: str, label: Optional[str], **fields) -> Dict:
    out = {
        "case_key": key, "model": model, "env_fingerprint": fp, "env_label": label,
        "kind": kind, "verdict": verdict, "baseline": None, "candidate": None,
        "ratio": None, "p_value": None, "q_value": None, "reason": "",
    }
    out.update(fields)
    return out


def _status_verdict(key, model, fp, label, gb: _Group, gc: _Group, base_fields) -> Dict:
    sb, sc = gb.statuses, gc.statuses
    b_ok_all = all(s == "ok" for s in sb)
    b_ok_any = any(s == "ok" for s in sb)
    c_ok_all = all(s == "ok" for s in sc)
    c_ok_any = any(s == "ok" for s in sc)
    bad = [(s, r) for s, r in zip(sc, gc.reasons) if s != "ok"]
    first_bad = ("%s: %s" % (bad[0][0], _short(bad[0][1]))) if bad and isinstance(bad[0][1], str) else (
        bad[0][0] if bad else "")

    def summary(statuses):
        counts: Dict[str, int] = {}
        for s in statuses:
            counts[s] = counts.get(s, 0) + 1
        return ", ".join("%s×%d" % (s, n) if n > 1 else s for s, n in counts.items())

    fields = dict(base_fields, baseline=summary(sb), candidate=summary(sc))
    if b_ok_all and not c_ok_all:
        rounds = "" if len(sc) == 1 else " in %d of %d candidate rounds" % (len(bad), len(sc))
        return _verdict("status", "regressed", key, model, fp, label,
                        reason="new failure%s: ok → %s" % (rounds, first_bad), **fields)
    if b_ok_any and not c_ok_any:
        return _verdict("status", "regressed", key, model, fp, label,
                        reason="new failure: worked in %d of %d baseline rounds, in no candidate round (%s)" % (
                            sb.count("ok"), len(sb), first_bad), **fields)
    if not b_ok_any and c_ok_all:
        return _verdict("status", "improved", key, model, fp, label,
                        reason="now works (was %s)" % summary(sb), **fields)
    if b_ok_all and c_ok_all:
        reason = "ok"
    elif not b_ok_any and not c_ok_any:
        reason = "fails in both (%s → %s)" % (summary(sb), summary(sc))
    else:
        reason = "flaky (%s → %s)" % (summary(sb), summary(sc))
    return _verdict("status", "unchanged", key, model, fp, label, reason=reason, **fields)


def _memory_verdict(key, model, fp, label, gb: _Group, gc: _Group, th: Dict, base_fields) -> Optional[Dict]:
    pb = [x for x in (_num(v) for v in gb.column("peak_mem_bytes")) if x is not None]
    pc = [x for x in (_num(v) for v in gc.column("peak_mem_bytes")) if x is not None]
    if not pb or not pc:
        return None
    fields = dict(base_fields, unit="bytes", n_baseline=len(pb), n_candidate=len(pc),
                  threshold={"memory_frac": th["memory_frac"], "memory_floor_bytes": th["memory_floor_bytes"]})
    mb, mc = set(map(str, gb.column("mem_method"))), set(map(str, gc.column("mem_method")))
    if mb and mc and mb != mc:
        return _verdict("memory", "not_comparable", key, model, fp, label,
                        reason="measured differently: %s vs %s" % ("/".join(sorted(mb)), "/".join(sorted(mc))),
                        **fields)
    b, c = _median(pb), _median(pc)
    ratio = c / b if b > 0 else None
    growth = c - b
    frac, floor = th["memory_frac"], th["memory_floor_bytes"]
    fields.update(baseline=b, candidate=c, ratio=ratio)
    mib = 1024.0 * 1024.0
    if growth > frac * b and growth > floor:
        return _verdict("memory", "regressed", key, model, fp, label,
                        reason="peak +%.1f MiB (+%s), above %.0f%% and %.1f MiB" % (
                            growth / mib, ("%.0f%%" % (100 * growth / b)) if b > 0 else "from 0",
                            100 * frac, floor / mib), **fields)
    if -growth > frac * b and -growth > floor:
        return _verdict("memory", "improved", key, model, fp, label,
                        reason="peak %.1f MiB (%.0f%%)" % (growth / mib, 100 * growth / b), **fields)
    return _verdict("memory", "unchanged", key, model, fp, label,
                    reason="peak %+.1f MiB, within %.0f%% or %.1f MiB" % (growth / mib, 100 * frac, floor / mib),
                    **fields)


def _max_err(group: _Group) -> Optional[float]:
    errs = [x for x in (_num(v) for v in group.column("out_rel_err") + group.column("grad_rel_err")) if x is not None]
    return max(errs) if errs else None


def _fidelity_verdict(key, model, fp, label, gb: _Group, gc: _Group, base_fields) -> Optional[Dict]:
    ab = [bool(v) for v in gb.column("acc_passed")]
    ac = [bool(v) for v in gc.column("acc_passed")]
    if not ab or not ac:
        return None
    eb, ec = _max_err(gb), _max_err(gc)
    tols_b = [x for x in (_num(v) for v in gb.column("acc_tolerance")) if x is not None]
    tols_c = [x for x in (_num(v) for v in gc.column("acc_tolerance")) if x is not None]
    tol_b = min(tols_b) if tols_b else None
    tol_c = min(tols_c) if tols_c else None
    ratio = (ec / eb) if (eb is not None and ec is not None and eb > 0) else None
    fields = dict(base_fields, check="fidelity", unit="relative error", baseline=eb, candidate=ec, ratio=ratio,
                  n_baseline=len(ab), n_candidate=len(ac), threshold={"tolerance": tol_c})

    def fmt(x):
        return "n/a" if x is None else "%.3g" % x

    errs = "rel err %s → %s, tolerance %s" % (fmt(eb), fmt(ec), fmt(tol_c))
    grew_past = (eb is not None and ec is not None and tol_b is not None and tol_c is not None
                 and eb <= tol_b and ec > tol_c)
    if all(ab) and (not all(ac) or grew_past):
        failed = ac.count(False)
        rounds = "" if len(ac) == 1 else " in %d of %d candidate rounds" % (failed, len(ac))
        what = "fidelity check now fails%s" % rounds if failed else "error grew past its tolerance"
        return _verdict("accuracy", "regressed", key, model, fp, label, reason="%s (%s)" % (what, errs), **fields)
    if not any(ab) and all(ac):
        return _verdict("accuracy", "improved", key, model, fp, label,
                        reason="fidelity check now passes (%s)" % errs, **fields)
    state = "passes" if all(ab) and all(ac) else ("fails in both" if not any(ab) and not any(ac) else "flaky")
    return _verdict("accuracy", "unchanged", key, model, fp, label, reason="%s (%s)" % (state, errs), **fields)


def _task_verdict(key, model, fp, label, gb: _Group, gc: _Group, th: Dict, base_fields) -> Optional[Dict]:
    vb = [x for x in (_num(v) for v in gb.column("task_after")) if x is not None]
    vc = [x for x in (_num(v) for v in gc.column("task_after")) if x is not None]
    if not vb or not vc:
        return None
    metric_b = (gb.column("task_metric") or [None])[0]
    metric_c = (gc.column("task_metric") or [None])[0]
    fields = dict(base_fields, check="task", unit=metric_c, n_baseline=len(vb), n_candidate=len(vc),
                  threshold={"task_drop": th["task_drop"], "task_drop_frac": th["task_drop_frac"]})
    if metric_b != metric_c:
        return _verdict("accuracy", "not_comparable", key, model, fp, label,
                        reason="task metric changed: %s → %s" % (metric_b, metric_c), **fields)
    hib = gc.column("task_higher_is_better") or gb.column("task_higher_is_better") or [True]
    higher_is_better = bool(hib[0])
    b, c = _median(vb), _median(vc)
    worse = (b - c) if higher_is_better else (c - b)
    limit_abs, limit_frac = th["task_drop"], th["task_drop_frac"] * abs(b)
    fields.update(baseline=b, candidate=c, ratio=(c / b) if b else None)
    text = "%s %.4g → %.4g (%s is better)" % (metric_c, b, c, "higher" if higher_is_better else "lower")
    if worse > limit_abs and worse > limit_frac:
        return _verdict("accuracy", "regressed", key, model, fp, label,
                        reason="task metric worse by %.4g: %s" % (worse, text), **fields)
    if -worse > limit_abs and -worse > limit_frac:
        return _verdict("accuracy", "improved", key, model, fp, label,
                        reason="task metric better by %.4g: %s" % (-worse, text), **fields)
    return _verdict("accuracy", "unchanged", key, model, fp, label, reason=text, **fields)


def _time_test(gb: _Group, gc: _Group, th: Dict) -> Optional[Dict]:
    """Medians, ratio, test and raw p-value of one pair; None when either side has no samples.

    When every ok record of both sides holds speed-probe times of the same probe,
    ``probe_ratio`` is the ratio of the medians of step time / probe time, and with
    ``time_basis = "probe"`` the test and ``ratio`` use those (``relative_to`` names the
    probe); ``median_ratio`` is always the ratio of the plain medians.
    """
    xb, rb = gb.samples()
    xc, rc = gc.samples()
    if not xb or not xc:
        return None
    mb, mc = _median(xb), _median(xc)
    out = {"baseline": mb, "candidate": mc, "ratio": mc / mb, "median_ratio": mc / mb, "probe_ratio": None,
           "relative_to": None, "n_baseline": len(xb), "n_candidate": len(xc), "rounds_baseline": len(rb),
           "rounds_candidate": len(rc), "p_value": None, "too_few": None}
    rel_b, rel_c = gb.relative(), gc.relative()
    if rel_b is not None and rel_c is not None and rel_b[0] == rel_c[0]:
        out["probe_ratio"] = _median(rel_c[1]) / _median(rel_b[1])
        if th["time_basis"] == "probe":
            out["relative_to"] = rel_b[0]
            xb, rb, xc, rc = rel_b[1], rel_b[2], rel_c[1], rel_c[2]
            out["ratio"] = out["probe_ratio"]
    mode = th["time_test"]
    if mode == "auto":
        mode = "rounds" if min(len(rb), len(rc)) >= th["min_rounds"] else "samples"
        if mode == "samples":
            out["few_rounds"] = "%d vs %d rounds (%d a side needed): samples of one process are not " \
                                "independent, so they cannot show a time change on their own" % (
                                    len(rb), len(rc), th["min_rounds"])
    if mode == "rounds":
        out["test"] = "welch_t_log_round_medians"
        if min(len(rb), len(rc)) < 2:
            out["too_few"] = "%d vs %d rounds: the round-level test needs at least 2 per side" % (len(rb), len(rc))
            return out
        lb, lc = np.log(rb), np.log(rc)
        if np.ptp(lb) == 0 and np.ptp(lc) == 0:
            if lb[0] == lc[0]:
                out["p_value"] = 1.0
            else:
                out["too_few"] = "round medians identical within each side: no spread to test against"
            return out
        with warnings.catch_warnings():  # near-identical rounds: scipy warns of precision loss
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(lc, lb, equal_var=False).pvalue)
        out["p_value"] = 1.0 if math.isnan(p) else p
        return out
    out["test"] = "mannwhitneyu"
    p_min = min_exact_mannwhitney_p(len(xb), len(xc))
    out["p_min"] = p_min
    if p_min > th["q"]:
        out["too_few"] = "%d vs %d samples: smallest achievable p = %.3g > q = %g" % (
            len(xb), len(xc), p_min, th["q"])
    p = mannwhitney_p(xc, xb)
    out["p_value"] = 1.0 if math.isnan(p) else p
    return out


def _time_verdicts(pending: List[Tuple[Tuple, Dict, Dict]]) -> List[Dict]:
    """Turn the timing tests of the whole run into verdicts, with one BH correction."""
    family = [i for i, (_, t, _) in enumerate(pending) if t["too_few"] is None]
    qs = bh_qvalues([pending[i][1]["p_value"] for i in family])
    q_of = dict(zip(family, qs))
    out = []
    for i, (ident, t, th) in enumerate(pending):
        key, model, fp, label, base_fields = ident
        factor, q_thr = th["time_factor"], th["q"]
        fields = dict(base_fields, unit="s", threshold={"time_factor": factor, "q": q_thr})
        fields.update({k: v for k, v in t.items() if k not in ("too_few", "p_min", "few_rounds")})
        q = q_of.get(i)
        fields["q_value"] = q
        ratio = t["ratio"]
        big_slow, big_fast = ratio > factor, ratio < 1.0 / factor
        medians = "%s → %s" % (format_duration(t["baseline"]), format_duration(t["candidate"]))
        relative = t.get("relative_to") is not None
        if relative:
            medians += ", plain medians %.2f×" % t["median_ratio"]
        if abs(math.log(ratio)) < 0.005:
            what = "same %s (%s)" % ("speed relative to the probe" if relative else "median", medians)
        else:
            what = "%.2f× %s%s (%s)" % (ratio if ratio >= 1.0 else 1.0 / ratio, "slower" if ratio > 1.0 else "faster",
                                       " relative to the speed probe" if relative else "", medians)
        unit = " of step/probe" if relative else ""
        if t.get("test") == "mannwhitneyu":
            how = "Mann-Whitney U%s, %d vs %d samples" % (unit, t["n_baseline"], t["n_candidate"])
        else:
            how = "Welch t on log round medians%s, %d vs %d rounds" % (unit, t["rounds_baseline"],
                                                                       t["rounds_candidate"])
        fields["how"] = how
        if t["too_few"] is not None:
            verdict, reason = "inconclusive", "%s; too few to test: %s" % (what, t["too_few"])
        elif relative and q <= q_thr and (big_slow or big_fast) and (t["median_ratio"] > 1.0) != big_slow:
            verdict, reason = "inconclusive", "%s, q = %.2g (%s), but the plain medians moved the other way: " \
                "the code under test changed the probe's own speed" % (what, q, how)
        elif t.get("few_rounds") and q <= q_thr and (big_slow or big_fast):
            verdict, reason = "inconclusive", "%s, q = %.2g (%s), but %s; run more rounds (ab --rounds %d) or " \
                "set time_test = \"samples\" to trust them" % (what, q, how, t["few_rounds"], th["min_rounds"])
        elif q <= q_thr and big_slow:
            verdict, reason = "regressed", "%s, q = %.2g (%s)" % (what, q, how)
        elif q <= q_thr and big_fast:
            verdict, reason = "improved", "%s, q = %.2g (%s)" % (what, q, how)
        elif big_slow or big_fast:
            verdict, reason = "inconclusive", "%s, beyond %.2f× but not significant: q = %.2g > %g (%s)" % (
                what, factor, q, q_thr, how)
        elif q <= q_thr:
            verdict, reason = "unchanged", "%s, significant (q = %.2g) but within %.2f×" % (what, q, factor)
        else:
            verdict, reason = "unchanged", "%s, within %.2f× and q = %.2g" % (what, factor, q)
        out.append(_verdict("time", verdict, key, model, fp, label, reason=reason, **fields))
    return out


# ---------------------------------------------------------------- compare

def _pair_unmatched(only_b: List[str], only_c: List[str], gb_of, gc_of) -> Tuple[List, List, List]:
    """Pair fingerprints present on one side only: (pairs, baseline leftovers, candidate leftovers).

    A pair is preferably the same env_label, then the same torch version, then any.
    """
    only_b, only_c = list(only_b), list(only_c)
    pairs = []
    for same in (lambda b, c: b.label is not None and b.label == c.label,
                 lambda b, c: str(b.first.get("torch")) == str(c.first.get("torch")),
                 lambda b, c: True):
        for fb in list(only_b):
            for fc in only_c:
                if same(gb_of(fb), gc_of(fc)):
                    pairs.append((fb, fc))
                    only_b.remove(fb)
                    only_c.remove(fc)
                    break
    return pairs, only_b, only_c


def _compare_pair(key: str, fp: str, gb: _Group, gc: _Group, thresholds_table: Optional[Dict],
                  verdicts: List[Dict], pending_time: List) -> None:
    """Append the status, accuracy and memory verdicts of one matched pair; queue its timing test."""
    model = gc.first.get("model")
    th = thresholds_for(str(model), thresholds_table)
    label = gc.label
    base_fields = {"baseline_env_label": gb.label, "baseline_env_fingerprint": fp, "rounds_baseline": len(gb.rows),
                   "rounds_candidate": len(gc.rows), "env": _env_text(gc.first)}
    verdicts.append(_status_verdict(key, model, fp, label, gb, gc, base_fields))
    for v in (_fidelity_verdict(key, model, fp, label, gb, gc, base_fields),
              _task_verdict(key, model, fp, label, gb, gc, th, base_fields),
              _memory_verdict(key, model, fp, label, gb, gc, th, base_fields)):
        if v is not None:
            verdicts.append(v)
    t = _time_test(gb, gc, th)
    if t is not None:
        pending_time.append(((key, model, fp, label, dict(base_fields)), t, th))


def compare(baseline_df: pd.DataFrame, candidate_df: pd.DataFrame, thresholds_table: Optional[Dict] = None
            ) -> List[Dict]:
    """Verdicts for every (case, environment, kind) of two record tables.

    ``baseline_df`` and ``candidate_df`` come from ``load_records``; ``thresholds_table``
    is a validated ``[gate]`` table (None: defaults). See the module docstring for the
    rules and the fields of each verdict. Order: by case key, then environment, then kind.
    """
    gbs = _groups(baseline_df)
    gcs = _groups(candidate_df)
    by_key_b, by_key_c = {}, {}
    for key, fp in gbs:
        by_key_b.setdefault(key, []).append(fp)
    for key, fp in gcs:
        by_key_c.setdefault(key, []).append(fp)

    verdicts: List[Dict] = []
    pending_time: List[Tuple[Tuple, Dict, Dict]] = []
    for key in sorted(set(by_key_b) | set(by_key_c)):
        fps_b, fps_c = by_key_b.get(key, []), by_key_c.get(key, [])
        common = [fp for fp in fps_b if fp in fps_c]
        for fp in common:
            _compare_pair(key, fp, gbs[(key, fp)], gcs[(key, fp)], thresholds_table, verdicts, pending_time)
        only_b = [fp for fp in fps_b if fp not in common]
        only_c = [fp for fp in fps_c if fp not in common]
        side_b = {fp: gbs[(key, fp)] for fp in only_b}
        side_c = {fp: gcs[(key, fp)] for fp in only_c}
        pairs, left_b, left_c = _pair_unmatched(only_b, only_c, side_b.__getitem__, side_c.__getitem__)
        for fb, fc in pairs:
            gb, gc = gbs[(key, fb)], gcs[(key, fc)]
            verdicts.append(_verdict(
                "status", "not_comparable", key, gc.first.get("model"), fc, gc.label,
                baseline_env_label=gb.label, baseline_env_fingerprint=fb, env=_env_text(gc.first),
                baseline=_env_text(gb.first), candidate=_env_text(gc.first),
                reason=_env_diff(dict(gb.first, _fp=fb), dict(gc.first, _fp=fc))))
        for fb in left_b:
            gb = gbs[(key, fb)]
            verdicts.append(_verdict(
                "status", "vanished", key, gb.first.get("model"), fb, gb.label, baseline_env_label=gb.label,
                baseline_env_fingerprint=fb, env=_env_text(gb.first), baseline=",".join(sorted(set(gb.statuses))),
                reason="not in the candidate (baseline: %s)" % ",".join(sorted(set(gb.statuses)))))
        for fc in left_c:
            gc = gcs[(key, fc)]
            verdicts.append(_verdict(
                "status", "new", key, gc.first.get("model"), fc, gc.label, env=_env_text(gc.first),
                candidate=",".join(sorted(set(gc.statuses))),
                reason="new case (candidate: %s)" % ",".join(sorted(set(gc.statuses)))))

    verdicts.extend(_time_verdicts(pending_time))
    order = {k: i for i, k in enumerate(KINDS)}
    verdicts.sort(key=lambda v: (v["case_key"], str(v["env_fingerprint"]), order[v["kind"]], v.get("check") or ""))
    return verdicts


def count_verdicts(verdicts: Iterable[Dict]) -> Dict[str, Dict[str, int]]:
    """``{kind: {verdict: count}}`` with every kind and verdict present."""
    counts = {k: {v: 0 for v in VERDICTS} for k in KINDS}
    for v in verdicts:
        counts[v["kind"]][v["verdict"]] += 1
    return counts


def exit_code_for(verdicts: Sequence[Dict]) -> int:
    """``EXIT_REGRESSION`` if any verdict regressed, ``EXIT_INPUT_ERROR`` if no (case,
    environment) was compared at all, else ``EXIT_PASS``."""
    if any(v["verdict"] == "regressed" for v in verdicts):
        return EXIT_REGRESSION
    if not any(v["kind"] == "status" and v["verdict"] not in ("new", "vanished", "not_comparable")
               for v in verdicts):
        return EXIT_INPUT_ERROR
    return EXIT_PASS


# ---------------------------------------------------------------- files

def _atomic_write_text(path: str, text: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _load_toml(path: str) -> Dict:
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError("%s: scenario file not found" % path) from None
    except (OSError, ValueError) as exc:
        raise InputError("%s: cannot read the scenario file (%s)" % (path, exc)) from None


def load_gate_table(scenario_path: Optional[str], overrides: Optional[Dict] = None) -> Dict:
    """The validated ``[gate]`` table of ``scenario_path`` (empty without one), overrides applied.

    Raises ``InputError`` naming the file and every bad key.
    """
    table: Dict = {}
    if scenario_path:
        data = _load_toml(scenario_path)
        table = data.get("gate") or {}
        errors = validate_gate_table(table, "%s [gate]" % scenario_path)
        if errors:
            raise InputError("invalid [gate] table:\n  " + "\n  ".join(errors))
    try:
        return apply_overrides(table, overrides)
    except ValueError as exc:
        raise InputError("invalid gate override: %s" % exc) from None


def _load_side(paths: Sequence[str], side: str) -> Tuple[pd.DataFrame, List[str]]:
    try:
        df, problems = load_records(paths)
    except InputError as exc:
        raise InputError("%s: %s" % (side, exc)) from None
    schema = [p for p in problems if "schema_version" in p]
    if schema:
        raise InputError("%s: records of another schema version (re-run with this version of the runner): %s" % (
            side, "; ".join(schema[:5])))
    return df, ["%s: %s" % (side, p) for p in problems]


def _scenarios(df: pd.DataFrame) -> List[str]:
    return sorted({str(s) for s in df["scenario"].tolist() if isinstance(s, str)})


def _scenario_sources(df: pd.DataFrame) -> str:
    """'scenario in file, file' for each scenario of a side."""
    parts = []
    for name, sub in df[df["scenario"].notna()].groupby("scenario"):
        parts.append("%r in %s" % (name, ", ".join(sorted({str(s) for s in sub["source"]}))))
    return "; ".join(parts)


def _check_scenarios(df_b: pd.DataFrame, df_c: pd.DataFrame, paths_b, paths_c, scenario_path) -> pd.DataFrame:
    """Baseline restricted to the candidate's scenarios; InputError when they do not meet."""
    sb, sc = _scenarios(df_b), _scenarios(df_c)
    if sb and sc and not set(sb) & set(sc):
        raise InputError("baseline and candidate come from different scenarios: baseline %s; candidate %s" % (
            _scenario_sources(df_b), _scenario_sources(df_c)))
    if scenario_path and sc:
        data = _load_toml(scenario_path)
        names = {os.path.splitext(os.path.basename(scenario_path))[0]}
        for holder in (data, data.get("scenario") if isinstance(data.get("scenario"), dict) else {}):
            if isinstance(holder.get("name"), str):
                names.add(holder["name"])
        if not names & set(sc):
            raise InputError("%s: scenario %s, but the candidate's records come from %s" % (
                scenario_path, sorted(names), sc))
    if sc:
        df_b = df_b[df_b["scenario"].isin(sc) | df_b["scenario"].isna()]
    return df_b


def evaluate(baseline_paths, candidate_paths, scenario_path: Optional[str] = None,
             overrides: Optional[Dict] = None) -> Dict:
    """Load, compare and summarise; returns the verdicts document (what the JSON holds)
    with ``markdown`` added. Raises ``InputError`` for bad input."""
    if isinstance(baseline_paths, str):
        baseline_paths = [baseline_paths]
    if isinstance(candidate_paths, str):
        candidate_paths = [candidate_paths]
    baseline_paths, candidate_paths = [str(p) for p in baseline_paths], [str(p) for p in candidate_paths]
    table = load_gate_table(scenario_path, overrides)
    df_b, problems_b = _load_side(baseline_paths, "baseline")
    df_c, problems_c = _load_side(candidate_paths, "candidate")
    df_b = _check_scenarios(df_b, df_c, baseline_paths, candidate_paths, scenario_path)
    verdicts = compare(df_b, df_c, table)
    code = exit_code_for(verdicts)
    doc = {
        "schema": VERDICTS_SCHEMA,
        "exit_code": code,
        "passed": code == EXIT_PASS,
        "baseline": {"paths": baseline_paths, "records": int(len(df_b)), "scenarios": _scenarios(df_b),
                     "env_labels": sorted({str(x) for x in df_b["env_label"].dropna()})},
        "candidate": {"paths": candidate_paths, "records": int(len(df_c)), "scenarios": _scenarios(df_c),
                      "env_labels": sorted({str(x) for x in df_c["env_label"].dropna()})},
        "thresholds": thresholds_for("", table),
        "gate_table": table,
        "counts": count_verdicts(verdicts),
        "problems": problems_b + problems_c,
        "verdicts": verdicts,
    }
    doc = _jsonable(doc)
    doc["markdown"] = render_markdown(doc)
    return doc


def run_gate(baseline_paths, candidate_paths, scenario_path: Optional[str] = None, json_out: Optional[str] = None,
             markdown_out: Optional[str] = None, overrides: Optional[Dict] = None) -> int:
    """Run the gate on record files or folders; return the exit code (``EXIT_*``).

    Prints the Markdown summary to stdout, writes it to ``markdown_out`` and the
    verdicts document to ``json_out`` (each atomically) when given. ``overrides`` is a
    dict of ``[gate]`` keys that win over the scenario's values for every model.
    Input errors go to stderr, naming the file, and return ``EXIT_INPUT_ERROR``.
    """
    try:
        doc = evaluate(baseline_paths, candidate_paths, scenario_path, overrides)
    except InputError as exc:
        print("gate: input error: %s" % exc, file=sys.stderr)
        return EXIT_INPUT_ERROR
    except Exception:  # noqa: BLE001 - the contract is exit code 3, with the traceback
        print("gate: internal error:\n%s" % traceback.format_exc(), file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    try:
        markdown = doc.pop("markdown")
        if json_out:
            _atomic_write_text(json_out, json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n")
        if markdown_out:
            _atomic_write_text(markdown_out, markdown)
        print(markdown)
        for problem in doc["problems"]:
            print("gate: warning: %s" % problem, file=sys.stderr)
        if doc["exit_code"] == EXIT_INPUT_ERROR:
            print("gate: input error: no case of the candidate could be compared with the baseline "
                  "(see not comparable / new / vanished above)", file=sys.stderr)
    except OSError as exc:
        print("gate: cannot write output: %s" % exc, file=sys.stderr)
        return EXIT_INPUT_ERROR
    except Exception:  # noqa: BLE001
        print("gate: internal error:\n%s" % traceback.format_exc(), file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return doc["exit_code"]


def _parse_override(text: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, got %r" % text)
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``python -m harness.analysis.gate --baseline A --candidate B [...]``."""
    parser = argparse.ArgumentParser(prog="python -m harness.analysis.gate", description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", nargs="+", required=True, help="record files or folders of the baseline")
    parser.add_argument("--candidate", nargs="+", required=True, help="record files or folders of the candidate")
    parser.add_argument("--scenario", help="scenario TOML whose [gate] table sets the thresholds")
    parser.add_argument("--json", dest="json_out", help="write the verdicts JSON here")
    parser.add_argument("--markdown", dest="markdown_out", help="write the Markdown summary here")
    parser.add_argument("--set", dest="overrides", action="append", type=_parse_override, default=[],
                        metavar="KEY=VALUE", help="override a [gate] key for every model, e.g. --set time_factor=1.2")
    args = parser.parse_args(argv)
    return run_gate(args.baseline, args.candidate, args.scenario, args.json_out, args.markdown_out,
                    dict(args.overrides) or None)


if __name__ == "__main__":
    sys.exit(main())
