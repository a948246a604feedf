"""The time verdict: one timing test per matched pair, then one Benjamini-Hochberg correction
over the whole run, then the rule. Where both sides carry instruction counts, the verdict
rests on them (deterministic: one round a side decides) and the wall-time test is reported
beside it.

Why rounds, not samples, what the speed probe adds, and the counts: docs/gate.md, "Time".
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from harness.analysis.gate.groups import Group, short
from harness.analysis.gate.rules import Comparison, Verdict
from harness.analysis.gate.stats import bh_qvalues, mannwhitney_p, median, min_exact_mannwhitney_p, welch_log_p
from harness.measures import (
    COUNT_SPREAD_CAP,
    INSTRUCTIONS,
    WALL_TIME,
    count_limit,
    count_limit_capped,
    format_value,
    thresholds_of,
)

SAMPLE_TEST = "mannwhitneyu"
ROUND_TEST = "welch_t_log_round_medians"


@dataclass(frozen=True)
class Counts:
    """Instruction counts per step of both sides of a pair (medians over the counted rounds)."""

    baseline: float
    candidate: float
    #: the counts' own noise, relative: the largest of the repeats' spread on either side and the
    #: range between counted rounds of one side
    spread: float
    n_baseline: int
    n_candidate: int

    @property
    def ratio(self) -> float:
        return self.candidate / self.baseline


def _spread(counts: Sequence[float], spreads: Sequence[float]) -> float:
    between = (max(counts) - min(counts)) / median(counts) if len(counts) > 1 else 0.0
    return max([between] + list(spreads))


def why_uncounted(group: Group) -> str:
    """Why a side's ok records carry no instruction count: the counting pass's status and reason."""
    column = INSTRUCTIONS.only_where[0]
    for row in group.ok:
        status = row.get(column)
        if isinstance(status, str) and status != INSTRUCTIONS.only_where[1]:
            reason = row.get("instr_reason")
            return "%s%s" % (status, ": " + short(reason, 200) if isinstance(reason, str) and reason else "")
    return "not counted (no instruction pass in its records)"


def missing_counts(cmp: Comparison) -> Optional[Tuple[str, str]]:
    """(the side whose count is missing, why) when one side of the pair carries instruction counts
    and the other, which ran ok, does not; else None."""
    cb, cc = cmp.baseline.counts(INSTRUCTIONS), cmp.candidate.counts(INSTRUCTIONS)
    # only a round that ran the extras counts: a timing-only round without a count has lost nothing
    if cb is not None and cc is None and cmp.candidate.ok_for(INSTRUCTIONS.column):
        return "candidate", why_uncounted(cmp.candidate)
    if cc is not None and cb is None and cmp.baseline.ok_for(INSTRUCTIONS.column):
        return "baseline", why_uncounted(cmp.baseline)
    return None


def counts_of(cmp: Comparison) -> Optional[Counts]:
    """The pair's instruction counts, or None unless both sides carry some."""
    cb, cc = cmp.baseline.counts(INSTRUCTIONS), cmp.candidate.counts(INSTRUCTIONS)
    if cb is None or cc is None:
        return None
    return Counts(median(cb[0]), median(cc[0]), max(_spread(*cb), _spread(*cc)), len(cb[0]), len(cc[0]))


@dataclass(frozen=True)
class TimeTest:
    """The timing test of one pair, before the run-wide correction (``q_value`` set after it)."""

    comparison: Comparison
    baseline: float  # median seconds of the pooled samples
    candidate: float
    ratio: float  # what the rule judges: plain or probe-relative
    median_ratio: float
    probe_ratio: Optional[float]
    relative_to: Optional[str]  # the probe's description when the test is probe-relative
    n_baseline: int
    n_candidate: int
    rounds_baseline: int
    rounds_candidate: int
    test: str  # SAMPLE_TEST or ROUND_TEST
    p_value: Optional[float]
    #: why no test can decide (then it stays out of the correction), or None
    too_few: Optional[str] = None
    #: ``time_test = "auto"`` with fewer than ``min_rounds`` rounds: why a change is at most inconclusive
    few_rounds: Optional[str] = None
    q_value: Optional[float] = None
    #: instruction counts of both sides, when both carry them: then they decide
    counts: Optional[Counts] = None
    #: (side, why) when only one side carries counts (``missing_counts``)
    missing: Optional[Tuple[str, str]] = None


