"""Verdict rules for status, accuracy (fidelity, task) and memory, each over one ``Comparison``.

A rule takes the matched pair of one case in one environment and returns a ``Verdict``
or None (nothing to compare of that kind). The time rule, which needs the whole run for
its multiple-testing correction, lives in ``time_rules``. The rules in words:
docs/gate.md.
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from harness.analysis.gate.groups import Group, env_text, short
from harness.analysis.gate.stats import median
from harness.measures import (
    CHAINS,
    FIDELITY,
    FIDELITY_FIXED,
    LARGE_ERROR_FRAC,
    LARGEST_BATCH,
    OUTPUTS,
    Measure,
    carried,
    is_number,
    thresholds_of,
)
from harness.scenario.gate_config import thresholds_for
from harness.sketches import relative_change
from harness.vocab import ACCURACY_NOT_JUDGED, CHECKS, UNIT_ROUNDOFF

#: Fields every verdict has, in this order (the kind's own fields follow).
_CORE = ("baseline", "candidate", "ratio", "p_value", "q_value")


@dataclass(frozen=True)
class Verdict:
    """One verdict: a (case, environment, kind) and what the gate says about it.

    ``details`` holds the fields that depend on the kind (``check``, ``unit``,
    ``threshold``, ``n_baseline``...); ``as_dict`` gives the flat form of the JSON.
    """

    case_key: str
    model: Any
    env_fingerprint: str
    env_label: Optional[str]
    kind: str
    verdict: str
    reason: str = ""
    baseline: Any = None
    candidate: Any = None
    ratio: Optional[float] = None
    p_value: Optional[float] = None
    q_value: Optional[float] = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        out = {"case_key": self.case_key, "model": self.model, "env_fingerprint": self.env_fingerprint,
               "env_label": self.env_label, "kind": self.kind, "verdict": self.verdict, "baseline": self.baseline,
               "candidate": self.candidate, "ratio": self.ratio, "p_value": self.p_value, "q_value": self.q_value,
               "reason": self.reason}
        out.update(self.details)
        return out


@dataclass(frozen=True)
class Comparison:
    """One case in one environment present on both sides: what every rule reads."""

    case_key: str
    model: Any
    env_fingerprint: str
    env_label: Optional[str]
    baseline: Group
    candidate: Group
    #: this model's thresholds (``harness.scenario.gate_config.thresholds_for``)
    thresholds: Mapping[str, Any]
    #: fields every verdict of the pair carries (baseline environment, rounds, ``env``)
    shared: Mapping[str, Any]

    @classmethod
    def of(cls, case_key: str, fp: str, gb: Group, gc: Group, table: Optional[Dict]) -> "Comparison":
        model = gc.model
        shared = {"baseline_env_label": gb.label, "baseline_env_fingerprint": fp, "rounds_baseline": len(gb.rows),
                  "rounds_candidate": len(gc.rows), "env": env_text(gc.first)}
        return cls(case_key, model, fp, gc.label, gb, gc, thresholds_for(str(model), table), shared)

    def verdict(self, kind: str, verdict: str, reason: str, **fields: Any) -> Verdict:
        """A verdict of this pair: the shared fields, then ``fields`` (core ones included)."""
        details = dict(self.shared, **fields)
        core = {k: details.pop(k) for k in _CORE if k in details}
        return Verdict(self.case_key, self.model, self.env_fingerprint, self.env_label, kind, verdict, reason,
                       details=details, **core)


def _summary(statuses: List[str]) -> str:
    """``ok×2, crashed``: statuses with their counts, in order of appearance."""
    counts: Dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join("%s×%d" % (s, n) if n > 1 else s for s, n in counts.items())


def status_rule(cmp: Comparison) -> Verdict:
    """A case that worked and now fails (in any round, or in every round) regressed."""
    sb, sc = cmp.baseline.statuses, cmp.candidate.statuses
    b_ok_all, b_ok_any = all(s == "ok" for s in sb), any(s == "ok" for s in sb)
    c_ok_all, c_ok_any = all(s == "ok" for s in sc), any(s == "ok" for s in sc)
    bad = [(s, r) for s, r in zip(sc, cmp.candidate.reasons) if s != "ok"]
    first_bad = ("%s: %s" % (bad[0][0], short(bad[0][1]))) if bad and isinstance(bad[0][1], str) else (
        bad[0][0] if bad else "")
    fields = dict(baseline=_summary(sb), candidate=_summary(sc))
    if b_ok_all and not c_ok_all:
        rounds = "" if len(sc) == 1 else " in %d of %d candidate rounds" % (len(bad), len(sc))
        return cmp.verdict("status", "regressed", "new failure%s: ok → %s" % (rounds, first_bad), **fields)
    if b_ok_any and not c_ok_any:
        return cmp.verdict("status", "regressed", "new failure: worked in %d of %d baseline rounds, in no candidate "
                           "round (%s)" % (sb.count("ok"), len(sb), first_bad), **fields)
    if not b_ok_any and c_ok_all:
        return cmp.verdict("status", "improved", "now works (was %s)" % _summary(sb), **fields)
    if b_ok_all and c_ok_all:
        reason = "ok"
    elif not b_ok_any and not c_ok_any:
        reason = "fails in both (%s → %s)" % (_summary(sb), _summary(sc))
    else:
        reason = "flaky (%s → %s)" % (_summary(sb), _summary(sc))
    return cmp.verdict("status", "unchanged", reason, **fields)


def _carries(group: Group, measure: Measure) -> bool:
    """Whether the ok records of ``group`` that could hold ``measure`` carry it (``harness.measures.carried``):
    a figure only the extras round fills is read from the rounds that ran the extras (``Group.ok_for``)."""
    rows = group.ok_for(measure.column)
    valid = [r.get(measure.only_where[0]) for r in rows] if measure.only_where else None
    return carried(measure, [r.get(measure.column) for r in rows], valid)


def _size_verdict(cmp: Comparison, measure: Measure, pb: List[float], pc: List[float]) -> Verdict:
    """Median per side; a change must exceed both the measure's fraction and its floor (``NOISE_SIZE``)."""
    frac_key, floor_key = measure.thresholds
    how = measure.change
    frac, floor = cmp.thresholds[frac_key], cmp.thresholds[floor_key]
    b, c = median(pb), median(pc)
    growth = c - b
    fields: Dict[str, Any] = dict(unit=measure.unit, measure=measure.column, n_baseline=len(pb), n_candidate=len(pc),
                                  baseline=b, candidate=c, ratio=c / b if b > 0 else None,
                                  threshold=thresholds_of(measure, cmp.thresholds))
    pct = "%%.%df%%%%" % how.pct_digits
    if growth > frac * b and growth > floor:
        return cmp.verdict("memory", "regressed", "%s +%.1f %s (+%s), above %.0f%% and %.*f %s" % (
            how.name, growth / how.scale, how.unit, (pct % (100 * growth / b)) if b > 0 else "from 0", 100 * frac,
            how.floor_digits, floor / how.scale, how.unit), **fields)
    if -growth > frac * b and -growth > floor:
        return cmp.verdict("memory", "improved", "%s %.1f %s (%s)" % (
            how.name, growth / how.scale, how.unit, pct % (100 * growth / b)), **fields)
    return cmp.verdict("memory", "unchanged", "%s %+.1f %s, within %.0f%% or %.*f %s" % (
        how.name, growth / how.scale, how.unit, 100 * frac, how.floor_digits, floor / how.scale, how.unit), **fields)


