"""Per-op comparison of profiled cases: which ops' self time changed most, side by side.

A record of a profiled case carries the heaviest ops of a few profiled steps (the
record's ``profile`` part, ``harness.record.parts.Profile``: name, calls and self time
per step). For a case profiled in two environments of the report, each environment is
compared with the reference environment (the speed section's); for a case profiled in
the baseline records too (``report --baseline``: another commit or store), the baseline
is compared with the candidate in the same environment. Each comparison lists the ops
whose self time per step changed most (on a GPU by self CUDA time, where both sides have
it), so that a convolution that ran ``slow_conv2d`` on one release and ``mkldnn_convolution``
on the next shows as those two ops, not as one ratio. An op missing on one side was not
among that side's heaviest ops (it ran faster than the last one listed, or not at all).

Also: every profiled record with links to its trace folder and file, relative to the
report page. Never imports torch.
"""
import json
import os
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from harness.analysis.report.payload import Column, encode_dataset, script_safe
from harness.units import format_duration

#: Ops listed per comparison, the largest changes first.
OPS_PER_COMPARISON = 12
#: Comparisons embedded in the page (cases x environment pairs), the largest changes first.
MAX_COMPARISONS = 200


def _num(value) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None


def trace_links(source: Any, trace_dir: Any, trace_file: Any, page_dir: Optional[str]) -> Tuple[str, str]:
    """Links (URL-quoted, '/' separated) to a record's trace folder and trace file, relative to the report
    page's folder ``page_dir`` (absolute when it is None); '' where there is none. The record names its
    folder relative to the folder of its record file (``source``)."""
    if not isinstance(source, str) or not isinstance(trace_dir, str) or not trace_dir:
        return "", ""
    folder = os.path.join(os.path.dirname(os.path.abspath(source)), *trace_dir.split("/"))
    where = os.path.relpath(folder, page_dir) if page_dir else folder
    href = urllib.parse.quote(where.replace(os.sep, "/")) + "/"
    file_href = href + urllib.parse.quote(trace_file) if isinstance(trace_file, str) and trace_file else ""
    return href, file_href


def _shapes_text(shapes: Any) -> str:
    if not isinstance(shapes, list):
        return ""
    return ", ".join(str(s) for s in shapes if s not in ([], None))


def _basis(a: pd.Series, b: pd.Series) -> str:
    """'self_cuda_s' where both sides recorded GPU time, else 'self_cpu_s'."""
    both = all(_num(r.get("profile_self_cuda_s")) for r in (a, b))
    return "self_cuda_s" if both else "self_cpu_s"


def _ops(row: pd.Series) -> Dict[str, Dict[str, Any]]:
    ops = row.get("profile_ops")
    return {o["name"]: o for o in ops if isinstance(o, dict) and "name" in o} if isinstance(ops, list) else {}


def op_changes(a_ops: Dict[str, Dict], b_ops: Dict[str, Dict], basis: str) -> List[Dict[str, Any]]:
    """The ops of either side, the largest change of ``basis`` (seconds per step) first; a side without the
    op has None (it was not among that side's heaviest ops)."""
    rows = []
    for name in dict.fromkeys(list(a_ops) + list(b_ops)):
        a, b = a_ops.get(name), b_ops.get(name)
        a_s = _num(a.get(basis)) if a else None
        b_s = _num(b.get(basis)) if b else None
        rows.append({"name": name, "a_s": a_s, "b_s": b_s, "delta_s": (b_s or 0.0) - (a_s or 0.0),
                     "ratio": b_s / a_s if a_s and b_s is not None else None,
                     "a_calls": _num(a.get("calls_per_step")) if a else None,
                     "b_calls": _num(b.get("calls_per_step")) if b else None,
                     "a_shapes": _shapes_text(a.get("input_shapes")) if a else "",
                     "b_shapes": _shapes_text(b.get("input_shapes")) if b else ""})
    rows.sort(key=lambda r: -abs(r["delta_s"]))
    return rows


def case_title(row: pd.Series) -> str:
    """The case in a few words: 'cbam_classifier_tiny train b2 s32 bf16 ckpt=none cpu'."""
    batch = row.get("batch_size")
    batch = "%d" % batch if _num(batch) is not None else str(batch)
    opts = row.get("opts")
    return "%s %s b%s s%s %s ckpt=%s %s%s" % (row.get("model"), row.get("mode"), batch, row.get("size_label"),
                                            row.get("precision"), row.get("checkpoint"), row.get("device"),
                                            "" if opts in (None, "-") else " " + str(opts))


def _side(label: str, row: pd.Series, basis: str, page_dir: Optional[str]) -> Dict[str, Any]:
    href, file_href = trace_links(row.get("source"), row.get("profile_trace_dir"), row.get("profile_trace_file"),
                                  page_dir)
    total = _num(row.get("profile_self_cuda_s" if basis == "self_cuda_s" else "profile_self_cpu_s"))
    return {"label": label, "href": href, "file_href": file_href, "total_s": total,
            "total_text": format_duration(total), "median_text": format_duration(_num(row.get("median_s")))}


def _profiled(frame: Optional[pd.DataFrame]) -> pd.DataFrame:
    if frame is None or "profile_trace_dir" not in frame.columns:
        return pd.DataFrame()
    return frame[frame["profile_trace_dir"].notna()]