def _round_test(rb: Sequence[float], rc: Sequence[float]) -> Tuple[Optional[float], Optional[str]]:
    """(p, too_few) of Welch's t on the log of the round medians: a round (a process) is the unit
    of replication, because samples of one process share its speed."""
    if min(len(rb), len(rc)) < 2:
        return None, "%d vs %d rounds: the round-level test needs at least 2 per side" % (len(rb), len(rc))
    lb, lc = np.log(rb), np.log(rc)
    if np.ptp(lb) == 0 and np.ptp(lc) == 0:
        if lb[0] == lc[0]:
            return 1.0, None
        return None, "round medians identical within each side: no spread to test against"
    p = welch_log_p(rc, rb)
    return (1.0 if math.isnan(p) else p), None


def _sample_test(xb: Sequence[float], xc: Sequence[float], q: float) -> Tuple[float, Optional[str]]:
    """(p, too_few) of Mann-Whitney U on the pooled samples; too few when even fully separated
    samples could not reach ``q``."""
    p_min = min_exact_mannwhitney_p(len(xb), len(xc))
    too_few = None
    if p_min > q:
        too_few = "%d vs %d samples: smallest achievable p = %.3g > q = %g" % (len(xb), len(xc), p_min, q)
    p = mannwhitney_p(xc, xb)
    return (1.0 if math.isnan(p) else p), too_few


def time_test(cmp: Comparison) -> Optional[TimeTest]:
    """Medians, ratios and the raw p-value of one pair; None when either side has no samples.

    When every ok record of both sides holds speed-probe times of the same probe,
    ``probe_ratio`` is the ratio of the medians of step time / probe time, and with
    ``time_basis = "probe"`` the test and ``ratio`` use those.
    """
    th = cmp.thresholds
    xb, rb = cmp.baseline.samples()
    xc, rc = cmp.candidate.samples()
    if not xb or not xc:
        return None
    mb, mc = median(xb), median(xc)
    counts = dict(n_baseline=len(xb), n_candidate=len(xc), rounds_baseline=len(rb), rounds_candidate=len(rc))
    ratio, probe_ratio, relative_to = mc / mb, None, None
    rel_b, rel_c = cmp.baseline.relative(), cmp.candidate.relative()
    if rel_b is not None and rel_c is not None and rel_b[0] == rel_c[0]:
        probe_ratio = median(rel_c[1]) / median(rel_b[1])
        if th["time_basis"] == "probe":
            relative_to = rel_b[0]
            xb, rb, xc, rc = rel_b[1], rel_b[2], rel_c[1], rel_c[2]
            ratio = probe_ratio
    mode, few_rounds = th["time_test"], None
    if mode == "auto":
        mode = "rounds" if min(len(rb), len(rc)) >= th["min_rounds"] else "samples"
        if mode == "samples":
            few_rounds = "%d vs %d rounds (%d a side needed): samples of one process are not independent, so " \
                         "they cannot show a time change on their own" % (len(rb), len(rc), th["min_rounds"])
    if mode == "rounds":
        test, (p, too_few) = ROUND_TEST, _round_test(rb, rc)
    else:
        test, (p, too_few) = SAMPLE_TEST, _sample_test(xb, xc, th["q"])
    return TimeTest(cmp, mb, mc, ratio, mc / mb, probe_ratio, relative_to, test=test, p_value=p, too_few=too_few,
                    few_rounds=few_rounds, counts=counts_of(cmp), missing=missing_counts(cmp), **counts)


def with_q_values(tests: Sequence[TimeTest]) -> List[TimeTest]:
    """The tests with their q-values: one BH correction over every test that can decide."""
    family = [i for i, t in enumerate(tests) if t.too_few is None]
    q_of = dict(zip(family, bh_qvalues([tests[i].p_value for i in family])))
    return [dataclasses.replace(t, q_value=q_of.get(i)) for i, t in enumerate(tests)]