def memory_rule(cmp: Comparison) -> Optional[Verdict]:
    """Memory on the first measure of ``harness.measures.CHAINS["memory"]`` that every ok record of
    both sides carries (the exact CPU tensor peak), else on the last (the process or allocator peak)
    where each side has one; measured differently on the two sides: not comparable. An exact figure
    the baseline carries and the candidate's ok records lack is ``lost`` (it fails the gate)."""
    gb, gc = cmp.baseline, cmp.candidate
    chain = CHAINS["memory"]
    lost = next((m for m in chain[:-1] if _carries(gb, m) and not _carries(gc, m)), None)
    if lost is not None and gc.ok_for(lost.column):
        # The exact figure went missing on the head: falling back to the process peak would let a change
        # that breaks the exact measure pass on the coarse one. Only the rounds that ran the extras count:
        # a timing-only round never measures it.
        rows = gc.ok_for(lost.column)
        why = "no %s in %d of the candidate's %d ok records that ran the extras (the record's " \
              "memory.tensor_peak_error says why)" % (
                  lost.label, sum(1 for r in rows if not is_number(r.get(lost.column))), len(rows))
        pb = gb.numbers(lost.column)
        return cmp.verdict("memory", "lost", "%s lost on the head: %s" % (lost.label, why), unit=lost.unit,
                           measure=lost.column, n_baseline=len(pb), n_candidate=0,
                           baseline=median(pb) if pb else None, threshold=thresholds_of(lost, cmp.thresholds))
    measure = next((m for m in chain[:-1] if _carries(gb, m) and _carries(gc, m)), chain[-1])
    pb, pc = gb.numbers(measure.column), gc.numbers(measure.column)
    if not pb or not pc:
        return None
    if measure.method_column:
        mb, mc = set(map(str, gb.column(measure.method_column))), set(map(str, gc.column(measure.method_column)))
        if mb and mc and mb != mc:
            return cmp.verdict("memory", "not_comparable", "measured differently: %s vs %s" % (
                "/".join(sorted(mb)), "/".join(sorted(mc))), unit=measure.unit, measure=measure.column,
                n_baseline=len(pb), n_candidate=len(pc), threshold=thresholds_of(measure, cmp.thresholds))
    return _size_verdict(cmp, measure, pb, pc)


