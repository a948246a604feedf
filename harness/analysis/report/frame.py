"""The loaded records made ready for the report: one row per case and environment.

``prepare_frame`` takes the DataFrame of ``harness.analysis.load.load_records`` (less
``loader.UNUSED_COLUMNS``), keeps the latest record per case and environment (with what
all its rounds show together, ``rounds``), adds the derived columns every section reads
(``env``, ``size_label``, ``opts``, ``reason_short``, ``err_rel``, ``acc_score``...) and orders
environments by torch version. The words
(statuses, precisions, checkpoint modes, case axes) come from ``harness.vocab``.
Never imports torch.
"""
import math
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.analysis.report.rounds import ROUND_COLUMNS, combine_rounds
from harness.record.schema import REPORT_COLUMNS
from harness.vocab import CASE_AXES, CHECKPOINTS, MODES, NOT_RUN_STATUSES, PRECISIONS, STATUSES

#: How bad each failing status is (a status ``harness.vocab`` adds later counts as the worst).
_SEVERITY = {"timeout": 0, "oom": 1, "error": 2, "crashed": 3}
#: Failing statuses, every one but ``ok`` and the not-run ones, from least to most severe.
FAILING_BY_SEVERITY = tuple(sorted((s for s in STATUSES if s != "ok" and s not in NOT_RUN_STATUSES),
                                   key=lambda s: _SEVERITY.get(s, len(_SEVERITY))))
#: Statuses from best to worst; the order of colours, counts and filters in the report.
STATUS_ORDER = ("ok",) + tuple(NOT_RUN_STATUSES) + FAILING_BY_SEVERITY
#: The optional case axes, shown together as one ``opts`` label; sizes become labels.
OPTS_AXES = ("channels_last", "compile", "sdpa_backend", "python_optimized")
_AXIS_COLUMN = dict({"size": "size_label"}, **{axis: "opts" for axis in OPTS_AXES})
#: Case axes that identify a case apart from its environment (``opts`` joins the flags).
CASE_COLUMNS = tuple(dict.fromkeys(_AXIS_COLUMN.get(axis, axis) for axis in CASE_AXES))
#: What identifies the fp32 reference output of a case: all but precision and checkpointing.
PROBE_COLUMNS = tuple(c for c in CASE_COLUMNS if c not in ("precision", "checkpoint"))
#: Low-cardinality text columns held as pandas categoricals after ``prepare_frame``.
CATEGORY_COLUMNS = ("model", "mode", "precision", "checkpoint", "device", "opts", "status", "size_label")
#: Columns computed here from the records' columns.
DERIVED_COLUMNS = ("size_label", "size_rank", "opts", "reason_short", "env", "err_rel", "err_over_tol",
                   "acc_score") + ROUND_COLUMNS
#: Record columns a derived one replaces (size -> size_label, the optional axes -> opts, errors -> err_rel).
REPLACED_COLUMNS = ("size",) + OPTS_AXES + ("out_rel_err", "grad_rel_err")
#: Columns the report keeps: the record schema's report columns (``harness.record.schema``) and the derived ones.
KEEP_COLUMNS = tuple(c for c in REPORT_COLUMNS if c not in REPLACED_COLUMNS) + DERIVED_COLUMNS
#: The accuracy rules a record is judged by (``harness.record.schema.Accuracy.rule``; docs/accuracy.md).
RULE_CALIBRATED = "fp64-calibrated"
RULE_FIXED = "fixed tolerance"
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


def _opts_column(df: pd.DataFrame) -> pd.Series:
    """The ``opts`` label per row from the optional case axes: '-' when none is set, else e.g.
    'channels_last', 'compile', 'sdpa=flash', 'python -O' joined by '+'."""
    columns = [c for c in OPTS_AXES if c in df.columns]
    rows = list(zip(*(df[c].tolist() for c in columns))) if columns else [()] * len(df)  # Python scalars
    labels = {row: _opts_label(dict(zip(columns, row))) for row in set(rows)}
    return pd.Series([labels[row] for row in rows], index=df.index)


def _set(value) -> bool:
    return value is not None and value is not False and not (isinstance(value, float) and math.isnan(value))