def _describe(t: TimeTest) -> Tuple[str, str]:
    """(what changed, how it was tested), as text."""
    relative = t.relative_to is not None
    medians = "%s → %s" % (format_value(WALL_TIME.unit, t.baseline), format_value(WALL_TIME.unit, t.candidate))
    if relative:
        medians += ", plain medians %.2f×" % t.median_ratio
    if abs(math.log(t.ratio)) < 0.005:
        what = "same %s (%s)" % ("speed relative to the probe" if relative else "median", medians)
    else:
        what = "%.2f× %s%s (%s)" % (t.ratio if t.ratio >= 1.0 else 1.0 / t.ratio, "slower" if t.ratio > 1.0 else
                                   "faster", " relative to the speed probe" if relative else "", medians)
    unit = " of step/probe" if relative else ""
    if t.test == SAMPLE_TEST:
        how = "Mann-Whitney U%s, %d vs %d samples" % (unit, t.n_baseline, t.n_candidate)
    else:
        how = "Welch t on log round medians%s, %d vs %d rounds" % (unit, t.rounds_baseline, t.rounds_candidate)
    return what, how


def _wall_judgement(t: TimeTest) -> Tuple[str, str]:
    """(verdict, reason) of the wall-time test alone: regressed only when the ratio is beyond
    ``time_factor`` AND ``q_value <= q``; inconclusive when the test cannot decide or is not to
    be trusted; improved symmetrically."""
    th = t.comparison.thresholds
    factor, q_thr, q = th["time_factor"], th["q"], t.q_value
    big_slow, big_fast = t.ratio > factor, t.ratio < 1.0 / factor
    what, how = _describe(t)
    if t.too_few is not None:
        return "inconclusive", "%s; too few to test: %s" % (what, t.too_few)
    if t.relative_to is not None and q <= q_thr and (big_slow or big_fast) and (t.median_ratio > 1.0) != big_slow:
        return "inconclusive", "%s, q = %.2g (%s), but the plain medians moved the other way: " \
            "the code under test changed the probe's own speed" % (what, q, how)
    if t.few_rounds and q <= q_thr and (big_slow or big_fast):
        return "inconclusive", "%s, q = %.2g (%s), but %s; run more rounds (ab --rounds %d) or " \
            "set time_test = \"samples\" to trust them" % (what, q, how, t.few_rounds, th["min_rounds"])
    if q <= q_thr and big_slow:
        return "regressed", "%s, q = %.2g (%s)" % (what, q, how)
    if q <= q_thr and big_fast:
        return "improved", "%s, q = %.2g (%s)" % (what, q, how)
    if big_slow or big_fast:
        return "inconclusive", "%s, beyond %.2f× but not significant: q = %.2g > %g (%s)" % (
            what, factor, q, q_thr, how)
    if q <= q_thr:
        return "unchanged", "%s, significant (q = %.2g) but within %.2f×" % (what, q, factor)
    return "unchanged", "%s, within %.2f× and q = %.2g" % (what, factor, q)


def _wall_moved(t: TimeTest) -> bool:
    """The wall time moved beyond the factor and its test says so, trusted or not."""
    th = t.comparison.thresholds
    return (t.too_few is None and t.q_value is not None and t.q_value <= th["q"]
            and (t.ratio > th["time_factor"] or t.ratio < 1.0 / th["time_factor"]))


def _counts_text(t: TimeTest) -> Tuple[str, float]:
    """(the counts' change, spread and limit as text, the limit)."""
    c = t.counts
    th = t.comparison.thresholds
    limit = count_limit(INSTRUCTIONS, th, c.spread)
    capped = ", the spread's part capped at %g%%" % (100 * COUNT_SPREAD_CAP) \
        if count_limit_capped(INSTRUCTIONS, th, c.spread) else ""
    return "instructions %+.1f%% (%s → %s per step; spread %.2g%%, limit %.1f%%%s)" % (
        100 * (c.ratio - 1.0), format_value(INSTRUCTIONS.unit, c.baseline),
        format_value(INSTRUCTIONS.unit, c.candidate), 100 * c.spread, 100 * limit, capped), limit


