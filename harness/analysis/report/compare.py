"""The candidate records against a baseline: per-case ratios without statistics, or the gate's verdicts.

``compare_with_baseline`` matches two prepared frames by case key and environment
label; ``verdicts_frame`` validates the gate's verdict dicts (kinds and verdicts from
``harness.vocab``) and names their model and environment from the candidate records.
Never imports torch.
"""
import json
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from harness.analysis.load import InputError
from harness.analysis.report import basis
from harness.analysis.report.frame import plain_columns
from harness.analysis.verdict_text import model_text
from harness.measures import default_thresholds
from harness.vocab import VERDICT_KINDS, VERDICTS

#: What every verdict must have.
VERDICT_KEYS = ("case_key", "env_fingerprint", "kind", "verdict")


def compare_with_baseline(cand: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Candidate against baseline per (case key, environment label), without statistics.

    Columns: case axes, env, status_base, status_cand, median_base_s, median_cand_s,
    ``time_ratio`` (candidate / baseline step cost; > 1 is slower), ``mem_ratio``, ``time_basis`` and
    ``mem_basis`` (each case on the first measure of ``harness.measures.CHAINS`` both its records carry,
    as the gate judges a pair), acc_base, acc_cand, ``change`` (new | vanished | status | slower |
    faster | same: beyond the gate's default ``time_factor``), ``env_changed`` (fingerprints differ).
    """
    keys = ["case_key", "env_label"]
    measured = [c for kind in ("time", "memory") for c in basis.columns(kind)]
    keep = keys + ["model", "mode", "batch_size", "size_label", "precision", "checkpoint", "device", "opts",
                   "status", "acc_passed", "env_fingerprint", "reason_short"] + measured
    a = plain_columns(base[[c for c in dict.fromkeys(keep) if c in base.columns]])
    b = plain_columns(cand[[c for c in dict.fromkeys(keep) if c in cand.columns]])
    merged = a.merge(b, on=keys, how="outer", suffixes=("_base", "_cand"), indicator=True)
    for col in ("model", "mode", "batch_size", "size_label", "precision", "checkpoint", "device", "opts"):
        merged[col] = merged[col + "_cand"].where(merged[col + "_cand"].notna(), merged[col + "_base"])
    sides = pd.DataFrame({c + suffix: merged[c + side] for c in measured if c + "_cand" in merged
                          for suffix, side in (("", "_cand"), ("_base", "_base"))}, index=merged.index)
    for kind, name in (("time", "time"), ("memory", "mem")):
        judged = basis.with_basis(sides, kind, suffix="_base")
        merged[name + "_ratio"], merged[name + "_basis"] = judged["ratio"], judged["basis"].where(
            judged["ratio"].notna())
    factor = default_thresholds()["time_factor"]
    change = np.where(merged["_merge"] == "right_only", "new",
                      np.where(merged["_merge"] == "left_only", "vanished",
                               np.where(merged["status_base"] != merged["status_cand"], "status",
                                        np.where(merged["time_ratio"] > factor, "slower",
                                                 np.where(merged["time_ratio"] < 1 / factor, "faster", "same")))))
    merged["change"] = change
    merged["env_changed"] = ((merged["_merge"] == "both") &
                             (merged["env_fingerprint_base"] != merged["env_fingerprint_cand"]))
    merged = merged.rename(columns={"median_s_base": "median_base_s", "median_s_cand": "median_cand_s",
                                    "env_label": "env"})
    return merged.drop(columns=[c for c in merged.columns if c.endswith(("_x", "_y")) or c == "_merge"])


def verdicts_frame(verdicts: Sequence[Dict], cand: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Validate the gate's verdicts and join model/environment names from the candidate records.

    Raises ``InputError`` naming the verdict's index when a required key is missing or
    a kind/verdict is not one of the allowed values.
    """
    if not isinstance(verdicts, (list, tuple)):
        raise InputError("verdicts must be a list of objects, got %s" % type(verdicts).__name__)
    rows = []
    for i, v in enumerate(verdicts):
        if not isinstance(v, dict):
            raise InputError("verdict %d is %s, not an object" % (i, type(v).__name__))
        missing = [k for k in VERDICT_KEYS if k not in v]
        if missing:
            raise InputError("verdict %d has no %s (each verdict needs %s)" % (
                i, ", ".join(missing), ", ".join(VERDICT_KEYS)))
        if v["kind"] not in VERDICT_KINDS:
            raise InputError("verdict %d: kind %r is not one of %s" % (i, v["kind"], ", ".join(VERDICT_KINDS)))
        if v["verdict"] not in VERDICTS:
            raise InputError("verdict %d: verdict %r is not one of %s" % (
                i, v["verdict"], ", ".join(VERDICTS)))
        rows.append({
            "case_key": str(v["case_key"]), "env_fingerprint": str(v["env_fingerprint"] or ""),
            "kind": v["kind"], "verdict": v["verdict"],
            "baseline": _num_or_text(v.get("baseline", v.get("baseline_value"))),
            "candidate": _num_or_text(v.get("candidate", v.get("candidate_value"))),
            "ratio": _num(v.get("ratio")), "p_value": _num(v.get("p_value")), "q_value": _num(v.get("q_value")),
            "reason": str(v.get("reason") or ""),
            "env_label": v.get("env_label"), "model": v.get("model"),
            "check": str(v.get("check") or ""), "unit": v.get("unit"),
            "baseline_env_label": v.get("baseline_env_label"),
        })
    out = pd.DataFrame(rows, columns=["case_key", "env_fingerprint", "kind", "verdict", "baseline", "candidate",
                                      "ratio", "p_value", "q_value", "reason", "env_label", "model", "check", "unit",
                                      "baseline_env_label"])
    if cand is not None and not out.empty:
        cand = plain_columns(cand[["case_key", "env_fingerprint", "env_label", "model"]])
        names = cand.drop_duplicates(subset=["case_key", "env_fingerprint"])
        out = out.merge(names, on=["case_key", "env_fingerprint"], how="left", suffixes=("", "_rec"))
        env_by_fp = cand.drop_duplicates("env_fingerprint").set_index("env_fingerprint")["env_label"]
        model_by_key = cand.drop_duplicates("case_key").set_index("case_key")["model"]
        out["env_label"] = out["env_label"].fillna(out["env_label_rec"]).fillna(
            out["env_fingerprint"].map(env_by_fp)).fillna(out["env_fingerprint"].str[:12])
        out["model"] = out["model"].fillna(out["model_rec"]).fillna(out["case_key"].map(model_by_key))
        out = out.drop(columns=["env_label_rec", "model_rec"])
    else:
        out["env_label"] = out["env_label"].fillna(out["env_fingerprint"].str[:12])
    # the run-wide verdict is about every case; a verdict whose model nobody names: '?'
    out["model"] = [model_text({"model": m, "case_key": k}) for m, k in zip(out["model"], out["case_key"])]
    return out


def _num(value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _num_or_text(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value is None:
        return math.nan
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)[:80]
    return str(value)


def baseline_summary(comp: pd.DataFrame, envs: Sequence[str]) -> List[Dict]:
    """Per environment of ``compare_with_baseline``: ``timed`` (cases timed in both), geometric means of
    the ``time`` and ``memory`` ratios, counts of ``slower`` and ``faster`` cases, ``broke`` (ok to not
    ok), ``fixed`` (not ok to ok), ``new`` and ``vanished``; environments in ``envs`` order, others after."""
    rows = []
    both = comp[comp["time_ratio"].notna()]
    order = {e: i for i, e in enumerate(envs)}
    for env in sorted(comp["env"].dropna().unique(), key=lambda e: (order.get(e, len(order)), e)):
        sub = comp[comp["env"] == env]
        tr = both.loc[both["env"] == env, "time_ratio"]
        mr = sub["mem_ratio"].dropna()
        ch = sub["change"].value_counts()
        rows.append({
            "env": env, "timed": int(sub["time_ratio"].notna().sum()),
            "time": float(np.exp(np.log(tr[tr > 0]).mean())) if (tr > 0).any() else math.nan,
            "memory": float(np.exp(np.log(mr[mr > 0]).mean())) if (mr > 0).any() else math.nan,
            "slower": int(ch.get("slower", 0)), "faster": int(ch.get("faster", 0)),
            "broke": int(((sub["status_base"] == "ok") & (sub["status_cand"] != "ok") &
                          sub["status_cand"].notna()).sum()),
            "fixed": int(((sub["status_base"] != "ok") & sub["status_base"].notna() &
                          (sub["status_cand"] == "ok")).sum()),
            "new": int(ch.get("new", 0)), "vanished": int(ch.get("vanished", 0))})
    return rows


def verdict_counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Verdict counts: one row per kind (``VERDICT_KINDS`` order), one column per verdict present."""
    counts = verdicts.groupby(["kind", "verdict"]).size().unstack("verdict", fill_value=0)
    cols = [v for v in VERDICTS if v in counts.columns]
    return counts.reindex(index=[k for k in VERDICT_KINDS if k in counts.index], columns=cols)