def max_batch_rule(cmp: Comparison) -> Optional[Verdict]:
    """The largest batch that fits (a ``batch_size = "max"`` search): regressed when the candidate's is
    smaller by more than ``memory_frac`` (memory per sample grew by about as much), improved when larger
    by as much; searched under other caps or criteria: not comparable. The search is deterministic
    (exact tensor bytes on the CPU), so one record a side decides."""
    gb, gc = cmp.baseline, cmp.candidate
    nb, nc = gb.numbers(LARGEST_BATCH.column), gc.numbers(LARGEST_BATCH.column)
    if not gb.ok or not gc.ok or not nb or not nc:
        return None
    frac = cmp.thresholds["memory_frac"]
    b, c = min(nb), min(nc)
    fields: Dict[str, Any] = dict(check="max_batch", unit=LARGEST_BATCH.unit, measure=LARGEST_BATCH.column,
                                  n_baseline=len(nb), n_candidate=len(nc), baseline=b, candidate=c,
                                  ratio=c / b if b > 0 else None,
                                  threshold=thresholds_of(LARGEST_BATCH, cmp.thresholds))
    how_b = (set(map(str, gb.column("max_batch_cap_bytes"))), set(map(str, gb.column("max_batch_criterion"))))
    how_c = (set(map(str, gc.column("max_batch_cap_bytes"))), set(map(str, gc.column("max_batch_criterion"))))
    if how_b != how_c:
        return cmp.verdict("memory", "not_comparable", "largest batch searched differently: cap %s, %s vs cap %s, "
                           "%s" % ("/".join(sorted(how_b[0])), "/".join(sorted(how_b[1])),
                                   "/".join(sorted(how_c[0])), "/".join(sorted(how_c[1]))), **fields)
    if c < b * (1 - frac):
        return cmp.verdict("memory", "regressed", "largest batch that fits %d -> %d (%.1f%%), a fall beyond %.0f%%"
                           % (b, c, 100.0 * (c - b) / b, 100 * frac), **fields)
    if b > 0 and c > b * (1 + frac):
        return cmp.verdict("memory", "improved", "largest batch that fits %d -> %d (+%.1f%%)"
                           % (b, c, 100.0 * (c - b) / b), **fields)
    return cmp.verdict("memory", "unchanged", "largest batch that fits %d -> %d, within %.0f%%"
                       % (b, c, 100 * frac), **fields)


