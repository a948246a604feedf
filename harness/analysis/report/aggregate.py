"""Aggregations of the prepared frame for the report's sections; nothing here writes HTML.

Every function takes the frame of ``frame.prepare_frame`` and returns plain pandas or
Python objects: status counts and reasons, speed and memory ratios against the
reference environment, the checkpointing trade-off, numerical fidelity (fp32 drift:
``drift``), failure groups, and the per-release series the figures draw. Aggregations are pandas
groupbys so 100,000 records stay fast. Never imports torch.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.analysis.report import basis, paired, spans
from harness.analysis.report.drift import ratio_to_expected
from harness.analysis.report.frame import (
    FAILING_BY_SEVERITY,
    RULE_CALIBRATED,
    STATUS_ORDER,
    plain_columns,
    reason_group,
)
from harness.measures import CHAINS, LARGE_ERROR_FRAC, PROCESS_PEAK, default_thresholds
from harness.vocab import NOT_RUN_STATUSES

#: The order of failure groups: the worst failures first, then accuracy failures, then cases that could not run.
FAILURE_SEVERITY = tuple(reversed(FAILING_BY_SEVERITY)) + ("accuracy", "check") + tuple(NOT_RUN_STATUSES)

def status_counts(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Counts of each status per group of ``by`` (columns: the statuses present)."""
    table = df.groupby(list(by) + ["status"], observed=True).size().unstack("status", fill_value=0)
    cols = [s for s in STATUS_ORDER if s in table.columns] + [c for c in table.columns if c not in STATUS_ORDER]
    return table[cols]


def not_in_release(df: pd.DataFrame, by: Sequence[str]) -> Dict[Tuple, Tuple[int, str]]:
    """Per group of ``by``: how many of its records are unsupported because the environment's library release
    lacks the model's name or a ``[config]`` field (``harness.scenario.releases.is_not_in_release``), and which
    release: ``{key: (n, "not in torchvision 0.11.3")}``; groups without such records are left out."""
    from harness.scenario.releases import is_not_in_release

    rows = df.loc[df["status"] == "unsupported", list(by) + ["reason"]]
    rows = rows[rows["reason"].map(lambda r: isinstance(r, str) and is_not_in_release(r)).astype(bool)]
    out: Dict[Tuple, Tuple[int, str]] = {}
    if rows.empty:
        return out
    for key, sub in plain_columns(rows).groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        out[key] = (len(sub), str(sub["reason"].iloc[0]).split(":", 1)[0])
    return out


def top_reasons(df: pd.DataFrame, by: Sequence[str], per_group: int = 3) -> Dict[Tuple, List[Tuple[str, str, int]]]:
    """For each group of ``by``: up to ``per_group`` (status, short reason, count) of non-ok records."""
    bad = df.loc[df["status"] != "ok", list(by) + ["status", "reason_short"]]
    if bad.empty:
        return {}
    counts = bad.groupby(list(by) + ["status", "reason_short"], observed=True).size().reset_index(name="n")
    counts = counts.sort_values("n", ascending=False, kind="stable")
    counts = counts.groupby(list(by), observed=True).head(per_group)
    out: Dict[Tuple, List] = {}
    for row in counts.itertuples(index=False):
        key = tuple(getattr(row, c) for c in by)
        out.setdefault(key, []).append((row.status, row.reason_short, int(row.n)))
    return out


