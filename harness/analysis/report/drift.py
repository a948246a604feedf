"""fp32 output drift across environments: each case's fp32 reference output against the reference
environment's, judged against float64 where the records carry sketches (docs/accuracy.md), else by the
older output probe. Nothing here writes HTML; never imports torch.
"""
import math
from typing import List, Sequence, Tuple

import numpy as np
import pandas as pd

from harness import precisions
from harness.analysis.report.frame import PROBE_COLUMNS, plain_columns

#: Drift within this many times the expected drift is rounding; above it the case is flagged.
DRIFT_LIMIT = 10.0
#: The floor of the expected drift: one fp32 unit roundoff (2**-24).
FP32_UNIT_ROUNDOFF = precisions.get(precisions.REFERENCE).unit_roundoff
#: A relative difference between two environments' float64 outputs above this is a changed computation.
FP64_CHANGED = 1e-9


def ratio_to_expected(table: pd.DataFrame) -> pd.Series:
    """Each row of ``drift_table`` as a ratio to the drift rounding explains: its ``ratio`` where the records
    carry sketches, else (an output probe alone) its drift over one fp32 unit roundoff, the floor of the
    expected drift. Above ``DRIFT_LIMIT``: more than rounding."""
    return table["ratio"].where(table["ratio"].notna(), table["drift"] / FP32_UNIT_ROUNDOFF)