def _max_err(group: Group) -> Optional[float]:
    errs = group.numbers("out_rel_err") + group.numbers("grad_rel_err")
    return max(errs) if errs else None


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else "%.3g" % x


def _calibrated(group: Group) -> bool:
    column, value = FIDELITY.only_where
    rules = group.column(column)
    return bool(rules) and all(r == value for r in rules)


def _not_judged(group: Group) -> List[str]:
    """The not-judged notes (``harness.vocab.ACCURACY_NOT_JUDGED``) of the group's ok records."""
    return [str(f) for fs in group.column("acc_failures") if fs for f in fs
            if str(f).startswith(ACCURACY_NOT_JUDGED)]


def fidelity_rule(cmp: Comparison) -> Optional[Verdict]:
    """A fidelity check that passed in every baseline round and fails now regressed; so did an
    error that grew past its tolerance, and a calibrated ratio already past its limit that grew
    by ``accuracy_growth``. Under the calibrated rule (docs/accuracy.md) the figures are the
    ratios to the expected error; under a fixed tolerance, the relative errors against fp32. A
    candidate the runner could not judge (``harness.vocab.ACCURACY_NOT_JUDGED``) is inconclusive,
    never a pass, its note in the reason."""
    gb, gc = cmp.baseline, cmp.candidate
    unjudged = _not_judged(gc)
    if unjudged:
        # never a pass: the precision's expected error is too large to tell a fault from rounding here
        return cmp.verdict("accuracy", "inconclusive", "%s (candidate; baseline: %s)" % (
            short(unjudged[0], 300), "not judged too" if _not_judged(gb) else "judged"),
            check="fidelity", unit=FIDELITY.unit, not_judged=True,
            n_candidate=len(gc.ok_for("acc_failures")))
    ab, ac = [bool(v) for v in gb.column("acc_passed")], [bool(v) for v in gc.column("acc_passed")]
    if not ab or not ac:
        return None
    if _calibrated(gb) and _calibrated(gc):
        rb, rc = gb.numbers(FIDELITY.column), gc.numbers(FIDELITY.column)
        eb, ec = (max(rb) if rb else None), (max(rc) if rc else None)
        limits = gc.numbers("acc_limit")
        limit = min(limits) if limits else None
        fields = dict(check="fidelity", unit=FIDELITY.unit, baseline=eb, candidate=ec,
                      n_baseline=len(ab), n_candidate=len(ac), threshold={"limit": limit},
                      ratio=(ec / eb) if (eb and ec is not None) else None)
        worst = [w for w in gc.column("acc_worst") if w]
        errs = "ratio to expected %s → %s, limit %s%s" % (_fmt(eb), _fmt(ec), _fmt(limit),
                                                          ", worst %s" % worst[0] if worst else "")
        grew_past = (not any(ab) and not any(ac) and eb and ec is not None
                     and ec > eb * float(cmp.thresholds["accuracy_growth"]))
        if grew_past:
            return cmp.verdict("accuracy", "regressed", "ratio past its limit grew %.3gx (%s)" % (ec / eb, errs),
                               **fields)
    else:
        eb, ec = _max_err(gb), _max_err(gc)
        tols_b, tols_c = gb.numbers("acc_tolerance"), gc.numbers("acc_tolerance")
        tol_b = min(tols_b) if tols_b else None
        tol_c = min(tols_c) if tols_c else None
        ratio = (ec / eb) if (eb is not None and ec is not None and eb > 0) else None
        fields = dict(check="fidelity", unit=FIDELITY_FIXED.unit, baseline=eb, candidate=ec, ratio=ratio,
                      n_baseline=len(ab), n_candidate=len(ac), threshold={"tolerance": tol_c})
        errs = "rel err %s → %s, tolerance %s" % (_fmt(eb), _fmt(ec), _fmt(tol_c))
        if _calibrated(gb) != _calibrated(gc):
            errs += "; accuracy rule changed: %s → %s" % (gb.column("acc_rule")[0], gc.column("acc_rule")[0])
        grew_past = (eb is not None and ec is not None and tol_b is not None and tol_c is not None
                     and eb <= tol_b and ec > tol_c)
    if all(ab) and (not all(ac) or grew_past):
        failed = ac.count(False)
        rounds = "" if len(ac) == 1 else " in %d of %d candidate rounds" % (failed, len(ac))
        what = "fidelity check now fails%s" % rounds if failed else "error grew past its tolerance"
        failures = [f for fs in gc.column("acc_failures") if fs for f in fs]
        if failures:
            errs += "; " + short(failures[0], 200)
        return cmp.verdict("accuracy", "regressed", "%s (%s)" % (what, errs), **fields)
    large = gc.numbers("out_err64") + gc.numbers("grad_err64")
    if all(ac) and large and max(large) > LARGE_ERROR_FRAC:  # passes, yet far off float64: a warning
        fields["large_error"] = max(large)
    if not any(ab) and all(ac):
        return cmp.verdict("accuracy", "improved", "fidelity check now passes (%s)" % errs, **fields)
    state = "passes" if all(ab) and all(ac) else ("fails in both" if not any(ab) and not any(ac) else "flaky")
    return cmp.verdict("accuracy", "unchanged", "%s (%s)" % (state, errs), **fields)