def pairs(df: pd.DataFrame, env_order: Sequence[str], ref: str,
          baseline: Optional[pd.DataFrame] = None) -> List[Tuple[str, pd.Series, str, pd.Series]]:
    """``(label A, record A, label B, record B)`` for every comparison: a case's profile in each environment
    against the reference environment's (the earlier environment is A), else against the last environment
    profiled; a case's baseline profile (``baseline``, same case key and environment) against the candidate's."""
    out = []
    cand = _profiled(df)
    cand = cand[cand["profile_ops"].apply(lambda v: isinstance(v, list) and bool(v))] if len(cand) else cand
    rank = {e: i for i, e in enumerate(env_order)}
    for _, group in (cand.groupby("case_key", sort=False) if len(cand) else ()):
        rows = sorted(((str(r["env"]), r) for _, r in group.iterrows()), key=lambda p: rank.get(p[0], -1))
        if len(rows) < 2:
            continue
        anchor = next((p for p in rows if p[0] == ref), rows[-1])
        for env, row in rows:
            if env == anchor[0]:
                continue
            earlier = rank.get(env, -1) < rank.get(anchor[0], -1)
            first, second = ((env, row), anchor) if earlier else (anchor, (env, row))
            out.append((first[0], first[1], second[0], second[1]))
    base = _profiled(baseline)
    if len(base) and len(cand):
        by_key = {(r["case_key"], str(r["env_label"])): r for _, r in base.iterrows()}
        for _, row in cand.iterrows():
            other = by_key.get((row["case_key"], str(row["env_label"])))
            if other is not None and isinstance(other.get("profile_ops"), list):
                out.append(("baseline " + str(row["env_label"]), other, str(row["env"]), row))
    return out


def comparisons(df: pd.DataFrame, env_order: Sequence[str], ref: str, baseline: Optional[pd.DataFrame],
                page_dir: Optional[str]) -> List[Dict[str, Any]]:
    """Every comparison (``pairs``) with its ops' changes, the one with the largest change first, capped at
    ``MAX_COMPARISONS``."""
    out = []
    for a_label, a, b_label, b in pairs(df, env_order, ref, baseline):
        basis = _basis(a, b)
        changes = op_changes(_ops(a), _ops(b), basis)
        out.append({"case": str(a["case_key"]), "title": case_title(b),
                    "basis": "self CUDA" if basis == "self_cuda_s" else "self CPU",
                    "a": _side(a_label, a, basis, page_dir), "b": _side(b_label, b, basis, page_dir),
                    "ops": [dict(r, a_text=format_duration(r["a_s"], "\u2014"),
                                 b_text=format_duration(r["b_s"], "\u2014"),
                                 delta_text=("+" if r["delta_s"] > 0 else "") + format_duration(r["delta_s"]))
                            for r in changes[:OPS_PER_COMPARISON]],
                    "largest_s": abs(changes[0]["delta_s"]) if changes else 0.0})
    out.sort(key=lambda c: -c["largest_s"])
    return out[:MAX_COMPARISONS]


def profiles(df: pd.DataFrame, page_dir: Optional[str]) -> List[Dict[str, Any]]:
    """Every profiled record: its case, environment, heaviest op, totals and trace links (or the error)."""
    out = []
    for _, row in _profiled(df).iterrows():
        href, file_href = trace_links(row.get("source"), row.get("profile_trace_dir"), row.get("profile_trace_file"),
                                      page_dir)
        ops = row.get("profile_ops") if isinstance(row.get("profile_ops"), list) else []
        top = ops[0] if ops else {}
        gpu = _num(row.get("profile_self_cuda_s"))
        out.append({"case": str(row["case_key"]), "title": case_title(row), "env": str(row["env"]),
                    "steps": _num(row.get("profile_steps")), "href": href, "file_href": file_href,
                    "cpu_text": format_duration(_num(row.get("profile_self_cpu_s"))),
                    "cuda_text": format_duration(gpu) if gpu is not None else "",
                    "top": top.get("name", ""),
                    "top_text": format_duration(_num(top.get("self_cuda_s" if gpu else "self_cpu_s"))) if top else "",
                    "error": row.get("profile_error") if isinstance(row.get("profile_error"), str) else ""})
    return out


def ops_json(comps: List[Dict[str, Any]], profs: List[Dict[str, Any]]) -> str:
    """The JSON block ``assets/ops.js`` draws the comparisons and the profiled cases from."""
    return script_safe(json.dumps({"comparisons": comps, "profiles": profs}, separators=(",", ":"),
                                  allow_nan=False))


def changes_json(comps: List[Dict[str, Any]]) -> str:
    """Every op change of every comparison as one flat table (the page's sortable table format)."""
    rows = [{"case": c["title"], "a": c["a"]["label"], "b": c["b"]["label"], "basis": c["basis"], "op": o["name"],
             "a_ms": o["a_s"] * 1e3 if o["a_s"] is not None else None,
             "b_ms": o["b_s"] * 1e3 if o["b_s"] is not None else None,
             "delta_ms": o["delta_s"] * 1e3, "ratio": o["ratio"]}
            for c in comps for o in c["ops"]]
    frame = pd.DataFrame(rows, columns=["case", "a", "b", "basis", "op", "a_ms", "b_ms", "delta_ms", "ratio"])
    cols = [Column("case", "case"), Column("a", "A"), Column("b", "B"), Column("basis", "time"),
            Column("op", "op", kind="text", filter=False), Column("a_ms", "A ms/step", kind="num", digits=4),
            Column("b_ms", "B ms/step", kind="num", digits=4),
            Column("delta_ms", "B \u2212 A ms", kind="num", digits=3),
            Column("ratio", "B / A", kind="num", digits=3, fmt="tratio")]
    return encode_dataset(frame, cols)