def _opts_label(row: Dict) -> str:
    parts = []
    if row.get("channels_last") is True:
        parts.append("channels_last")
    compile_ = row.get("compile")
    if _set(compile_):
        parts.append("compile" if compile_ is True else "compile=%s" % compile_)
    backend = row.get("sdpa_backend")
    if _set(backend) and backend != "default":
        parts.append("sdpa=%s" % backend)
    if row.get("python_optimized") is True:
        parts.append("python -O")
    return "+".join(parts) if parts else "-"


def _ordered_categories(values: pd.Series, preferred: Sequence[str]) -> List[str]:
    present = [v for v in pd.unique(values) if isinstance(v, str)]
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def prepare_frame(df: pd.DataFrame) -> Tuple[pd.DataFrame, Dict]:
    """Add the report's derived columns; keep the latest record per case and environment.

    Adds ``env`` (the label, suffixed by a short fingerprint when one label holds
    several fingerprints for the same case), ``size_label``/``size_rank``, ``opts`` (the optional axes:
    channels_last, compile, sdpa_backend, python_optimized), ``reason_short``, ``err_rel`` (worst of output and gradient
    relative error), ``err_over_tol``, ``acc_score`` (the record's error as a fraction of what its
    rule allows, see ``accuracy_columns``; ``acc_rule`` is filled in where a record left it out),
    ``probe_id`` (same for the cases sharing an
    fp32 reference output, see ``PROBE_COLUMNS``) and ``pair_id`` (``probe_id`` and
    precision: same for a case with and without checkpointing) and ``rounds.ROUND_COLUMNS`` (the ok rounds of the
    case in its environment: count, median of medians, spread, paired round medians; a timing-only round's
    record with the extras of the round that ran them); keeps ``KEEP_COLUMNS``. Returns the frame and notes
    ``{"superseded": count of older duplicates dropped (the other rounds of an interleaved run are combined,
    not counted), "env_order": [...], ...}``.
    """
    needed = set(REPORT_COLUMNS)
    df = df[[c for c in df.columns if c in needed]].copy()
    df["env_label"] = df["env_label"].fillna("?").astype(str)
    fp = df["env_fingerprint"].fillna("").astype(str)
    df["env_fingerprint"] = fp
    df["size_label"], size_ranks = _size_columns(df["size"])
    df["opts"] = _opts_column(df)
    missing_key = df["case_key"].isna()
    if missing_key.any():  # not written by the runner, but keep such records apart rather than merged
        sub = df.loc[missing_key, list(CASE_COLUMNS)]
        df.loc[missing_key, "case_key"] = ["|".join(str(v) for v in row) for row in sub.itertuples(index=False)]
    df["env"] = df["env_label"]
    scenarios = sorted(str(x) for x in df["scenario"].dropna().unique())
    if len(scenarios) > 1:
        # records of another scenario are other results, not newer ones of the same: keep them apart
        df["env"] = df["env_label"] + " \u00b7 " + df["scenario"].fillna("?").astype(str)
    superseded = 0
    if df.duplicated(["env", "case_key"]).any():
        # one label with two fingerprints for the same case (two machines, say) is two environments
        trip = df[["env", "case_key", "env_fingerprint"]].drop_duplicates()
        shared = set(trip.loc[trip.duplicated(["env", "case_key"]), "env"])
        if shared:
            mask = df["env"].isin(shared)
            df.loc[mask, "env"] = df.loc[mask, "env"] + " @" + fp[mask].str[:10]
        # keep the latest record per (case, environment), with what all its rounds show; file order breaks ties
        df["_order"] = np.arange(len(df))
        df = combine_rounds(df.sort_values(["time_utc", "_order"], na_position="first", kind="stable"))
        # the other rounds of an interleaved run are combined, not superseded: only a round recorded
        # twice (or, before rounds, any older record) was replaced by a later one
        round_key = pd.to_numeric(df["round"], errors="coerce") if "round" in df.columns else None
        superseded = int(df.assign(_round=round_key).duplicated(["case_key", "env", "_round"], keep="last").sum())
        df = df.drop_duplicates(subset=["case_key", "env"], keep="last")
        df = df.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    else:
        df = combine_rounds(df)
    for col in ("model", "mode", "precision", "checkpoint", "device", "status"):
        df[col] = df[col].fillna("-").astype(str)
    df["batch_size"] = pd.to_numeric(df["batch_size"], errors="coerce")
    df["size_rank"] = df["size_label"].map(size_ranks)
    short_by_reason = {r: short_reason(r) for r in df["reason"].dropna().unique()}
    df["reason_short"] = [short_by_reason.get(r, "") if isinstance(r, str) else "" for r in df["reason"].tolist()]
    for col in ("median_s", "iqr_s", "throughput_per_s", "peak_mem_bytes", "out_rel_err", "grad_rel_err",
                "acc_tolerance", "task_before", "task_after", "tensor_peak_bytes", "instructions_per_iter",
                "instructions_spread", "acc_ratio", "acc_limit"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["err_rel"] = df[["out_rel_err", "grad_rel_err"]].max(axis=1)
    df["err_over_tol"] = df["err_rel"] / df["acc_tolerance"].where(df["acc_tolerance"] > 0)
    df["acc_rule"], df["acc_score"] = accuracy_columns(df)
    df = df[[c for c in KEEP_COLUMNS if c in df.columns]].copy()
    df["probe_id"] = df.groupby(list(PROBE_COLUMNS), sort=False, dropna=False).ngroup()
    df["pair_id"] = df.groupby(["probe_id", "precision"], sort=False, dropna=False).ngroup()
    env_versions = df.groupby("env")["torch"].first()
    env_order = sorted(env_versions.index, key=lambda e: (parse_torch_version(env_versions[e]), e))
    df["env"] = pd.Categorical(df["env"], categories=env_order, ordered=True)
    notes = {"superseded": superseded, "env_order": env_order, "scenarios": scenarios,
             "status_order": _ordered_categories(df["status"], STATUS_ORDER),
             "precision_order": _ordered_categories(df["precision"], PRECISIONS),
             "checkpoint_order": _ordered_categories(df["checkpoint"], CHECKPOINTS),
             "mode_order": _ordered_categories(df["mode"], MODES)}
    # categoricals make the many groupbys and comparisons of the report several times faster
    orders = {"status": notes["status_order"], "precision": notes["precision_order"],
              "checkpoint": notes["checkpoint_order"], "mode": notes["mode_order"]}
    for col in CATEGORY_COLUMNS:
        cats = orders.get(col) or sorted(pd.unique(df[col]))
        df[col] = pd.Categorical(df[col], categories=cats)
    return df, notes


def accuracy_columns(df: pd.DataFrame) -> Tuple[pd.Series, pd.Series]:
    """The accuracy rule of each row and its ``acc_score``: the error as a fraction of what the rule allows.

    Under ``RULE_CALIBRATED`` the score is ``acc_ratio / acc_limit`` (the worst error against float64 in units
    of the expected error, over the largest ratio allowed); under ``RULE_FIXED`` it is ``err_over_tol`` (relative
    error against fp32 over the fixed tolerance). Either fails above 1. A record that names no rule (older
    synthetic stores) is calibrated when it carries a ratio, else fixed. Rows with no accuracy figures keep
    rule None; a score is NaN where its figures are missing. Reads ``acc_rule``, ``acc_ratio``, ``acc_limit``,
    ``acc_passed`` and ``err_over_tol`` (numeric).
    """
    rule = df["acc_rule"].astype(object).where(df["acc_rule"].notna(), None)
    checked = df["acc_passed"].notna() | df["acc_ratio"].notna() | df["err_over_tol"].notna()
    guess = pd.Series(np.where(df["acc_ratio"].notna(), RULE_CALIBRATED, RULE_FIXED), index=df.index, dtype=object)
    rule = rule.where(rule.notna() | ~checked, guess)
    limit = df["acc_limit"].where(df["acc_limit"] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        calibrated = df["acc_ratio"] / limit
    score = pd.Series(np.where(rule == RULE_CALIBRATED, calibrated, df["err_over_tol"]), index=df.index, dtype=float)
    return rule, score


def plain_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with categorical columns turned back into plain values (frames of two loads differ in categories)."""
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object)
    return out