def _first(group: Group, name: str) -> Any:
    values = [v for v in group.column(name) if v is not None and not (isinstance(v, float) and v != v)]
    return values[0] if values else None


def outputs_rule(cmp: Comparison) -> Optional[Verdict]:
    """Outputs (and gradients) changed between the revisions beyond what this environment's
    arithmetic explains: the sketches of the case's own tensors differ by more than
    ``outputs_change_factor`` times the baseline's error against float64 (at least the
    precision's unit roundoff). Identical code on a deterministic build: identical sketches."""
    gb, gc = cmp.baseline, cmp.candidate
    factor = float(cmp.thresholds["outputs_change_factor"])
    precision = _first(gc, "precision")
    unit = UNIT_ROUNDOFF.get(precision, UNIT_ROUNDOFF["fp32"])
    findings, figures = [], []
    for what, prefix in (("outputs", "out_"), ("gradients", "grad_")):
        sb, sc = _first(gb, prefix + "sketch"), _first(gc, prefix + "sketch")
        change = relative_change(sc, sb)
        if change is None:
            continue
        # The baseline's own error bounds what the arithmetic explains: the candidate's would grow
        # with the very change under test (a rounded output is further from float64 too).
        base_err = _first(gb, prefix + "err64")
        bound = factor * max([base_err, unit] if base_err is not None else [unit])
        figures.append((what, change, bound))
        if not change <= bound:
            findings.append("%s changed: rel %.3g, expected <= %.3g" % (what, change, bound))
    if not figures:
        return None
    worst = max(figures, key=lambda f: f[1] / f[2] if f[2] > 0 else math.inf)
    fields = dict(check="outputs", unit=OUTPUTS.unit, baseline=None, candidate=worst[1],
                  ratio=(worst[1] / worst[2]) if worst[2] > 0 else None, threshold={"bound": worst[2]},
                  n_baseline=len(gb.column("acc_passed")), n_candidate=len(gc.column("acc_passed")))
    if findings:
        return cmp.verdict("accuracy", "regressed", "; ".join(findings) + " (same seeded weights and inputs, "
                           "same environment: beyond its arithmetic)", **fields)
    text = "; ".join("%s rel %.3g <= %.3g" % f for f in figures)
    return cmp.verdict("accuracy", "unchanged", "same outputs within arithmetic (%s)" % text, **fields)