def _count_judgement(t: TimeTest, wall_verdict: str, wall_reason: str) -> Tuple[str, str]:
    """(verdict, reason) on the instruction counts: a change beyond ``instructions_frac`` AND
    ``instructions_spread_factor`` times the counts' spread; the wall time beside it."""
    counts, limit = _counts_text(t)
    change = t.counts.ratio - 1.0
    wall = "wall time: %s" % wall_reason
    if change > limit:
        return "regressed", "%s; %s" % (counts, wall)
    if change < -limit / (1.0 + limit):
        return "improved", "%s; %s" % (counts, wall)
    if wall_verdict in ("regressed", "improved"):
        return "inconclusive", "%s; wall time only: %s: likely machine or memory-bound; confirm with rounds" % (
            counts, wall_reason)
    if _wall_moved(t):
        return "unchanged", "%s; wall time only: %s: likely machine or memory-bound; confirm with rounds" % (
            counts, wall_reason)
    return "unchanged", "%s; %s" % (counts, wall)


def _q_text(q: Optional[float]) -> str:
    return "no q (too few to test)" if q is None else "q = %.2g" % q


def time_rule(t: TimeTest) -> Verdict:
    """The time verdict of one pair: on the instruction counts where both sides carry them,
    else on the wall time (``_wall_judgement``). A verdict on the counts rests on no test: its
    ``p_value``/``q_value`` are None, its ``how`` names the counts, and the wall-time test stands
    beside it (``wall_how``, ``wall_p_value``, ``wall_q_value``)."""
    wall_verdict, wall_reason = _wall_judgement(t)
    _, how = _describe(t)
    fields = dict(n_baseline=t.n_baseline, n_candidate=t.n_candidate, rounds_baseline=t.rounds_baseline,
                  rounds_candidate=t.rounds_candidate, median_ratio=t.median_ratio, probe_ratio=t.probe_ratio,
                  relative_to=t.relative_to)
    if t.counts is None and t.missing is not None:
        side, why = t.missing
        if side == "candidate":
            verdict, reason = "lost", "instruction count lost on the head: %s; wall time: %s" % (why, wall_reason)
        elif wall_verdict == "regressed":
            verdict, reason = wall_verdict, "%s; instruction count missing on the base: %s" % (wall_reason, why)
        else:
            verdict, reason = "not_comparable", "instruction count missing on the base: %s; wall time: %s" % (
                why, wall_reason)
        return t.comparison.verdict(
            "time", verdict, reason, unit=WALL_TIME.unit, basis=WALL_TIME.label, count_missing_on=side,
            threshold=thresholds_of(WALL_TIME, t.comparison.thresholds), baseline=t.baseline, candidate=t.candidate,
            ratio=t.ratio, test=t.test, p_value=t.p_value, q_value=t.q_value, how=how, wall_verdict=wall_verdict,
            **fields)
    if t.counts is None:
        return t.comparison.verdict(
            "time", wall_verdict, wall_reason, unit=WALL_TIME.unit, basis=WALL_TIME.label,
            threshold=thresholds_of(WALL_TIME, t.comparison.thresholds), baseline=t.baseline, candidate=t.candidate,
            ratio=t.ratio, test=t.test, p_value=t.p_value, q_value=t.q_value, how=how, **fields)
    verdict, reason = _count_judgement(t, wall_verdict, wall_reason)
    c = t.counts
    counts, _limit = _counts_text(t)
    return t.comparison.verdict(
        "time", verdict, reason, unit=INSTRUCTIONS.unit, basis=INSTRUCTIONS.label,
        threshold=thresholds_of(INSTRUCTIONS, t.comparison.thresholds),
        baseline=c.baseline, candidate=c.candidate, ratio=c.ratio, instructions_spread=c.spread,
        counted_baseline=c.n_baseline, counted_candidate=c.n_candidate, test=INSTRUCTIONS.label,
        how="%s; wall time %.2f×, %s (%s)" % (counts, t.ratio, _q_text(t.q_value), how), p_value=None, q_value=None,
        wall_baseline_s=t.baseline, wall_candidate_s=t.candidate, wall_ratio=t.ratio, wall_test=t.test,
        wall_how=how, wall_p_value=t.p_value, wall_q_value=t.q_value, wall_verdict=wall_verdict,
        wall_time_only=verdict in ("unchanged", "inconclusive") and _wall_moved(t), **fields)