def ratios_vs_reference(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """Ok records matched by case key with the reference environment's ok record.

    Columns: model, mode, precision, checkpoint, env, case_key, ``speed_ratio`` (reference step cost / this
    one's; > 1 is faster), ``mem_ratio`` (memory / the reference's; > 1 uses more), and ``time_basis`` and
    ``mem_basis``: each environment's ratios rest on one measure of ``harness.measures.CHAINS``, the first
    that every case it shares with the reference carries on both sides (``basis.with_basis``), as a
    heatmap cell's do; wall time is a case's median over its rounds.
    """
    keep = ["case_key", "model", "mode", "precision", "checkpoint", "env", "rounds"] + [
        c for kind in ("time", "memory") for c in basis.columns(kind, rounds=True)]
    ok = plain_columns(df.loc[df["status"] == "ok", [c for c in dict.fromkeys(keep) if c in df.columns]])
    base = ok[ok["env"] == ref].drop(columns=["model", "mode", "precision", "checkpoint", "env"])
    merged = ok.merge(base, on="case_key", suffixes=("", "_ref"))
    time = basis.with_basis(merged, "time", by=["env"], rounds=True)
    mem = basis.with_basis(merged, "memory", by=["env"], rounds=True)
    out = merged[["case_key", "model", "mode", "precision", "checkpoint", "env"]]
    return out.assign(speed_ratio=1.0 / time["ratio"], time_basis=time["basis"], mem_ratio=mem["ratio"],
                      mem_basis=mem["basis"])


def geomean_table(ratios: pd.DataFrame, value: str, by: Sequence[str]) -> pd.DataFrame:
    """Geometric mean, count, min and max of ``value`` per group (NaNs ignored)."""
    sub = ratios[list(by) + [value]].dropna()
    sub = sub.assign(_log=np.log(sub[value]))
    grouped = sub.groupby(list(by), observed=True)
    out = grouped["_log"].agg(["mean", "size"]).rename(columns={"size": "n"})
    out["geomean"] = np.exp(out.pop("mean"))
    out["min"] = grouped[value].min()
    out["max"] = grouped[value].max()
    return out


def checkpoint_tradeoff(df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, checkpoint mode): memory saved and time lost against ``checkpoint=none``.

    Pairs each ok checkpointed record with the ok un-checkpointed record of the same
    case and environment (train mode when there is any, since checkpointing only acts
    when gradients are taken). Columns: ``mem_saved`` (fraction of peak memory saved,
    median), ``time_cost`` (fraction of median time added, median), ``n`` pairs,
    ``by_env`` ({env: (mem_saved, time_cost, n)}), ``mem_basis`` and ``time_basis`` (what the
    pairs rest on). Each pair rests on the first measure of ``harness.measures.CHAINS`` both its
    records carry (``basis.with_basis``): memory on the exact CPU tensor peak (the process high-water
    mark cannot see a checkpoint's saving on a small model), else the process or allocator peak;
    time on instructions per step, else the median step time.
    """
    measured = [c for kind in ("time", "memory") for c in basis.columns(kind) if c in df.columns]
    ok = df.loc[df["status"] == "ok", list(dict.fromkeys(["model", "mode", "checkpoint", "pair_id", "env"] +
                                                         measured))]
    if (ok["mode"] == "train").any():
        ok = ok[ok["mode"] == "train"]
    ok = ok.assign(env=ok["env"].cat.codes if hasattr(ok["env"], "cat") else ok["env"])
    is_none = ok["checkpoint"] == "none"
    base = ok.loc[is_none, ["pair_id", "env"] + measured]
    ck = ok.loc[~is_none]
    pairs = ck.merge(base, on=["pair_id", "env"], suffixes=("", "_none"))
    if hasattr(df["env"], "cat"):
        pairs["env"] = pd.Categorical.from_codes(pairs["env"], categories=df["env"].cat.categories)
    cols = ["model", "checkpoint", "mem_saved", "time_cost", "n", "by_env", "mem_basis", "time_basis"]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    mem = basis.with_basis(pairs, "memory", suffix="_none")
    time = basis.with_basis(pairs, "time", suffix="_none")
    pairs["mem_saved"] = 1.0 - mem["ratio"]
    pairs["time_cost"] = time["ratio"] - 1.0
    pairs["mem_basis"] = mem["basis"]
    pairs["time_basis"] = time["basis"]
    for col in ("mem_saved", "time_cost"):
        pairs[col] = pairs[col].where(np.isfinite(pairs[col]))
    agg = pairs.groupby(["model", "checkpoint"], observed=True).agg(
        mem_saved=("mem_saved", "median"), time_cost=("time_cost", "median"), n=("mem_saved", "size"))
    per_env = pairs.groupby(["model", "checkpoint", "env"], observed=True).agg(
        mem_saved=("mem_saved", "median"), time_cost=("time_cost", "median"), n=("mem_saved", "size"))
    by_env: Dict[Tuple, Dict] = {}
    for (model, ckpt, env), row in per_env.iterrows():
        by_env.setdefault((model, ckpt), {})[str(env)] = (row["mem_saved"], row["time_cost"], int(row["n"]))
    agg["by_env"] = [by_env.get(idx, {}) for idx in agg.index]
    bases = pairs.groupby(["model", "checkpoint"], observed=True).agg(
        mem_basis=("mem_basis", lambda b: "/".join(sorted(set(b)))),
        time_basis=("time_basis", lambda b: "/".join(sorted(set(b)))))
    agg = agg.join(bases)
    return agg.reset_index()[cols]


def fidelity_table(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Numerical fidelity per group of ``by`` and accuracy rule (``frame.accuracy_columns``): one row per
    group and ``rule`` present among its ok records with accuracy figures.

    Columns: ``by``, ``rule``, ``n`` checked, ``failed`` (accuracy not passed, whatever the rule),
    ``worst`` (the rule's figure at its largest: the ratio of the error against float64 to the expected error
    under 'fp64-calibrated', error / tolerance under 'fixed tolerance'), ``median`` (of the same figure),
    ``limit`` (the largest figure allowed: ``acc_limit``, or 1 under the fixed tolerance), ``score`` (the
    largest ``acc_score``: worst / limit, above 1 fails), ``median_err`` (median relative error against
    fp32), ``tolerance`` (fixed rule only), and the worst case: ``worst_case`` (its key), ``worst_model``,
    ``worst_mode``, ``worst_checkpoint`` and ``worst_where`` (``acc_worst``: 'grads: stem.1.weight', ...;
    '' when the record does not say).
    """
    worst_cols = ["worst_case", "worst_model", "worst_mode", "worst_checkpoint", "worst_where"]
    cols = list(by) + ["rule", "n", "failed", "worst", "median", "limit", "score", "median_err", "tolerance"] + \
        worst_cols
    need = ["acc_passed", "acc_rule", "acc_ratio", "acc_limit", "err_over_tol", "acc_score", "err_rel",
            "acc_tolerance", "case_key", "model", "mode", "checkpoint", "acc_worst"]
    ok = df.loc[(df["status"] == "ok") & df["acc_passed"].notna() & df["acc_rule"].notna(),
                list(dict.fromkeys(list(by) + need))]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    calibrated = (ok["acc_rule"] == RULE_CALIBRATED).to_numpy()
    ok = ok.assign(rule=ok["acc_rule"].astype(str),
                   _failed=(ok["acc_passed"] == False).astype(int),  # noqa: E712 (object column)
                   _figure=np.where(calibrated, ok["acc_ratio"], ok["err_over_tol"]).astype(float),
                   _limit=np.where(calibrated, ok["acc_limit"], 1.0).astype(float),
                   _rank=ok["acc_score"].fillna(-1.0))
    grouped = ok.groupby(list(by) + ["rule"], observed=True)
    out = grouped.agg(n=("_failed", "size"), failed=("_failed", "sum"), worst=("_figure", "max"),
                      median=("_figure", "median"), limit=("_limit", "max"), score=("acc_score", "max"),
                      median_err=("err_rel", "median"), tolerance=("acc_tolerance", "max"))
    worst = ok.loc[grouped["_rank"].idxmax().values]
    out["worst_case"] = worst["case_key"].values
    out["worst_model"] = worst["model"].astype(str).values
    out["worst_mode"] = worst["mode"].astype(str).values
    out["worst_checkpoint"] = worst["checkpoint"].astype(str).values
    out["worst_where"] = worst["acc_worst"].map(lambda w: w if isinstance(w, str) else "").values
    return out.reset_index()[cols]


def accuracy_apart(df: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The ok cases the fidelity figures do not speak for, shown apart: ``(not_judged, large_error)``.

    ``not_judged``: the calibrated rule could not judge them (``acc_passed`` None: the limit times the expected
    error reaches 1, so even an all-zero result would pass). ``large_error``: passed, with an error against
    float64 above ``LARGE_ERROR_FRAC`` in the outputs or the gradients (the warnings). Both keep ``env``,
    ``model``, ``precision``, ``mode``, ``checkpoint``, ``case_key``, ``out_err64``, ``grad_err64``,
    ``out_expected_err``, ``grad_expected_err``, ``acc_ratio``, ``acc_limit``, and add ``err64`` (the larger
    of the two errors), largest first."""
    cols = ["env", "model", "precision", "mode", "checkpoint", "case_key", "out_err64", "grad_err64",
            "out_expected_err", "grad_expected_err", "acc_ratio", "acc_limit"]
    ok = df.loc[(df["status"] == "ok") & (df["acc_rule"] == RULE_CALIBRATED), [c for c in cols if c in df.columns]
                + ["acc_passed"]]
    ok = plain_columns(ok.reindex(columns=cols + ["acc_passed"]))
    err64 = ok[["out_err64", "grad_err64"]].apply(pd.to_numeric, errors="coerce").max(axis=1)
    ok = ok.assign(err64=err64)
    not_judged = ok[ok["acc_passed"].isna()].sort_values("err64", ascending=False)
    large = ok[(ok["acc_passed"] == True) & (ok["err64"] > LARGE_ERROR_FRAC)]  # noqa: E712 (object column)
    return (not_judged.drop(columns="acc_passed").reset_index(drop=True),
            large.sort_values("err64", ascending=False).drop(columns="acc_passed").reset_index(drop=True))


def failure_groups(df: pd.DataFrame, max_cases: int = 25) -> List[Dict]:
    """Every non-ok record (and ok records that failed accuracy or a behaviour check), grouped by
    status and reason.

    Each group: status, reason (an example short reason; reasons are grouped by
    ``spans.normalise_cause``), full (an example full reason), count, models, envs, cases (up
    to ``max_cases`` (env, case_key) pairs), spans (``spans.group_spans``: per (model,
    precision, mode, checkpoint) the releases where it fails and works) and finding (its one
    line, ``spans.group_finding``).
    Sorted by status severity, then count.
    """
    cols = ["status", "reason", "reason_short", "model", "env", "case_key", "err_over_tol", "precision", "mode",
            "checkpoint", "acc_rule",
            "acc_ratio", "acc_limit", "acc_worst"]
    bad = plain_columns(df.loc[df["status"] != "ok", cols])
    acc = plain_columns(df.loc[(df["status"] == "ok") & (df["acc_passed"] == False), cols])  # noqa: E712
    frames = []
    if not bad.empty:
        frames.append(bad.assign(_status=bad["status"], _reason=bad["reason_short"]))
    if not acc.empty:
        why = [_accuracy_failure(r) for r in acc.itertuples(index=False)]
        frames.append(acc.assign(_status="accuracy", _reason=why, reason=why))
    if "check_reasons" in df.columns:  # records since the behaviour checks (harness.runner.checks)
        failed_checks = df["check_reasons"].map(lambda v: isinstance(v, list) and len(v) > 0)
        chk = plain_columns(df.loc[(df["status"] == "ok") & failed_checks, cols])
        if not chk.empty:
            why = ["; ".join(map(str, v)) for v in df.loc[chk.index, "check_reasons"]]
            frames.append(chk.assign(_status="check", _reason=why, reason=why))
    if not frames:
        return []
    env_order = [str(e) for e in df["env"].cat.categories] if hasattr(df["env"], "cat") else []
    allbad = pd.concat(frames, ignore_index=True)
    groups_of = {r: spans.normalise_cause(r) for r in pd.unique(allbad["_reason"])}
    allbad["_group"] = allbad["_status"] + "\x00" + allbad["_reason"].map(groups_of)
    severity = {s: i for i, s in enumerate(FAILURE_SEVERITY)}
    base = spans.base_states(df, env_order) if env_order else None
    groups = []
    for _, sub in allbad.groupby("_group", sort=False):
        # a case that could not run is neither working nor failing: no span of its own
        running = base is not None and sub["_status"].iloc[0] not in NOT_RUN_STATUSES
        cells = spans.group_spans(sub, base, env_order) if running else []
        first = sub.iloc[0]
        cases = list(zip(sub["env"].astype(str).head(max_cases), sub["case_key"].astype(str).head(max_cases)))
        envs = {str(e) for e in sub["env"].unique()}
        groups.append({
            "status": first["_status"], "reason": first["_reason"] or "(no reason given)",
            "full": first["reason"] if isinstance(first["reason"], str) else "",
            "count": int(len(sub)), "models": sorted(sub["model"].unique()),
            "envs": [e for e in env_order if e in envs] + sorted(envs - set(env_order)), "cases": cases,
            "spans": cells, "finding": spans.group_finding(cells, base, env_order) if cells else "",
        })
    groups.sort(key=lambda g: (severity.get(g["status"], 99), -g["count"], g["reason"]))
    return groups


def _accuracy_failure(r) -> str:
    """The reason shown for a failed accuracy check, in the words of the record's rule."""
    def num(v) -> str:
        return "%.3g" % v if isinstance(v, (int, float)) and v == v else "?"
    if r.acc_rule == RULE_CALIBRATED:
        side = r.acc_worst.split(":")[0].strip() if isinstance(r.acc_worst, str) and r.acc_worst else ""
        return "accuracy failed: error up to %sx expected (limit %sx)%s at %s" % (
            num(r.acc_ratio), num(r.acc_limit), " in " + side if side else "", r.precision)
    return "accuracy failed: error/tolerance up to %sx at %s (fixed tolerance)" % (num(r.err_over_tol), r.precision)


def env_summary(df: pd.DataFrame, envs: Sequence[str], ratios: Optional[pd.DataFrame],
                drift: Optional[pd.DataFrame], ref: Optional[str] = None) -> Dict[str, Dict]:
    """Per environment: ``counts`` ({status: n}), ``speed`` and ``memory`` ((geometric mean of the
    ratio to the reference, cases), (nan, 0) when none), ``speed_basis`` and ``memory_basis`` (the measure
    they rest on, '' when none), ``time_interval`` (with ``ref`` given: the wall-time ratio here / ``ref``
    over paired rounds, ``paired.env_intervals``' row as a dict with ``ratio``, ``lo``, ``hi``, ``q_value``,
    ``decisive``, ...; None without paired rounds), ``acc_failed``, ``acc_checked`` (ok cases with an
    accuracy verdict), ``drift_max`` and ``drift_ratio_max`` (the largest drift, and the largest as a ratio
    to the drift rounding explains: ``drift.ratio_to_expected``; None: not compared)."""
    timed = paired.env_intervals(df, ref, default_thresholds()) if ref is not None else None
    counts = status_counts(df, ["env"])
    speed = geomean_table(ratios, "speed_ratio", ["env"]) if ratios is not None else None
    mem = geomean_table(ratios, "mem_ratio", ["env"]) if ratios is not None else None
    accfail = df[(df["status"] == "ok") & (df["acc_passed"] == False)].groupby(  # noqa: E712 (object column)
        "env", observed=True).size()
    # records without accuracy figures (a plain pytest-benchmark run's) are not "passed"
    accchecked = df[(df["status"] == "ok") & df["acc_passed"].notna()].groupby("env", observed=True).size()
    drift_max = (drift.groupby("env", observed=True)["drift"].max() if drift is not None and len(drift)
                 else pd.Series(dtype=float))
    drift_ratio_max = (ratio_to_expected(drift).groupby(drift["env"], observed=True).max()
                       if drift is not None and len(drift) else pd.Series(dtype=float))

    def mean_of(tab, env):
        if tab is None or env not in tab.index:
            return math.nan, 0
        return float(tab.loc[env, "geomean"]), int(tab.loc[env, "n"])

    def basis_of(column, env):
        if ratios is None or column not in ratios.columns:
            return ""
        labels = ratios.loc[ratios["env"].astype(str) == str(env), column].dropna()
        return str(labels.iloc[0]) if len(labels) else ""

    out = {}
    for env in envs:
        row = counts.loc[env] if env in counts.index else pd.Series(dtype=int)
        out[env] = {"counts": {s: int(row.get(s, 0)) for s in row.index if row.get(s, 0)},
                    "speed": mean_of(speed, env), "memory": mean_of(mem, env),
                    "speed_basis": basis_of("time_basis", env), "memory_basis": basis_of("mem_basis", env),
                    "time_interval": paired.interval_of(timed, env=env),
                    "acc_failed": int(accfail.get(env, 0)), "acc_checked": int(accchecked.get(env, 0)),
                    "drift_max": drift_max.get(env) if env in drift_max.index else None,
                    "drift_ratio_max": drift_ratio_max.get(env) if env in drift_ratio_max.index else None}
    return out


#: The slice of the matrix the charts show first: each axis's first preferred value present.
SLICE_PREFERENCES = (("mode", ("train",)), ("precision", ("fp32",)), ("checkpoint", ("none",)),
                     ("device", ("cuda", "cpu")), ("opts", ("-",)))


def default_slice(df: pd.DataFrame) -> Dict[str, str]:
    """{axis: value} of the slice the charts show first, from the ok records (see ``SLICE_PREFERENCES``)."""
    ok = df[df["status"] == "ok"]
    out = {}
    for key, prefer in SLICE_PREFERENCES:
        present = set(ok[key].astype(str).unique())
        out[key] = next((p for p in prefer if p in present), sorted(present)[0] if present else "-")
    return out


def release_series(df: pd.DataFrame, where: Dict[str, str]) -> pd.DataFrame:
    """One case per model in the slice ``where``, its median time and peak memory in every environment.

    Per model the case is the batch size and size with the most ok records in the slice
    (among equally common ones, the middle one by batch size and size). Columns: model,
    batch_size, size_label, env (categorical in environment order), median_s,
    peak_mem_bytes, tensor_peak_bytes (NaN where the records lack it), and ``mem_value`` with
    ``mem_basis``: per model the first memory measure of ``harness.measures.CHAINS`` that every
    environment drawn carries (the exact tensor peak before the process peak); ``time_s`` with
    ``time_lo_s`` and ``time_hi_s``: wall time over the case's rounds with its 95% interval where it has
    two or more, else the single run's median and no interval; sorted by model and environment.
    """
    cols = ["model", "batch_size", "size_label", "env", "median_s", "peak_mem_bytes", "tensor_peak_bytes",
            "rounds", "median_rounds_s", "round_sd_log"]
    df = df.assign(**{c: np.nan for c in cols if c not in df.columns})
    mask = df["status"] == "ok"
    for key, value in where.items():
        mask &= df[key].astype(str) == value
    ok = df.loc[mask, cols + ["size_rank"]]
    if ok.empty:
        return pd.DataFrame(columns=cols + ["time_s", "time_lo_s", "time_hi_s", "mem_value", "mem_basis"])
    combos = ok.groupby(["model", "batch_size", "size_label", "size_rank"], observed=True).size().reset_index(
        name="n").sort_values(["model", "batch_size", "size_rank", "size_label"], kind="stable")
    chosen = []
    for _model, sub in combos.groupby("model", observed=True, sort=True):
        tied = sub[sub["n"] == sub["n"].max()]
        chosen.append(tied.iloc[(len(tied) - 1) // 2])
    picks = pd.DataFrame(chosen)[["model", "batch_size", "size_label"]]
    sub = plain_columns(ok).merge(plain_columns(picks), on=["model", "batch_size", "size_label"])
    out = sub.groupby(["model", "batch_size", "size_label", "env"], observed=True, sort=False).agg(
        median_s=("median_s", "median"), peak_mem_bytes=("peak_mem_bytes", "median"),
        tensor_peak_bytes=("tensor_peak_bytes", "median"), rounds=("rounds", "max"),
        median_rounds_s=("median_rounds_s", "median"), round_sd_log=("round_sd_log", "median")).reset_index()
    if hasattr(df["env"], "cat"):
        out["env"] = pd.Categorical(out["env"].astype(str), categories=df["env"].cat.categories, ordered=True)
    out = out.sort_values(["model", "env"], kind="stable").reset_index(drop=True)[cols]
    rounds = pd.to_numeric(out["rounds"], errors="coerce")
    multi = (rounds >= 2) & out["round_sd_log"].notna()
    out["time_s"] = out["median_rounds_s"].where(multi, out["median_s"])
    half = 1.959964 * out["round_sd_log"] / np.sqrt(rounds.where(multi))  # 95%, normal on the log scale
    out["time_lo_s"] = (out["time_s"] * np.exp(-half)).where(multi)
    out["time_hi_s"] = (out["time_s"] * np.exp(half)).where(multi)
    return _memory_basis(out)


def _memory_basis(series: pd.DataFrame) -> pd.DataFrame:
    """``series`` with ``mem_value`` and ``mem_basis``: per model the first measure of the memory chain
    every row of the model carries, else the last (its label in ``mem_basis``)."""
    # the measures the series carries (a measure added to the chain without a column here is skipped)
    chain = [m for m in CHAINS["memory"] if m.column in series.columns] or [PROCESS_PEAK]
    series = series.assign(mem_value=np.nan, mem_basis=chain[-1].label)
    for _model, idx in series.groupby("model", sort=False).groups.items():
        for m in chain:
            values = pd.to_numeric(series.loc[idx, m.column], errors="coerce")
            if (values > 0).all() or m is chain[-1]:
                series.loc[idx, "mem_value"] = values
                series.loc[idx, "mem_basis"] = m.label
                break
    return series


def reasons_by_model(df: pd.DataFrame, envs: Sequence[str], per_model: int = 6) -> Dict[str, List[Dict]]:
    """The most frequent reasons a model's cases did not run ok: per model up to ``per_model`` dicts of
    status, n, envs (in environment order) and reason_short, grouped by ``reason_group``, most frequent first."""
    bad = df.loc[df["status"] != "ok", ["model", "status", "reason_short", "env"]]
    if bad.empty:
        return {}
    group_of = {r: reason_group(r) for r in pd.unique(bad["reason_short"])}
    bad = bad.assign(_group=bad["reason_short"].map(group_of))
    order = {e: i for i, e in enumerate(envs)}
    why = bad.groupby(["model", "status", "_group"], observed=True).agg(
        n=("env", "size"), envs=("env", lambda e: sorted({str(v) for v in e}, key=lambda v: order.get(v, 99))),
        reason_short=("reason_short", "first"))
    why = why.reset_index().sort_values("n", ascending=False, kind="stable")
    out: Dict[str, List[Dict]] = {}
    for r in why.itertuples(index=False):
        lines = out.setdefault(str(r.model), [])
        if len(lines) < per_model:
            lines.append({"status": str(r.status), "n": int(r.n), "envs": list(r.envs),
                          "reason_short": r.reason_short})
    return out


def default_x_axis(df: pd.DataFrame) -> str:
    """The x axis the chart grids start with: batch size, else size, else environment (the first
    that has more than one value for some model among the ok records)."""
    ok = df[df["status"] == "ok"]
    for key, column in (("batch_size", "batch_size"), ("size", "size_label")):
        if len(ok) and ok.groupby("model", observed=True)[column].nunique().max() > 1:
            return key
    return "env"


def task_results(df: pd.DataFrame) -> pd.DataFrame:
    """The ok records with a task metric, with ``case``: the case apart from model and environment
    (mode, precision, batch size, size, checkpointing) as text."""
    df = df[df["task_metric"].notna() & (df["status"] == "ok")]
    return df.assign(case=df["mode"].astype(str) + " " + df["precision"].astype(str) + " bs " +
                     df["batch_size"].astype("Int64").astype(str) + " size " + df["size_label"].astype(str) +
                     " ckpt " + df["checkpoint"].astype(str))
