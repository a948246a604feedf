"""The run-wide time verdict: the geometric mean of every compared case's time ratio, per
environment, tested across cases (and across rounds where there are several).

A change that slows every case a little can hide below each case's own threshold or noise;
the whole run's geometric mean shows it. Why it cannot simply test the cases' ratios against
1 on wall time with one round a side (a process's speed is shared by all its cases) and how
the default ``aggregate_factor`` was chosen: docs/gate.md, "Aggregate".
"""
import math
from typing import Dict, List, Mapping, Sequence

import numpy as np

from harness.analysis.gate.rules import Verdict
from harness.analysis.gate.stats import one_sample_log_p, welch_log_p
from harness.analysis.gate.time_rules import TimeTest
from harness.measures import INSTRUCTIONS, WALL_TIME
from harness.vocab import AGGREGATE_CASE_KEY

#: Fewer compared cases than this in an environment: no aggregate verdict (a geometric mean of
#: two or three cases is those cases' own verdicts again).
MIN_CASES = 5


def _geomean(ratios: Sequence[float]) -> float:
    return float(math.exp(np.mean(np.log(ratios))))


def _round_geomeans(tests: Sequence[TimeTest], side: str) -> List[float]:
    """Per round (the i-th record of each case on ``side``), the geometric mean over the cases of
    that round's median; rounds that not every case has are left out."""
    per_case = [getattr(t.comparison, side).samples()[1] for t in tests]
    rounds = min(len(r) for r in per_case)
    return [_geomean([r[i] for r in per_case]) for i in range(rounds)]


def _wall(tests: Sequence[TimeTest], th: Mapping) -> Dict:
    """Geometric mean of the wall-time ratios and its test: across round geometric means when
    every case has ``min_rounds`` a side, else across cases (then a shift of the whole process is
    not noise the test sees, so the factor must carry the weight: docs/gate.md)."""
    geomean = _geomean([t.ratio for t in tests])
    rounds = min(min(t.rounds_baseline, t.rounds_candidate) for t in tests)
    if rounds >= th["min_rounds"] and all(t.relative_to is None for t in tests):
        gb, gc = _round_geomeans(tests, "baseline"), _round_geomeans(tests, "candidate")
        p, test = welch_log_p(gc, gb), "welch_t_log_round_geomeans (%d vs %d rounds)" % (len(gb), len(gc))
    else:
        p, test = one_sample_log_p([t.ratio for t in tests]), "one_sample_t_log_case_ratios (%d cases)" % len(tests)
    p = 1.0 if math.isnan(p) else p
    factor, q = th["aggregate_factor"], th["q"]
    if geomean > factor and p <= q:
        verdict = "regressed"
    elif geomean < 1.0 / factor and p <= q:
        verdict = "improved"
    elif geomean > factor or geomean < 1.0 / factor:
        verdict = "inconclusive"
    else:
        verdict = "unchanged"
    reason = "geometric mean of %d cases' wall-time ratios %.3f×, p = %.2g (%s); regressed beyond %.2f× " \
             "with p <= %g" % (len(tests), geomean, p, test, factor, q)
    return dict(verdict=verdict, reason=reason, ratio=geomean, p_value=p, test=test, basis=WALL_TIME.label,
                threshold={"aggregate_factor": factor, "q": q})


def _instructions(tests: Sequence[TimeTest], th: Mapping) -> Dict:
    """Geometric mean of the instruction-count ratios: deterministic, judged by its size."""
    geomean = _geomean([t.counts.ratio for t in tests])
    frac = th["instructions_frac"]
    n = len(tests)
    if geomean - 1.0 > frac:
        verdict = "regressed"
    elif 1.0 / geomean - 1.0 > frac:
        verdict = "improved"
    else:
        verdict = "unchanged"
    reason = "geometric mean of %d cases' instruction-count ratios %+.2f%%; limit %.1f%%" % (
        n, 100 * (geomean - 1.0), 100 * frac)
    return dict(verdict=verdict, reason=reason, ratio=geomean, p_value=None, test=INSTRUCTIONS.label,
                basis=INSTRUCTIONS.label, threshold={"instructions_frac": frac})


def aggregate_verdicts(tests: Sequence[TimeTest], thresholds: Mapping) -> List[Verdict]:
    """One run-wide time verdict per environment with at least ``MIN_CASES`` tested cases.

    ``tests`` are the run's time tests after the q-values; ``thresholds`` the run's global ones
    (``thresholds_for("", table)``). On the instruction counts of the cases that carry them on
    both sides when those are at least ``MIN_CASES`` and half the cases (a case too long to count
    is left out), else on the wall time (or its probe-relative ratio with ``time_basis = "probe"``).
    """
    by_env: Dict[str, List[TimeTest]] = {}
    for t in tests:
        by_env.setdefault(t.comparison.env_fingerprint, []).append(t)
    out = []
    for fp, group in sorted(by_env.items()):
        if len(group) < MIN_CASES:
            continue
        counted = [t for t in group if t.counts is not None]
        if len(counted) >= MIN_CASES and 2 * len(counted) >= len(group):
            fields = _instructions(counted, thresholds)
            if len(counted) < len(group):
                fields["reason"] += "; %d cases without counts on both sides left out" % (len(group) - len(counted))
        else:
            fields = _wall(group, thresholds)
        first = group[0].comparison
        verdict, reason = fields.pop("verdict"), fields.pop("reason")
        ratio, p = fields.pop("ratio"), fields.pop("p_value")
        n_cases = len(counted) if fields["basis"] == INSTRUCTIONS.label else len(group)
        details = dict(fields, aggregate=True, n_cases=n_cases, unit="ratio", env=first.shared["env"],
                       baseline_env_label=first.shared["baseline_env_label"])
        out.append(Verdict(AGGREGATE_CASE_KEY, None, fp, first.env_label, "time", verdict, reason, ratio=ratio,
                           p_value=p, details=details))
    return out
