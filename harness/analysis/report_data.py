"""Data for the HTML report: the loaded records turned into the tables each section shows.

Every function takes a DataFrame prepared by ``prepare_frame`` (one row per record, as
``harness.analysis.load.load_records`` gives, plus a few derived columns) and returns
plain pandas/Python objects; nothing here writes HTML. Aggregations are pandas groupbys
so 100,000 records stay fast. Never imports torch.
"""
import glob
import json
import math
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.analysis.load import InputError

#: Statuses from best to worst; the order of colours, counts and filters in the report.
STATUS_ORDER = ("ok", "unsupported", "skipped", "timeout", "oom", "error", "crashed")
#: Case axes that identify a case apart from its environment (``opts`` joins the flags).
CASE_COLUMNS = ("model", "mode", "batch_size", "size_label", "precision", "checkpoint", "device", "opts")
#: What identifies the fp32 reference output of a case: all but precision and checkpointing.
PROBE_COLUMNS = ("model", "mode", "batch_size", "size_label", "device", "opts")
#: Low-cardinality text columns held as pandas categoricals after ``prepare_frame``.
CATEGORY_COLUMNS = ("model", "mode", "precision", "checkpoint", "device", "opts", "status", "size_label")
#: Columns the report keeps from the loaded records (the raw samples are the gate's business).
KEEP_COLUMNS = (
    "model", "mode", "batch_size", "size_label", "size_rank", "precision", "checkpoint", "device", "opts", "case_key",
    "status", "reason", "reason_short", "scenario", "run_id", "time_utc", "env_label", "env", "env_fingerprint",
    "torch", "python", "numpy", "cuda", "cudnn", "device_name", "git_commit", "median_s", "iqr_s",
    "throughput_per_s", "peak_mem_bytes", "acc_passed", "acc_tolerance", "err_rel", "err_over_tol", "output_probe",
    "task_metric", "task_higher_is_better", "task_before", "task_after", "source", "line")
_VERSION_RE = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?([a-z]+\d*)?")


def parse_torch_version(text) -> Tuple[int, ...]:
    """Sortable tuple for a PyTorch version: ``'2.13.0+cpu'`` -> ``(2, 13, 0, 1)``.

    The last element is 1 for a release and 0 for a pre-release (``2.1.0a0``,
    ``2.2.0.dev2023``), so a release sorts above its own pre-releases. Anything
    unparsable (None, ``'unknown'``) gives ``(-1,)``, below every version.
    """
    if not isinstance(text, str):
        return (-1,)
    match = _VERSION_RE.match(text)
    if not match:
        return (-1,)
    major, minor, patch, pre = match.groups()
    is_release = 0 if pre or ".dev" in text else 1
    return (int(major), int(minor or 0), int(patch or 0), is_release)


