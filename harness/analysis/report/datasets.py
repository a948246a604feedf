"""The datasets the page's tables and chart grids read: which rows and columns, in which order.

Each function takes prepared frames and returns the JSON text of one dataset
(``payload.encode_dataset``), ready for a ``<script type="application/json">`` block:
every record, the environments and their colours, the gate's verdicts, the
comparison with baseline records. Comparison tables are ranked (most important
first) and capped at ``MAX_COMPARE_ROWS`` rows to keep the file small.
"""
import json
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.analysis.report.frame import STATUS_ORDER
from harness.analysis.report.payload import Column, encode_dataset, script_safe
from harness.analysis.verdict_text import kind_text, model_text, value_text, why_text
from harness.record.schema import TABLE_COLUMNS
from harness.vocab import VERDICT_KINDS

#: Most rows a comparison table embeds (the most important first), to keep the file small.
MAX_COMPARE_ROWS = 20000
#: Verdicts in the order the verdict table lists them: regressions first.
VERDICT_RANK = {v: i for i, v in enumerate(("regressed", "lost", "inconclusive", "not_comparable", "vanished", "new",
                                            "improved", "unchanged"))}
#: Per-case changes against baseline records, in the order the comparison table lists them.
CHANGE_RANK = {"status": 0, "slower": 1, "vanished": 2, "new": 3, "faster": 4, "same": 5}
#: How the table of every case formats a schema-declared column (``TABLE_COLUMNS``), by the end of its name
#: (names carry units): bytes in binary units, instruction counts in decimal ones ('118.5 M').
UNIT_FORMATS = (("_bytes", "bytes"), ("instructions_per_iter", "count"), ("flops_per_iter", "count"),
                ("flops_per_s", "count"), ("_pct", "pct"))
#: Significant digits the page keeps of such a column of floats (a count keeps enough for its CSV).
UNIT_DIGITS = {"count": 6}


def size_order(*frames: pd.DataFrame) -> List[str]:
    """Size labels in size order over the given prepared frames."""
    sizes = pd.concat([f[["size_label", "size_rank"]] for f in frames])
    return (sizes.drop_duplicates("size_label").sort_values(["size_rank", "size_label"])["size_label"]
            .astype(str).tolist())


def envs_json(envs: Sequence[str], colors: Sequence[str], ref: str) -> str:
    """The environment names and colours the chart grids use."""
    data = [{"name": e, "color": c, "ref": e == ref} for e, c in zip(envs, colors)]
    return script_safe(json.dumps(data))


def _unit_format(name: str) -> str:
    return next((fmt for suffix, fmt in UNIT_FORMATS if name.endswith(suffix)), "")


def instruction_notes(df: pd.DataFrame) -> pd.Series:
    """Per record, why it has no instruction count: '<status>: <reason>' for an instruction status
    other than ok, None otherwise (no count pass, or a count)."""
    status = df["instr_status"] if "instr_status" in df.columns else pd.Series(None, index=df.index, dtype=object)
    reason = df["instr_reason"] if "instr_reason" in df.columns else pd.Series(None, index=df.index, dtype=object)
    notes = [None if not isinstance(s, str) or s == "ok" else s + (": " + r if isinstance(r, str) and r else "")
             for s, r in zip(status, reason)]
    return pd.Series(notes, index=df.index, dtype=object)


def _schema_columns(df: pd.DataFrame, frame: pd.DataFrame) -> List[Column]:
    """The columns the record schema declares for the table (``TABLE_COLUMNS``), formatted by their unit;
    after the instruction count, why a record has none, when any record has a status other than ok."""
    cols = []
    for col in TABLE_COLUMNS:
        frame[col.name] = df[col.name]
        fmt = _unit_format(col.name)
        if col.kind == "int":  # exact (a tensor peak to the byte)
            cols.append(Column(col.name, col.table, kind="int", fmt=fmt))
        elif col.kind == "num":
            cols.append(Column(col.name, col.table, kind="num", fmt=fmt, digits=UNIT_DIGITS.get(fmt, 4)))
        else:
            cols.append(Column(col.name, col.table))
        if col.name == "instructions_per_iter":
            notes = instruction_notes(df)
            if notes.notna().any():
                frame["instr_note"] = notes
                cols.append(Column("instr_note", "no instruction count", kind="text", filter=False))
    return cols


