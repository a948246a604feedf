"""Release spans of a failure: on which releases each failing case fails, on which it works.

A failure group (``aggregate.failure_groups``: one normalised cause) is split by *cell*, the
(model, precision, mode, checkpoint) it occurs in, its batches, sizes and devices together. Per
cell and environment (in torch version order, the newest last) the state is one of

- ``fail``: a record of the cell in that environment is in the group;
- ``works``: none is, and one of its records there is ok;
- ``not run``: every record there is ``unsupported`` or ``skipped`` (neither working nor failing);
- ``other``: it fails there, with another cause;
- ``absent``: the cell has no record there.

From the states: the last good and first bad release, where it works again, and a pattern
(``everywhere``: the model's fault; ``from``, ``until``, ``between``: the releases'; ``gaps``:
fails, works, fails again). The finding of a group is one line per (precision, mode,
checkpoint) slice counting the models that fail on each release. Never imports torch.
"""
import re
from typing import Dict, List, Sequence, Tuple

import pandas as pd

from harness.analysis.report.frame import plain_columns, reason_group
from harness.vocab import NOT_RUN_STATUSES

FAIL, WORKS, NOT_RUN, OTHER, ABSENT = "fail", "works", "not run", "other", "absent"
#: One character per state, for the compact span strings of the Markdown and the tests.
STATE_MARKS = {FAIL: "\u2717", WORKS: "\u2713", NOT_RUN: "\u2013", OTHER: "\u25cb", ABSENT: "\u00b7"}
#: What a span is split by: a cell.
CELL_AXES = ("model", "precision", "mode", "checkpoint")
#: What a finding counts models over.
SLICE_AXES = ("precision", "mode", "checkpoint")
#: Exception class prefixes a reason repeats when an error is re-raised ("RuntimeError: RuntimeError: x").
_PREFIXES = re.compile(r"^(?:([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)):\s*)+")


def normalise_cause(short: str) -> str:
    """The grouping key of a failure reason: repeated exception prefixes folded to the last one,
    numbers and hex ids replaced (``frame.reason_group``), a trailing ellipsis dropped."""
    text = (short or "").strip()
    text = _PREFIXES.sub(lambda m: m.group(1) + ": ", text)
    return reason_group(re.sub(r"(\.\.\.|\u2026)$", "", text).strip())


def base_states(df: pd.DataFrame, envs: Sequence[str]) -> pd.DataFrame:
    """Per cell (index: ``CELL_AXES``) and environment (columns, ``envs`` order) the state without a
    group: ``works`` (an ok record), ``not run`` (every record unsupported or skipped), ``other``
    (fails) or ``absent``."""
    rows = plain_columns(df[list(CELL_AXES) + ["env", "status"]])
    rows = rows.assign(_ok=rows["status"] == "ok", _run=~rows["status"].isin(NOT_RUN_STATUSES))
    agg = rows.groupby(list(CELL_AXES) + ["env"], sort=False)[["_ok", "_run"]].any()
    state = pd.Series(OTHER, index=agg.index, dtype=object)
    state[~agg["_run"]] = NOT_RUN
    state[agg["_ok"]] = WORKS
    table = state.unstack("env")
    return table.reindex(columns=list(envs)).fillna(ABSENT)


def cell_span(states: Sequence[str], envs: Sequence[str]) -> Dict:
    """What one cell's states (in ``envs`` order) say: ``fails``/``works``/``not_run``/``other`` (the
    environments of each state), ``first_bad``, ``last_good`` (the latest working release before the
    first bad one), ``works_again`` (the first working release after the last bad one), ``pattern``
    (everywhere | from | until | between | gaps) and ``marks`` (one ``STATE_MARKS`` character each)."""
    by = {s: [e for e, st in zip(envs, states) if st == s] for s in (FAIL, WORKS, NOT_RUN, OTHER)}
    idx = [i for i, st in enumerate(states) if st == FAIL]
    first, last = idx[0], idx[-1]
    good_before = [i for i in range(first) if states[i] == WORKS]
    good_after = [i for i in range(last + 1, len(states)) if states[i] == WORKS]
    gap = any(states[i] == WORKS for i in range(first, last + 1))
    if gap:
        pattern = "gaps"
    elif not good_before and not good_after:
        pattern = "everywhere"
    elif good_before and good_after:
        pattern = "between"
    else:
        pattern = "from" if good_before else "until"
    return {"fails": by[FAIL], "works": by[WORKS], "not_run": by[NOT_RUN], "other": by[OTHER],
            "first_bad": envs[first], "last_good": envs[good_before[-1]] if good_before else None,
            "works_again": envs[good_after[0]] if good_after else None, "pattern": pattern,
            "marks": "".join(STATE_MARKS[s] for s in states)}