def task_rule(cmp: Comparison) -> Optional[Verdict]:
    """A task metric worse by more than ``task_drop`` AND ``task_drop_frac`` of the baseline regressed."""
    gb, gc, th = cmp.baseline, cmp.candidate, cmp.thresholds
    vb, vc = gb.numbers("task_after"), gc.numbers("task_after")
    if not vb or not vc:
        return None
    metric_b = (gb.column("task_metric") or [None])[0]
    metric_c = (gc.column("task_metric") or [None])[0]
    fields: Dict[str, Any] = dict(check="task", unit=metric_c, n_baseline=len(vb), n_candidate=len(vc),
                                  threshold={"task_drop": th["task_drop"], "task_drop_frac": th["task_drop_frac"]})
    if metric_b != metric_c:
        return cmp.verdict("accuracy", "not_comparable", "task metric changed: %s → %s" % (metric_b, metric_c),
                           **fields)
    higher_is_better = bool((gc.column("task_higher_is_better") or gb.column("task_higher_is_better") or [True])[0])
    b, c = median(vb), median(vc)
    worse = (b - c) if higher_is_better else (c - b)
    limit_abs, limit_frac = th["task_drop"], th["task_drop_frac"] * abs(b)
    fields.update(baseline=b, candidate=c, ratio=(c / b) if b else None)
    text = "%s %.4g → %.4g (%s is better)" % (metric_c, b, c, "higher" if higher_is_better else "lower")
    if worse > limit_abs and worse > limit_frac:
        return cmp.verdict("accuracy", "regressed", "task metric worse by %.4g: %s" % (worse, text), **fields)
    if -worse > limit_abs and -worse > limit_frac:
        return cmp.verdict("accuracy", "improved", "task metric better by %.4g: %s" % (-worse, text), **fields)
    return cmp.verdict("accuracy", "unchanged", text, **fields)


def _failed_checks(group: Group, names: Tuple[str, ...]) -> Optional[Dict[str, str]]:
    """``{check: reason}`` of ``names`` failed in any ok record of the group; None when no record
    ran any of them."""
    if not any(name in (ran or []) for ran in group.column("checks_ran") for name in names):
        return None
    failed: Dict[str, str] = {}
    for names, reasons in zip(group.column("checks_failed"), group.column("check_reasons")):
        for name, reason in zip(names or [], reasons or []):
            failed.setdefault(str(name), str(reason))
    return failed


def _checks_verdict(cmp: Comparison, kind: str, check: str, names: Tuple[str, ...]) -> Optional[Verdict]:
    fb, fc = _failed_checks(cmp.baseline, names), _failed_checks(cmp.candidate, names)
    if fc is None or fb is None:
        return None
    fb = {k: v for k, v in fb.items() if k in names}
    fc = {k: v for k, v in fc.items() if k in names}
    fields: Dict[str, Any] = dict(check=check, baseline=", ".join(sorted(fb)) or "passed",
                                  candidate=", ".join(sorted(fc)) or "passed")
    new = [fc[k] for k in sorted(fc) if k not in fb]
    if new:
        return cmp.verdict(kind, "regressed", "; ".join(new), **fields)
    gone = sorted(k for k in fb if k not in fc)
    if gone:
        return cmp.verdict(kind, "improved", "check passes now: %s" % ", ".join(gone), **fields)
    return cmp.verdict(kind, "unchanged", "checks: %s" % (fields["candidate"]), **fields)


def behaviour_rule(cmp: Comparison) -> Optional[Verdict]:
    """A behaviour check (``harness.vocab.CHECKS`` but the leak) that passed in the baseline and
    fails in the candidate regressed: a stale optimizer, a buffer mutated in eval, nondeterminism."""
    return _checks_verdict(cmp, "accuracy", "behaviour", tuple(c for c in CHECKS if c != "leak"))


def leak_rule(cmp: Comparison) -> Optional[Verdict]:
    """Tensor memory growing with every step (the ``leak`` check) where the baseline held steady regressed."""
    return _checks_verdict(cmp, "memory", "leak", ("leak",))