def records_json(df: pd.DataFrame, notes: Dict) -> str:
    """Every record, for the table of every case and the chart grids."""
    frame = pd.DataFrame({
        "case_key": df["case_key"], "model": df["model"], "mode": df["mode"], "batch_size": df["batch_size"],
        "size": df["size_label"], "precision": df["precision"], "checkpoint": df["checkpoint"],
        "device": df["device"], "opts": df["opts"], "env": df["env"].astype(str), "status": df["status"],
        "median_ms": df["median_s"] * 1e3,
        "iqr_pct": 100.0 * df["iqr_s"] / df["median_s"].where(df["median_s"] > 0),
        "throughput": df["throughput_per_s"], "peak_mib": df["peak_mem_bytes"] / 2.0 ** 20,
        "err_rel": df["err_rel"],
        "acc": np.where(df["acc_passed"] == True, "pass", np.where(df["acc_passed"] == False, "fail", None)),  # noqa
        "reason": df["reason_short"].where(df["reason_short"] != "", None),
    })
    schema_cols = _schema_columns(df, frame)  # fields the record schema declares with a table heading
    cols = [
        Column("model", "model", ref="case"), Column("mode", "mode", order=notes["mode_order"], ref="case"),
        Column("batch_size", "batch", kind="int", ref="case"),
        Column("size", "size", order=size_order(df), ref="case"),
        Column("precision", "precision", order=notes["precision_order"], ref="case"),
        Column("checkpoint", "checkpoint", order=notes["checkpoint_order"], ref="case"),
        Column("device", "device", ref="case"), Column("opts", "options", order=("-",), ref="case"),
        Column("env", "environment", order=notes["env_order"]),
        Column("status", "status", fmt="status", order=STATUS_ORDER),
        Column("median_ms", "median ms", kind="num", digits=4),
        Column("iqr_pct", "IQR %", kind="num", digits=2, fmt="pct"),
        Column("throughput", "samples/s", kind="num", digits=4),
        Column("peak_mib", "peak MiB", kind="num", digits=3),
        Column("err_rel", "rel. error", kind="num", digits=2, fmt="sci"), Column("acc", "accuracy"),
        Column("reason", "reason", kind="text", filter=False),
    ] + schema_cols
    return encode_dataset(frame, cols, ref_key="case_key")


def cap_rows(frame: pd.DataFrame) -> Tuple[pd.DataFrame, int]:
    """The first ``MAX_COMPARE_ROWS`` rows of a ranked frame and how many rows it had."""
    return frame.iloc[:MAX_COMPARE_ROWS], len(frame)


def ranked_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdicts regressions first (then by ratio, largest first)."""
    frame = verdicts.assign(_rank=verdicts["verdict"].map(VERDICT_RANK).fillna(99))
    return frame.sort_values(["_rank", "ratio"], ascending=[True, False], kind="stable")


def verdicts_json(ranked: pd.DataFrame) -> str:
    """The verdict table's dataset from ``ranked_verdicts`` (already capped): each verdict in the words of
    ``harness.analysis.verdict_text``, as the gate's Markdown writes it."""
    rows = ranked.to_dict("records")
    frame = ranked.assign(
        baseline=[value_text(v, "baseline") for v in rows], candidate=[value_text(v, "candidate") for v in rows],
        kind=[kind_text(v) for v in rows], model=[model_text(v) for v in rows], reason=[why_text(v) for v in rows])
    kinds = list(VERDICT_KINDS) + sorted(set(frame["kind"]) - set(VERDICT_KINDS))
    cols = [Column("verdict", "verdict", fmt="verdict", order=list(VERDICT_RANK)),
            Column("kind", "kind", order=kinds), Column("model", "model"),
            Column("env_label", "environment"), Column("case_key", "case", kind="text", filter=False),
            Column("baseline", "baseline", kind="text", filter=False),
            Column("candidate", "candidate", kind="text", filter=False),
            Column("ratio", "ratio", kind="num", digits=3, fmt="tratio"),
            Column("p_value", "p", kind="num", digits=2, fmt="p"),
            Column("q_value", "q", kind="num", digits=2, fmt="p"),
            Column("reason", "reason", kind="text", filter=False)]
    return encode_dataset(frame, cols)


def ranked_changes(comp: pd.DataFrame) -> pd.DataFrame:
    """``compare.compare_with_baseline`` rows, status changes first, then the slowest."""
    frame = comp.assign(_rank=comp["change"].map(CHANGE_RANK), _t=comp["time_ratio"].fillna(0))
    return frame.sort_values(["_rank", "_t"], ascending=[True, False], kind="stable")


def changes_json(ranked: pd.DataFrame, cand: pd.DataFrame, base: pd.DataFrame, notes: Dict) -> str:
    """The comparison table's dataset from ``ranked_changes`` (already capped)."""
    accs = {True: "pass", False: "fail"}
    frame = ranked.assign(
        status_change=ranked["status_base"].fillna("-") + " \u2192 " + ranked["status_cand"].fillna("-"),
        acc_change=ranked["acc_passed_base"].map(accs).fillna("-") + " \u2192 " +
        ranked["acc_passed_cand"].map(accs).fillna("-"),
        env_changed=np.where(ranked["env_changed"], "yes", "no"),
        median_base_ms=ranked["median_base_s"] * 1e3, median_cand_ms=ranked["median_cand_s"] * 1e3)
    cols = [Column("change", "change", order=list(CHANGE_RANK)), Column("model", "model"), Column("mode", "mode"),
            Column("batch_size", "batch", kind="int"),
            Column("size_label", "size", order=size_order(cand, base)),
            Column("precision", "precision", order=notes["precision_order"]),
            Column("checkpoint", "checkpoint", order=notes["checkpoint_order"]), Column("device", "device"),
            Column("env", "environment", order=notes["env_order"]),
            Column("status_change", "status"), Column("median_base_ms", "baseline ms", kind="num", digits=4),
            Column("median_cand_ms", "candidate ms", kind="num", digits=4),
            Column("time_ratio", "time ratio", kind="num", digits=3, fmt="tratio"),
            Column("mem_ratio", "memory ratio", kind="num", digits=3, fmt="mratio"),
            Column("time_basis", "time on"), Column("mem_basis", "memory on"),
            Column("acc_change", "accuracy"), Column("env_changed", "env changed")]
    return encode_dataset(frame, cols)