def short_reason(reason) -> str:
    """One line of a status reason: the exception line of a traceback, else the first line."""
    if not isinstance(reason, str) or not reason.strip():
        return ""
    lines = [ln.strip() for ln in reason.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= 200 else line[:197] + "..."


def reason_group(short: str) -> str:
    """A grouping key for reasons: numbers and hex ids replaced, so '2.00 GiB' and '4.50 GiB' group."""
    text = re.sub(r"0x[0-9a-fA-F]+", "0x#", short)
    return re.sub(r"\d+(?:\.\d+)?", "#", text)


def _size_rank(size) -> float:
    if isinstance(size, bool) or size is None:
        return math.inf
    if isinstance(size, (int, float)):
        return float(size)
    if isinstance(size, str):
        parts = re.split(r"[xX×]", size.strip())
        try:
            nums = [float(p) for p in parts if p]
        except ValueError:
            return math.inf
        if nums:
            return float(np.prod(nums)) ** (1.0 / len(nums)) if len(nums) > 1 else nums[0]
    if isinstance(size, (list, tuple)) and size and all(isinstance(v, (int, float)) for v in size):
        return float(np.prod(size)) ** (1.0 / len(size))
    return math.inf


def _size_label(size) -> str:
    if size is None or (isinstance(size, float) and math.isnan(size)):
        return "-"
    if isinstance(size, (list, tuple)):
        return "x".join(str(v) for v in size)
    return str(size)


def _size_columns(sizes: pd.Series) -> Tuple[pd.Series, Dict[str, float]]:
    """Size labels per row and the numeric rank of each label (computed once per distinct size)."""
    try:
        uniq = pd.unique(sizes)
    except TypeError:  # unhashable sizes (lists): label each row
        labels = pd.Series([_size_label(s) for s in sizes], index=sizes.index)
        return labels, {lab: _size_rank(s) for lab, s in zip(labels, sizes)}
    label_of = {}
    ranks: Dict[str, float] = {}
    for s in uniq:
        lab = _size_label(s)
        label_of[s] = lab
        ranks[lab] = min(ranks.get(lab, math.inf), _size_rank(s))
    labels = sizes.map(label_of)
    if labels.isna().any():  # NaN keys do not map back by equality
        labels = labels.fillna("-")
    return labels, ranks


def _opts_column(channels_last: pd.Series, compile_: pd.Series) -> pd.Series:
    """The ``opts`` label per row ('-', 'channels_last', 'compile', 'channels_last+compile', ...)."""
    cl = channels_last.eq(True).to_numpy()
    plain_compile = compile_.isna() | compile_.eq(False)
    if plain_compile.all():
        return pd.Series(np.where(cl, "channels_last", "-"), index=channels_last.index)
    flags = channels_last.astype(str) + "|" + compile_.astype(str)
    first = ~flags.duplicated()
    return flags.map({f: _opts_label(a, b) for f, a, b in zip(flags[first], channels_last[first], compile_[first])})


def _opts_label(channels_last, compile_) -> str:
    parts = []
    if channels_last is True:
        parts.append("channels_last")
    if compile_ not in (None, False) and not (isinstance(compile_, float) and math.isnan(compile_)):
        parts.append("compile" if compile_ is True else "compile=%s" % compile_)
    return "+".join(parts) if parts else "-"


def _ordered_categories(values: pd.Series, preferred: Sequence[str]) -> List[str]:
    present = [v for v in pd.unique(values) if isinstance(v, str)]
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def prepare_frame(df: pd.DataFrame) -> Tuple[pd.DataFrame, Dict]:
    """Add the report's derived columns; keep the latest record per case and environment.

    Adds ``env`` (the label, suffixed by a short fingerprint when one label holds
    several fingerprints for the same case), ``size_label``/``size_rank``, ``opts`` (channels_last and
    compile flags), ``reason_short``, ``err_rel`` (worst of output and gradient
    relative error), ``err_over_tol``, ``probe_id`` (same for the cases sharing an
    fp32 reference output, see ``PROBE_COLUMNS``) and ``pair_id`` (``probe_id`` and
    precision: same for a case with and without checkpointing); keeps ``KEEP_COLUMNS``. Returns the frame and notes
    ``{"superseded": count of older duplicates dropped, "env_order": [...], ...}``.
    """
    needed = set(KEEP_COLUMNS) | {"size", "channels_last", "compile", "out_rel_err", "grad_rel_err"}
    df = df[[c for c in df.columns if c in needed]].copy()
    df["env_label"] = df["env_label"].fillna("?").astype(str)
    fp = df["env_fingerprint"].fillna("").astype(str)
    df["env_fingerprint"] = fp
    df["size_label"], size_ranks = _size_columns(df["size"])
    df["opts"] = _opts_column(df["channels_last"], df["compile"])
    missing_key = df["case_key"].isna()
    if missing_key.any():  # not written by the runner, but keep such records apart rather than merged
        sub = df.loc[missing_key, list(CASE_COLUMNS)]
        df.loc[missing_key, "case_key"] = ["|".join(str(v) for v in row) for row in sub.itertuples(index=False)]
    df["env"] = df["env_label"]
    superseded = 0
    if df.duplicated(["env_label", "case_key"]).any():
        # one label with two fingerprints for the same case (two machines, say) is two environments
        trip = df[["env_label", "case_key", "env_fingerprint"]].drop_duplicates()
        shared = set(trip.loc[trip.duplicated(["env_label", "case_key"]), "env_label"])
        if shared:
            mask = df["env_label"].isin(shared)
            df.loc[mask, "env"] = df.loc[mask, "env_label"] + " @" + fp[mask].str[:10]
        # keep the latest record per (case, environment); file order breaks ties
        df["_order"] = np.arange(len(df))
        df = df.sort_values(["time_utc", "_order"], na_position="first", kind="stable")
        before = len(df)
        df = df.drop_duplicates(subset=["case_key", "env"], keep="last")
        superseded = before - len(df)
        df = df.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    for col in ("model", "mode", "precision", "checkpoint", "device", "status"):
        df[col] = df[col].fillna("-").astype(str)
    df["batch_size"] = pd.to_numeric(df["batch_size"], errors="coerce")
    df["size_rank"] = df["size_label"].map(size_ranks)
    short_by_reason = {r: short_reason(r) for r in df["reason"].dropna().unique()}
    df["reason_short"] = [short_by_reason.get(r, "") if isinstance(r, str) else "" for r in df["reason"].tolist()]
    for col in ("median_s", "iqr_s", "throughput_per_s", "peak_mem_bytes", "out_rel_err", "grad_rel_err",
                "acc_tolerance", "task_before", "task_after"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["err_rel"] = df[["out_rel_err", "grad_rel_err"]].max(axis=1)
    df["err_over_tol"] = df["err_rel"] / df["acc_tolerance"].where(df["acc_tolerance"] > 0)
    df = df[[c for c in KEEP_COLUMNS if c in df.columns]].copy()
    df["probe_id"] = df.groupby(list(PROBE_COLUMNS), sort=False, dropna=False).ngroup()
    df["pair_id"] = df.groupby(["probe_id", "precision"], sort=False, dropna=False).ngroup()
    env_versions = df.groupby("env")["torch"].first()
    env_order = sorted(env_versions.index, key=lambda e: (parse_torch_version(env_versions[e]), e))
    df["env"] = pd.Categorical(df["env"], categories=env_order, ordered=True)
    notes = {"superseded": superseded, "env_order": env_order,
             "status_order": _ordered_categories(df["status"], STATUS_ORDER),
             "precision_order": _ordered_categories(df["precision"], ("fp32", "amp_fp16", "amp_bf16", "fp16",
                                                                      "bf16")),
             "checkpoint_order": _ordered_categories(df["checkpoint"], ("none", "reentrant", "non_reentrant")),
             "mode_order": _ordered_categories(df["mode"], ("train", "eval"))}
    # categoricals make the many groupbys and comparisons of the report several times faster
    orders = {"status": notes["status_order"], "precision": notes["precision_order"],
              "checkpoint": notes["checkpoint_order"], "mode": notes["mode_order"]}
    for col in CATEGORY_COLUMNS:
        cats = orders.get(col) or sorted(pd.unique(df[col]))
        df[col] = pd.Categorical(df[col], categories=cats)
    return df, notes


def read_env_files(record_files: Sequence[str], extra_dirs: Sequence[str] = ()) -> Tuple[List[Dict], List[str]]:
    """Read the ``<env_label>.env.json`` files next to the record files.

    Returns ``(infos, problems)``: each info is the file's object plus ``path``; a file
    that is not a JSON object with an ``env_label`` becomes a problem naming it.
    """
    dirs = list(dict.fromkeys([os.path.dirname(os.path.abspath(p)) for p in record_files] +
                              [os.path.abspath(d) for d in extra_dirs]))
    infos, problems = [], []
    for folder in dirs:
        for path in sorted(glob.glob(os.path.join(folder, "*.env.json"))):
            try:
                with open(path, encoding="utf-8") as fh:
                    info = json.load(fh)
            except (OSError, ValueError) as exc:
                problems.append("%s: not a readable JSON environment file (%s)" % (path, exc))
                continue
            if not isinstance(info, dict) or not isinstance(info.get("env_label"), str):
                problems.append("%s: an environment file must be a JSON object with an env_label" % path)
                continue
            info = dict(info, path=path)
            infos.append(info)
    return infos, problems


def _first_env_dicts(df: pd.DataFrame) -> Dict[str, Dict]:
    """The full ``env`` object of one record per environment (re-read from its file)."""
    out = {}
    firsts = df.groupby("env", observed=True)[["source", "line"]].first()
    for env, (source, line) in firsts.iterrows():
        try:
            with open(source, encoding="utf-8") as fh:
                for lineno, text in enumerate(fh, 1):
                    if lineno == line:
                        out[env] = (json.loads(text).get("env") or {})
                        break
        except (OSError, ValueError, TypeError, AttributeError):
            out[env] = {}
    return out


def _flat_items(obj: Dict, prefix: str = "") -> List[Tuple[str, str]]:
    items = []
    for key in sorted(obj):
        value = obj[key]
        if isinstance(value, dict):
            items.extend(_flat_items(value, prefix + key + "."))
        elif isinstance(value, list):
            items.append((prefix + key, ", ".join(str(v) for v in value)))
        else:
            items.append((prefix + key, str(value)))
    return items


_SHOWN_ENV_KEYS = {"torch", "python", "numpy", "cuda", "cudnn", "device_name", "git_commit", "fingerprint"}


def _text(value) -> str:
    """A value as text; whole floats (a cuDNN version read as 8902.0) without the '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def environment_table(df: pd.DataFrame, env_order: Sequence[str], env_files: Sequence[Dict]) -> List[Dict]:
    """One dict per environment: versions, machine, commit, dates, counts; skipped ones too."""
    rows = []
    raw_env = _first_env_dicts(df)
    counts = df.groupby(["env", "status"], observed=True).size()
    files_by_label = {info["env_label"]: info for info in env_files}
    grouped = df.groupby("env", observed=True)
    text_cols = ("torch", "python", "numpy", "cuda", "cudnn", "device", "device_name", "git_commit", "scenario",
                 "run_id", "env_fingerprint")
    uniques = {col: grouped[col].unique() for col in text_cols}
    labels = grouped["env_label"].first()
    sizes = grouped.size()
    first_t = grouped["time_utc"].min()
    last_t = grouped["time_utc"].max()

    def uniq(col, env):
        vals = sorted({_text(v) for v in uniques[col].get(env, ()) if v is not None and v == v})
        return ", ".join(vals) if vals else "-"

    for env in env_order:
        label = labels[env]
        status_counts = {s: int(counts.get((env, s), 0)) for s in STATUS_ORDER if counts.get((env, s), 0)}
        extra = [(k, v) for k, v in _flat_items(raw_env.get(env, {})) if k not in _SHOWN_ENV_KEYS]
        rows.append({
            "env": env, "env_label": label, "state": "ran",
            "torch": uniq("torch", env), "python": uniq("python", env), "numpy": uniq("numpy", env),
            "cuda": uniq("cuda", env), "cudnn": uniq("cudnn", env), "devices": uniq("device", env),
            "device_name": uniq("device_name", env), "git_commit": uniq("git_commit", env),
            "scenario": uniq("scenario", env), "run_id": uniq("run_id", env),
            "fingerprint": uniq("env_fingerprint", env),
            "first_utc": str(first_t.get(env)) if first_t.get(env) is not None else "-",
            "last_utc": str(last_t.get(env)) if last_t.get(env) is not None else "-",
            "records": int(sizes[env]), "status_counts": status_counts, "extra": extra,
            "env_file": files_by_label.get(label, {}).get("path"),
        })
    seen = set(labels.tolist())
    for info in env_files:
        if info["env_label"] in seen:
            continue
        versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
        state = "skipped" if info.get("status") == "skipped" else "no records"
        reason = info.get("reason") or ("the environment file says %r but no records were given" % info.get("status"))
        rows.append({"env": info["env_label"], "env_label": info["env_label"], "state": state,
                     "reason": str(reason), "torch": str(versions.get("torch", "-")),
                     "python": str(versions.get("python", "-")), "numpy": str(versions.get("numpy", "-")),
                     "cuda": str(versions.get("cuda", "-")), "records": 0, "status_counts": {},
                     "extra": [(k, v) for k, v in _flat_items(versions) if k not in _SHOWN_ENV_KEYS],
                     "env_file": info.get("path")})
    return rows


def choose_reference(df: pd.DataFrame, env_order: Sequence[str], requested: Optional[str]) -> str:
    """The reference environment: ``requested`` (a label or disambiguated env), else the
    environment with the highest torch version among those with ok records."""
    if requested:
        if requested in env_order:
            return requested
        matches = [e for e in env_order if e.split(" @")[0] == requested]
        if len(matches) == 1:
            return matches[0]
        raise InputError("reference environment %r is not among the environments of the records (%s)" % (
            requested, ", ".join(env_order)))
    with_ok = set(df.loc[df["status"] == "ok", "env"].astype(str).unique())
    candidates = [e for e in env_order if e in with_ok] or list(env_order)
    return candidates[-1]


def status_counts(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Counts of each status per group of ``by`` (columns: the statuses present)."""
    table = df.groupby(list(by) + ["status"], observed=True).size().unstack("status", fill_value=0)
    cols = [s for s in STATUS_ORDER if s in table.columns] + [c for c in table.columns if c not in STATUS_ORDER]
    return table[cols]


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

    Columns: model, mode, precision, checkpoint, env, case_key, ``speed_ratio``
    (throughput / reference throughput; > 1 is faster) and ``mem_ratio`` (peak memory /
    reference peak; > 1 uses more).
    """
    cols = ["case_key", "model", "mode", "precision", "checkpoint", "env", "throughput_per_s", "peak_mem_bytes"]
    ok = df.loc[df["status"] == "ok", cols]
    base = ok[ok["env"] == ref][["case_key", "throughput_per_s", "peak_mem_bytes"]]
    merged = ok.merge(base, on="case_key", suffixes=("", "_ref"))
    with np.errstate(divide="ignore", invalid="ignore"):
        merged["speed_ratio"] = merged["throughput_per_s"] / merged["throughput_per_s_ref"]
        merged["mem_ratio"] = merged["peak_mem_bytes"] / merged["peak_mem_bytes_ref"]
    for col in ("speed_ratio", "mem_ratio"):
        merged.loc[~np.isfinite(merged[col]) | (merged[col] <= 0), col] = np.nan
    return merged.drop(columns=["throughput_per_s_ref", "peak_mem_bytes_ref"])


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
    ``by_env`` ({env: (mem_saved, time_cost, n)}).
    """
    ok = df.loc[df["status"] == "ok", ["model", "mode", "checkpoint", "pair_id", "env", "median_s", "peak_mem_bytes"]]
    if (ok["mode"] == "train").any():
        ok = ok[ok["mode"] == "train"]
    ok = ok.assign(env=ok["env"].cat.codes if hasattr(ok["env"], "cat") else ok["env"])
    is_none = ok["checkpoint"] == "none"
    base = ok.loc[is_none, ["pair_id", "env", "median_s", "peak_mem_bytes"]]
    ck = ok.loc[~is_none]
    pairs = ck.merge(base, on=["pair_id", "env"], suffixes=("", "_none"))
    if hasattr(df["env"], "cat"):
        pairs["env"] = pd.Categorical.from_codes(pairs["env"], categories=df["env"].cat.categories)
    cols = ["model", "checkpoint", "mem_saved", "time_cost", "n", "by_env"]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs["mem_saved"] = 1.0 - pairs["peak_mem_bytes"] / pairs["peak_mem_bytes_none"]
        pairs["time_cost"] = pairs["median_s"] / pairs["median_s_none"] - 1.0
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
    return agg.reset_index()[cols]


def fidelity_table(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Numerical fidelity per group: ``n`` checked, ``failed`` (accuracy not passed),
    ``worst`` (max error / tolerance), ``median_err``, ``tolerance`` and the worst case key."""
    cols = list(by) + ["n", "failed", "worst", "median_err", "tolerance", "worst_case"]
    ok = df.loc[(df["status"] == "ok") & df["acc_passed"].notna(),
                list(by) + ["acc_passed", "err_over_tol", "err_rel", "acc_tolerance", "case_key"]]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    ok = ok.assign(_failed=(ok["acc_passed"] == False).astype(int),  # noqa: E712 (object column)
                   _ratio=ok["err_over_tol"].fillna(-1.0))
    grouped = ok.groupby(list(by), observed=True)
    out = grouped.agg(n=("_failed", "size"), failed=("_failed", "sum"), worst=("err_over_tol", "max"),
                      median_err=("err_rel", "median"), tolerance=("acc_tolerance", "max"))
    worst_idx = grouped["_ratio"].idxmax()
    out["worst_case"] = ok.loc[worst_idx.values, "case_key"].values
    return out.reset_index()[cols]


def drift_table(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """fp32 output drift across environments from the records' ``output_probe``.

    The probe is the fp32 reference output at fixed positions, so it depends on the
    model, mode, batch, size and device but not on precision or checkpointing. Per
    such case and environment the first probe is compared with the reference
    environment's: ``drift = max|p - p_ref| / max|p_ref|``. Returns one row per
    compared (case, env) with columns model, mode, batch_size, size_label, device,
    env, drift, probe_len.
    """
    keys = list(PROBE_COLUMNS)
    cols = keys + ["env", "drift"]
    ok = df.loc[df["status"] == "ok", ["probe_id", "env", "output_probe"]]
    ok = ok[ok["output_probe"].notna()].drop_duplicates(subset=["probe_id", "env"])
    if ok.empty:
        return pd.DataFrame(columns=cols)
    ok = ok[ok["output_probe"].map(lambda p: isinstance(p, list) and len(p) > 0)]
    is_ref = (ok["env"] == ref).to_numpy()
    ref_probe = dict(zip(ok.loc[is_ref, "probe_id"], ok.loc[is_ref, "output_probe"]))
    ok = ok[ok["probe_id"].isin(list(ref_probe))]
    out_ids = ok["probe_id"].tolist()
    out_env = ok["env"].tolist()
    probes = ok["output_probe"].tolist()
    bases = [ref_probe[pid] for pid in out_ids]
    out_drift = [math.nan] * len(probes)
    width = len(probes[0]) if probes else 0
    regular = [i for i, (p, b) in enumerate(zip(probes, bases)) if len(p) == width and len(b) == width]
    if regular:  # the usual case, all probes of one length: one numpy pass
        a = np.array([probes[i] for i in regular], dtype=float)
        b = np.array([bases[i] for i in regular], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.max(np.abs(a - b), axis=1)
            scale = np.max(np.abs(b), axis=1)
            drift = np.where(diff == 0, 0.0, diff / scale)
        finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1) & (scale > 0)
        for k, i in enumerate(regular):
            out_drift[i] = float(drift[k]) if finite[k] else probe_drift(probes[i], bases[i])
    for i, value in enumerate(out_drift):
        if value != value:
            out_drift[i] = probe_drift(probes[i], bases[i])
    firsts = df.drop_duplicates("probe_id").set_index("probe_id")[keys]
    out = firsts.loc[out_ids].reset_index(drop=True)
    out["env"] = pd.Categorical(out_env, categories=df["env"].cat.categories) if hasattr(
        df["env"], "cat") else out_env
    out["drift"] = out_drift
    return out[cols]


def probe_drift(probe: Sequence[float], ref_probe: Sequence[float]) -> float:
    """``max|p - p_ref| / max|p_ref|``; 0 for identical probes, inf when shapes or non-finite values differ."""
    a = np.asarray(probe, dtype=float)
    b = np.asarray(ref_probe, dtype=float)
    if a.shape != b.shape:
        return math.inf
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0 if np.array_equal(a, b, equal_nan=True) else math.inf
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if diff == 0:
        return 0.0
    return diff / scale if scale > 0 else math.inf


def failure_groups(df: pd.DataFrame, max_cases: int = 25) -> List[Dict]:
    """Every non-ok record (and ok records that failed accuracy), grouped by status and reason.

    Each group: status, reason (an example short reason), full (an example full
    reason), count, models, envs, cases (up to ``max_cases`` (env, case_key) pairs).
    Sorted by status severity, then count.
    """
    cols = ["status", "reason", "reason_short", "model", "env", "case_key", "err_over_tol", "precision"]
    bad = _plain_columns(df.loc[df["status"] != "ok", cols])
    acc = _plain_columns(df.loc[(df["status"] == "ok") & (df["acc_passed"] == False), cols])  # noqa: E712
    frames = []
    if not bad.empty:
        frames.append(bad.assign(_status=bad["status"], _reason=bad["reason_short"]))
    if not acc.empty:
        why = ("accuracy failed: error/tolerance up to " + acc["err_over_tol"].map(
            lambda v: "%.3g" % v if v == v else "?") + "x at " + acc["precision"])
        frames.append(acc.assign(_status="accuracy", _reason=why, reason=why))
    if not frames:
        return []
    env_order = [str(e) for e in df["env"].cat.categories] if hasattr(df["env"], "cat") else []
    allbad = pd.concat(frames, ignore_index=True)
    groups_of = {r: reason_group(r) for r in pd.unique(allbad["_reason"])}
    allbad["_group"] = allbad["_status"] + "\x00" + allbad["_reason"].map(groups_of)
    severity = {s: i for i, s in enumerate(("crashed", "error", "oom", "timeout", "accuracy", "unsupported",
                                            "skipped"))}
    groups = []
    for _, sub in allbad.groupby("_group", sort=False):
        first = sub.iloc[0]
        cases = list(zip(sub["env"].astype(str).head(max_cases), sub["case_key"].astype(str).head(max_cases)))
        envs = {str(e) for e in sub["env"].unique()}
        groups.append({
            "status": first["_status"], "reason": first["_reason"] or "(no reason given)",
            "full": first["reason"] if isinstance(first["reason"], str) else "",
            "count": int(len(sub)), "models": sorted(sub["model"].unique()),
            "envs": [e for e in env_order if e in envs] + sorted(envs - set(env_order)), "cases": cases,
        })
    groups.sort(key=lambda g: (severity.get(g["status"], 99), -g["count"], g["reason"]))
    return groups


def compare_with_baseline(cand: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Candidate against baseline per (case key, environment label), without statistics.

    Columns: case axes, env, status_base, status_cand, median_base_s, median_cand_s,
    ``time_ratio`` (candidate median / baseline median; > 1 is slower), ``mem_ratio``,
    acc_base, acc_cand, ``change`` (new | vanished | status | slower | faster | same),
    ``env_changed`` (fingerprints differ).
    """
    keys = ["case_key", "env_label"]
    keep = keys + ["model", "mode", "batch_size", "size_label", "precision", "checkpoint", "device", "opts",
                   "status", "median_s", "peak_mem_bytes", "acc_passed", "env_fingerprint", "reason_short"]
    a = _plain_columns(base[keep])
    b = _plain_columns(cand[keep])
    merged = a.merge(b, on=keys, how="outer", suffixes=("_base", "_cand"), indicator=True)
    for col in ("model", "mode", "batch_size", "size_label", "precision", "checkpoint", "device", "opts"):
        merged[col] = merged[col + "_cand"].where(merged[col + "_cand"].notna(), merged[col + "_base"])
    with np.errstate(divide="ignore", invalid="ignore"):
        for col, a_col, b_col in (("time_ratio", "median_s_cand", "median_s_base"),
                                  ("mem_ratio", "peak_mem_bytes_cand", "peak_mem_bytes_base")):
            ratio = pd.to_numeric(merged[a_col], errors="coerce") / pd.to_numeric(merged[b_col], errors="coerce")
            merged[col] = ratio.where(np.isfinite(ratio) & (ratio > 0))
    change = np.where(merged["_merge"] == "right_only", "new",
                      np.where(merged["_merge"] == "left_only", "vanished",
                               np.where(merged["status_base"] != merged["status_cand"], "status",
                                        np.where(merged["time_ratio"] > 1.10, "slower",
                                                 np.where(merged["time_ratio"] < 1 / 1.10, "faster", "same")))))
    merged["change"] = change
    merged["env_changed"] = ((merged["_merge"] == "both") &
                             (merged["env_fingerprint_base"] != merged["env_fingerprint_cand"]))
    merged = merged.rename(columns={"median_s_base": "median_base_s", "median_s_cand": "median_cand_s",
                                    "env_label": "env"})
    return merged.drop(columns=[c for c in merged.columns if c.endswith(("_x", "_y")) or c == "_merge"])


def _plain_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with categorical columns turned back into plain values (frames of two loads differ in categories)."""
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object)
    return out


VERDICT_KEYS = ("case_key", "env_fingerprint", "kind", "verdict")
VERDICT_KINDS = ("time", "memory", "accuracy", "status")
VERDICT_VALUES = ("regressed", "improved", "unchanged", "inconclusive", "not_comparable", "new", "vanished")


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
        if v["verdict"] not in VERDICT_VALUES:
            raise InputError("verdict %d: verdict %r is not one of %s" % (
                i, v["verdict"], ", ".join(VERDICT_VALUES)))
        rows.append({
            "case_key": str(v["case_key"]), "env_fingerprint": str(v["env_fingerprint"] or ""),
            "kind": v["kind"], "verdict": v["verdict"],
            "baseline": _num_or_text(v.get("baseline", v.get("baseline_value"))),
            "candidate": _num_or_text(v.get("candidate", v.get("candidate_value"))),
            "ratio": _num(v.get("ratio")), "p_value": _num(v.get("p_value")), "q_value": _num(v.get("q_value")),
            "reason": str(v.get("reason") or ""),
            "env_label": v.get("env_label"), "model": v.get("model"),
            "check": str(v.get("check") or ""), "unit": v.get("unit"),
        })
    out = pd.DataFrame(rows, columns=["case_key", "env_fingerprint", "kind", "verdict", "baseline", "candidate",
                                      "ratio", "p_value", "q_value", "reason", "env_label", "model", "check", "unit"])
    if cand is not None and not out.empty:
        cand = _plain_columns(cand[["case_key", "env_fingerprint", "env_label", "model"]])
        names = cand.drop_duplicates(subset=["case_key", "env_fingerprint"])
        out = out.merge(names, on=["case_key", "env_fingerprint"], how="left", suffixes=("", "_rec"))
        env_by_fp = cand.drop_duplicates("env_fingerprint").set_index("env_fingerprint")["env_label"]
        model_by_key = cand.drop_duplicates("case_key").set_index("case_key")["model"]
        out["env_label"] = out["env_label"].fillna(out["env_label_rec"]).fillna(
            out["env_fingerprint"].map(env_by_fp)).fillna(out["env_fingerprint"].str[:12])
        out["model"] = out["model"].fillna(out["model_rec"]).fillna(out["case_key"].map(model_by_key)).fillna("?")
        out = out.drop(columns=["env_label_rec", "model_rec"])
    else:
        out["env_label"] = out["env_label"].fillna(out["env_fingerprint"].str[:12])
        out["model"] = out["model"].fillna("?")
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