def group_spans(rows: pd.DataFrame, base: pd.DataFrame, envs: Sequence[str]) -> List[Dict]:
    """The spans of one failure group (``rows``: its records, with ``CELL_AXES`` and ``env``), one dict
    per cell (its axes and ``cell_span``), the cells that fail on most releases first."""
    failed = plain_columns(rows[list(CELL_AXES) + ["env"]]).drop_duplicates()
    out = []
    for cell, sub in failed.groupby(list(CELL_AXES), sort=False):
        states = list(base.loc[cell]) if cell in base.index else [ABSENT] * len(envs)
        bad = set(sub["env"])
        states = [FAIL if e in bad else s for e, s in zip(envs, states)]
        out.append(dict(zip(CELL_AXES, cell), **cell_span(states, envs)))
    out.sort(key=lambda s: (-len(s["fails"]), s["model"], s["precision"], s["mode"], s["checkpoint"]))
    return out


#: Consecutive releases whose counts of failing models stay within this factor read as one run.
RUN_COUNT_FACTOR = 1.5


def _runs(items: Sequence[Tuple[int, str, int]]) -> List[List[Tuple[int, str, int]]]:
    """Consecutive (position, env, count) items, split where a position is skipped or the count moves
    beyond ``RUN_COUNT_FACTOR`` of the run's smallest and largest."""
    out: List[List[Tuple[int, str, int]]] = []
    for item in items:
        counts = [c for _, _, c in out[-1]] + [item[2]] if out else []
        if out and item[0] == out[-1][-1][0] + 1 and max(counts) <= RUN_COUNT_FACTOR * min(counts):
            out[-1].append(item)
        else:
            out.append([item])
    return out


def _envs_text(envs: Sequence[str]) -> str:
    return envs[0] if len(envs) == 1 else "%s\u2013%s" % (envs[0], envs[-1])


def slice_finding(spans: Sequence[Dict], base: pd.DataFrame, envs: Sequence[str], where: Tuple) -> str:
    """One slice's sentence: how many of its models fail on each release, where it works, where it
    does not run. ``where``: the slice's (precision, mode, checkpoint)."""
    in_slice = base[[tuple(k[1:]) == where for k in base.index]]
    ran = (in_slice != NOT_RUN) & (in_slice != ABSENT)
    models = len(in_slice)
    fails = {e: 0 for e in envs}
    for s in spans:
        if (s["precision"], s["mode"], s["checkpoint"]) == where:
            for e in s["fails"]:
                fails[e] += 1
    parts = []
    failing = [(i, e, fails[e]) for i, e in enumerate(envs) if fails[e]]
    for run in _runs(failing):
        counts = sorted({c for _, _, c in run})
        count = str(counts[0]) if len(counts) == 1 else "%d\u2013%d" % (counts[0], counts[-1])
        parts.append("%s for %s of %d models" % (_envs_text([e for _, e, _ in run]), count, models))
    ckpt = "without checkpointing" if where[2] == "none" else "with %s checkpointing" % where[2]
    text = "%s %s %s fails on %s" % (where[0], where[1], ckpt, ", ".join(parts))
    last_fail = failing[-1][0] if failing else -1
    clean_after = [e for i, e in enumerate(envs) if i > last_fail and ran[e].any()]
    if clean_after:  # no model of the slice fails after the last failing release
        text += "; works from %s" % clean_after[0]
    not_run = [e for e in envs if models and not ran[e].any() and (in_slice[e] == NOT_RUN).any()]
    if not_run:
        text += "; not run (unsupported) on %s" % ", ".join(not_run)
    return text


def group_finding(spans: Sequence[Dict], base: pd.DataFrame, envs: Sequence[str], max_slices: int = 3) -> str:
    """The one line of a group: the model's fault when every cell fails wherever it ran, else the
    findings of its largest slices."""
    if spans and all(s["pattern"] == "everywhere" for s in spans):
        models = sorted({s["model"] for s in spans})
        return "Fails on every release where it ran (%s): the model's fault, not a release's." % (
            ", ".join(models[:6]) + (" and %d more" % (len(models) - 6) if len(models) > 6 else ""))
    sizes: Dict[Tuple, int] = {}
    for s in spans:
        key = (s["precision"], s["mode"], s["checkpoint"])
        sizes[key] = sizes.get(key, 0) + len(s["fails"])
    order = sorted(sizes, key=lambda k: (-sizes[k], k))
    lines = [slice_finding(spans, base, envs, k) for k in order[:max_slices]]
    more = " (and %d more slices)" % (len(order) - max_slices) if len(order) > max_slices else ""
    return "; ".join(lines) + more + "."