def drift_table(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """fp32 output drift across environments, judged against float64 where the records allow.

    The fp32 reference output depends on the model, mode, batch, size, device and options but not on
    precision or checkpointing (``PROBE_COLUMNS``). Per such case and environment, the first record is
    compared with the reference environment's:

    - ``basis`` 'sketch', when both carry ``output_sketch`` and ``output_sketch64`` (finite, of one length):
      ``drift`` d = ||s32 - s32_ref|| / ||s64_ref||; ``expected`` e = ||s32 - s64|| / ||s64|| +
      ||s32_ref - s64_ref|| / ||s64_ref|| (each environment's own fp32 error against its float64 output),
      floored at ``FP32_UNIT_ROUNDOFF``; ``ratio`` d / e (above ``DRIFT_LIMIT``: more than rounding);
      ``fp64_diff`` ||s64 - s64_ref|| / ||s64_ref|| (above ``FP64_CHANGED`` the computation itself changed).
    - ``basis`` 'probe' otherwise (records of schema 1): ``drift`` is ``probe_drift`` of the two
      ``output_probe``; ``expected``, ``ratio`` and ``fp64_diff`` are NaN.

    Returns one row per compared (case, env) with columns model, mode, batch_size, size_label, device,
    opts, env, basis, drift, expected, ratio, fp64_diff.
    """
    keys = list(PROBE_COLUMNS)
    cols = keys + ["env", "basis", "drift", "expected", "ratio", "fp64_diff"]
    ok = df.loc[df["status"] == "ok", ["probe_id", "env", "output_probe", "output_sketch", "output_sketch64"]]
    ok = ok.assign(_sketch=ok["output_sketch"].map(_is_list) & ok["output_sketch64"].map(_is_list),
                   _probe=ok["output_probe"].map(_is_list))
    ok = ok[ok["_sketch"] | ok["_probe"]]
    # the cases of one probe_id share their fp32 and float64 reference outputs: one record per case and
    # environment, one with sketches where there is any
    ok = ok.sort_values("_sketch", ascending=False, kind="stable").drop_duplicates(subset=["probe_id", "env"])
    ok = ok.sort_index()
    ok["_sketch"] = ok["_sketch"] & _sketch_ok(ok["output_sketch"], ok["output_sketch64"])
    refs = ok[(ok["env"] == ref).to_numpy()].set_index("probe_id")
    ok = ok[ok["probe_id"].isin(refs.index)]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    base = refs.loc[ok["probe_id"].to_numpy()]
    width = ok["output_sketch"].map(lambda v: len(v) if isinstance(v, list) else -1).to_numpy()
    width_ref = base["output_sketch"].map(lambda v: len(v) if isinstance(v, list) else -1).to_numpy()
    by_sketch = ok["_sketch"].to_numpy() & base["_sketch"].to_numpy() & (width == width_ref)
    n = len(ok)
    drift, expected, ratio, fp64_diff = (np.full(n, np.nan) for _ in range(4))
    for w in sorted(set(width[by_sketch])):
        rows = by_sketch & (width == w)
        got = sketch_drift(*(np.array(frame.loc[rows, col].tolist(), dtype=float)
                             for frame in (ok, base) for col in ("output_sketch", "output_sketch64")))
        drift[rows], expected[rows], ratio[rows], fp64_diff[rows] = got
    by_probe = ~by_sketch & ok["_probe"].to_numpy() & base["_probe"].to_numpy()
    drift[by_probe] = _probe_drifts(ok.loc[by_probe, "output_probe"].tolist(),
                                    base.loc[by_probe, "output_probe"].tolist())
    keep = by_sketch | by_probe
    firsts = df.drop_duplicates("probe_id").set_index("probe_id")[keys]
    out = firsts.loc[ok["probe_id"].to_numpy()[keep]].reset_index(drop=True)
    out_env = ok["env"].astype(str).to_numpy()[keep]
    out["env"] = pd.Categorical(out_env, categories=df["env"].cat.categories) if hasattr(
        df["env"], "cat") else out_env
    out["basis"] = np.where(by_sketch[keep], "sketch", "probe")
    out["drift"] = drift[keep]
    out["expected"] = expected[keep]
    out["ratio"] = ratio[keep]
    out["fp64_diff"] = fp64_diff[keep]
    return out[cols]


def _is_list(value) -> bool:
    return isinstance(value, list) and len(value) > 0


def _sketch_ok(sketch: pd.Series, sketch64: pd.Series) -> pd.Series:
    """True where a row carries both sketches: lists of one length, finite, the float64 one not all zero."""
    def usable(a, b) -> bool:
        if not (isinstance(a, list) and isinstance(b, list) and a and len(a) == len(b)):
            return False
        try:
            x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        except (TypeError, ValueError):
            return False
        return bool(np.isfinite(x).all() and np.isfinite(y).all() and np.any(y != 0))
    return pd.Series([usable(a, b) for a, b in zip(sketch.tolist(), sketch64.tolist())], index=sketch.index,
                     dtype=bool)


def sketch_drift(s32: np.ndarray, s64: np.ndarray, s32_ref: np.ndarray, s64_ref: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drift of fp32 outputs from their sketches (rows: cases; all finite, float64 sketches non-zero).

    Returns (d, e, ratio, fp64_diff) per row: d = ||s32 - s32_ref|| / ||s64_ref||; e = ||s32 - s64|| / ||s64||
    + ||s32_ref - s64_ref|| / ||s64_ref||, at least ``FP32_UNIT_ROUNDOFF``; ratio = d / e; fp64_diff =
    ||s64 - s64_ref|| / ||s64_ref||. A sketch is linear, so these estimate the same relative L2 norms of
    the whole outputs. The norms are those of ``harness.sketches.relative_change``, over many rows at once.
    """
    s32, s64, s32_ref, s64_ref = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (s32, s64, s32_ref, s64_ref))
    norm64 = np.linalg.norm(s64, axis=1)
    norm64_ref = np.linalg.norm(s64_ref, axis=1)
    d = np.linalg.norm(s32 - s32_ref, axis=1) / norm64_ref
    own = np.linalg.norm(s32 - s64, axis=1) / norm64
    own_ref = np.linalg.norm(s32_ref - s64_ref, axis=1) / norm64_ref
    e = np.maximum(own + own_ref, FP32_UNIT_ROUNDOFF)
    return d, e, d / e, np.linalg.norm(s64 - s64_ref, axis=1) / norm64_ref


def _probe_drifts(probes: List, bases: List) -> np.ndarray:
    """``probe_drift`` of each pair; one numpy pass over the pairs of one length with finite values."""
    out = np.full(len(probes), np.nan)
    width = len(probes[0]) if probes else 0
    regular = [i for i, (p, b) in enumerate(zip(probes, bases)) if len(p) == width and len(b) == width]
    if regular:  # the usual case, all probes of one length
        a = np.array([probes[i] for i in regular], dtype=float)
        b = np.array([bases[i] for i in regular], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.max(np.abs(a - b), axis=1)
            scale = np.max(np.abs(b), axis=1)
            drift = np.where(diff == 0, 0.0, diff / scale)
        finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1) & (scale > 0)
        for k, i in enumerate(regular):
            if finite[k]:
                out[i] = float(drift[k])
    for i in range(len(probes)):
        if out[i] != out[i]:
            out[i] = probe_drift(probes[i], bases[i])
    return out


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


def drift_summary(drift: pd.DataFrame) -> pd.DataFrame:
    """Per (model, env, basis) of ``drift_table``: the figure the basis is judged by (``ratio`` for 'sketch',
    ``drift`` for 'probe') at its ``max`` and ``median``, ``n`` (cases compared), ``fp64_max`` (the largest
    float64 difference, NaN for probes) and the case with the largest figure: ``mode``, ``batch_size``,
    ``size_label``, ``device`` and its ``drift``, ``expected`` and ``fp64_diff`` (as ``worst_drift``,
    ``worst_expected``, ``worst_fp64``; missing when no figure is finite). ``env`` is text; sketch rows
    come before probe rows."""
    drift = plain_columns(drift).assign(env=drift["env"].astype(str))
    drift["_figure"] = np.where(drift["basis"] == "sketch", drift["ratio"], drift["drift"]).astype(float)
    grouped = drift.groupby(["model", "env", "basis"], sort=False)
    out = grouped["_figure"].agg(["max", "size", "median"]).rename(columns={"size": "n"})
    out["fp64_max"] = grouped["fp64_diff"].max()
    out = out.reset_index()
    worst = drift.loc[grouped["_figure"].idxmax().dropna().astype(int).to_numpy(),
                      ["model", "env", "basis", "mode", "batch_size", "size_label", "device", "drift", "expected",
                       "fp64_diff"]].rename(columns={"drift": "worst_drift", "expected": "worst_expected",
                                                     "fp64_diff": "worst_fp64"})
    out = out.merge(worst, on=["model", "env", "basis"], how="left")
    out["batch_size"] = pd.to_numeric(out["batch_size"], errors="coerce").astype("Int64")
    out["_order"] = (out["basis"] != "sketch").astype(int)
    return out.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
