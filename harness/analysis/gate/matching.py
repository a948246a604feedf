"""Match the two sides case by case and environment by environment, apply every rule, count.

``compare`` is the gate's core (two record tables in, verdict dicts out); the HTML
report and ``benchmarks/bench_gate.py`` call it too. Matching rules: docs/gate.md.
"""
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd

from harness.analysis.gate.aggregate import aggregate_verdicts
from harness.analysis.gate.groups import Group, env_diff, env_text, group_records
from harness.analysis.gate.rules import (
    Comparison,
    Verdict,
    behaviour_rule,
    fidelity_rule,
    leak_rule,
    max_batch_rule,
    memory_rule,
    outputs_rule,
    status_rule,
    task_rule,
)
from harness.analysis.gate.time_rules import TimeTest, time_rule, time_test, with_q_values
from harness.measures import CHAINS
from harness.scenario.gate_config import thresholds_for
from harness.vocab import FAILING_VERDICTS, VERDICT_KINDS, VERDICTS, ExitCode

#: The rules of a matched pair by the kind of verdict they give, in the order their verdicts are
#: listed; time comes last, after the run-wide correction.
PAIR_RULES = (("status", status_rule), ("accuracy", fidelity_rule), ("accuracy", outputs_rule),
              ("accuracy", task_rule), ("accuracy", behaviour_rule), ("memory", memory_rule), ("memory", leak_rule),
              ("memory", max_batch_rule))
#: The columns a kind's verdict rests on: NaN or Infinity in any makes that kind not comparable (the
#: instruction counts, deterministic, are checked by their own pass's status).
FINITE_COLUMNS = {"time": ("samples_s", "median_s", "probe_samples_s"),
                  "memory": tuple(m.column for m in CHAINS["memory"])}


def _nonfinite_verdicts(cmp: Comparison) -> Dict[str, Verdict]:
    """``{kind: not_comparable verdict}`` for the kinds whose figures hold NaN or Infinity."""
    out = {}
    for kind, columns in FINITE_COLUMNS.items():
        for side, group in (("baseline", cmp.baseline), ("candidate", cmp.candidate)):
            where = group.nonfinite(columns)
            if where:
                out[kind] = cmp.verdict(kind, "not_comparable", "%s holds NaN or Infinity: %s" % (side, where))
                break
    return out


def pair_unmatched(only_b: List[str], only_c: List[str], gb_of: Callable[[str], Group],
                   gc_of: Callable[[str], Group]) -> Tuple[List, List, List]:
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


def _unmatched_verdicts(key: str, gbs: Dict[str, Group], gcs: Dict[str, Group]) -> List[Verdict]:
    """not_comparable (same case, other environment), vanished and new verdicts of one case key."""
    out = []
    pairs, left_b, left_c = pair_unmatched(list(gbs), list(gcs), gbs.__getitem__, gcs.__getitem__)
    for fb, fc in pairs:
        gb, gc = gbs[fb], gcs[fc]
        out.append(Verdict(key, gc.model, fc, gc.label, "status", "not_comparable",
                           env_diff(dict(gb.first, _fp=fb), dict(gc.first, _fp=fc)),
                           baseline=env_text(gb.first), candidate=env_text(gc.first),
                           details={"baseline_env_label": gb.label, "baseline_env_fingerprint": fb,
                                    "env": env_text(gc.first)}))
    for fb in left_b:
        gb = gbs[fb]
        statuses = ",".join(sorted(set(gb.statuses)))
        out.append(Verdict(key, gb.model, fb, gb.label, "status", "vanished",
                           "not in the candidate (baseline: %s)" % statuses, baseline=statuses,
                           details={"baseline_env_label": gb.label, "baseline_env_fingerprint": fb,
                                    "env": env_text(gb.first)}))
    for fc in left_c:
        gc = gcs[fc]
        statuses = ",".join(sorted(set(gc.statuses)))
        out.append(Verdict(key, gc.model, fc, gc.label, "status", "new", "new case (candidate: %s)" % statuses,
                           candidate=statuses, details={"env": env_text(gc.first)}))
    return out


def compare(baseline_df: pd.DataFrame, candidate_df: pd.DataFrame, thresholds_table: Optional[Dict] = None
            ) -> List[Dict]:
    """Verdicts for every (case, environment, kind) of two record tables.

    ``baseline_df`` and ``candidate_df`` come from ``load_records``; ``thresholds_table``
    is a validated ``[gate]`` table (None: defaults). The fields of each verdict:
    docs/gate.md. Order: by case key, then environment, then kind; the run-wide time verdicts
    (case key ``harness.vocab.AGGREGATE_CASE_KEY``) first.
    """
    gbs, gcs = group_records(baseline_df), group_records(candidate_df)
    by_key_b: Dict[str, List[str]] = {}
    by_key_c: Dict[str, List[str]] = {}
    for key, fp in gbs:
        by_key_b.setdefault(key, []).append(fp)
    for key, fp in gcs:
        by_key_c.setdefault(key, []).append(fp)

    verdicts: List[Verdict] = []
    pending: List[TimeTest] = []
    for key in sorted(set(by_key_b) | set(by_key_c)):
        fps_b, fps_c = by_key_b.get(key, []), by_key_c.get(key, [])
        common = [fp for fp in fps_b if fp in fps_c]
        for fp in common:
            cmp = Comparison.of(key, fp, gbs[(key, fp)], gcs[(key, fp)], thresholds_table)
            bad = _nonfinite_verdicts(cmp)
            verdicts.extend(bad.values())
            verdicts.extend(v for v in (rule(cmp) for kind, rule in PAIR_RULES if kind not in bad)
                            if v is not None)
            test = time_test(cmp) if "time" not in bad else None
            if test is not None:
                pending.append(test)
        verdicts.extend(_unmatched_verdicts(key, {fp: gbs[(key, fp)] for fp in fps_b if fp not in common},
                                            {fp: gcs[(key, fp)] for fp in fps_c if fp not in common}))
    tests = with_q_values(pending)
    verdicts.extend(time_rule(t) for t in tests)
    verdicts.extend(aggregate_verdicts(tests, thresholds_for("", thresholds_table)))
    order = {k: i for i, k in enumerate(VERDICT_KINDS)}
    verdicts.sort(key=lambda v: (v.case_key, str(v.env_fingerprint), order[v.kind], v.details.get("check") or ""))
    return [v.as_dict() for v in verdicts]


def count_verdicts(verdicts: Iterable[Dict]) -> Dict[str, Dict[str, int]]:
    """``{kind: {verdict: count}}`` with every kind and verdict present."""
    counts = {k: {v: 0 for v in VERDICTS} for k in VERDICT_KINDS}
    for v in verdicts:
        counts[v["kind"]][v["verdict"]] += 1
    return counts


def exit_code_for(verdicts: Sequence[Dict]) -> ExitCode:
    """``FAILURE`` if any verdict fails (``harness.vocab.FAILING_VERDICTS``: regressed, or evidence
    lost), ``INPUT`` if no (case, environment) was compared at all, else ``OK``."""
    if any(v["verdict"] in FAILING_VERDICTS for v in verdicts):
        return ExitCode.FAILURE
    if not any(v["kind"] == "status" and v["verdict"] not in ("new", "vanished", "not_comparable")
               for v in verdicts):
        return ExitCode.INPUT
    return ExitCode.OK
