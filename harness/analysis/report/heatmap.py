"""The cells of the report's relative heatmaps, without HTML: per model, precision and environment,
the step cost or the peak memory against the reference environment, the measure the cell rests on,
and whether its change lies beyond the noise (``sections/performance.py`` draws the cells).

A cell's ``ratio`` is the geometric mean over the cases that ran ok in both environments of
(here / reference): above 1 costs more. One measure per cell (``basis``), never two mixed in a mean:

- time: ``instructions`` per step (callgrind; repeatable to under 1% between processes) when
  every case of the cell has an ok count in both environments, else ``wall time`` per step (per
  case the median of its round medians);
- memory: the exact CPU ``tensor peak`` when every case of the cell carries one in both
  environments, else the ``process peak`` (the CUDA allocator's on a GPU); the gate's memory rule
  chooses the same way (docs/gate.md).

Noise (``within``: drawn neutral, not coloured):

- wall time: |log ratio| below ``NOISE_MULTIPLE`` times the cell's spread, the root mean square
  over its cases of sqrt(sd_here^2 + sd_ref^2), sd being the standard deviation of the log of the
  case's round medians in one environment: measured where the case has ``MIN_ROUNDS`` there, else
  ``ASSUMED_ROUND_SD_LOG`` (``band_source`` says measured, assumed or partly assumed). Not divided
  by the number of cases: one process runs every case of an environment, so its speed moves them
  all together and a mean over cases is as noisy as one case;
- instructions: a change below ``INSTRUCTION_BAND``, or below the repeat spread of the cases' counts
  when that is larger, is "unchanged";
- memory: no band (the tensor peak is exact; the process peak's spread is not measured here);
- the gate's verdicts, when given, judge each cell holding a case they judged between the cell's
  two environments (an ``ab`` run's base and head, say): the cell is within noise unless one of
  those verdicts of its kind is regressed or improved (``band_source`` "gate").

Never imports torch.
"""
import math
from typing import Dict, Optional

import numpy as np
import pandas as pd

from harness.analysis.report.frame import plain_columns

TIME, MEMORY = "time", "memory"
#: (the deterministic measure, the fallback) of each kind, as the page names them.
BASES = {TIME: ("instructions", "wall time"), MEMORY: ("tensor peak", "process peak")}
#: A wall-time change counts when its log ratio exceeds this many times the cell's spread.
NOISE_MULTIPLE = 2.0
#: Rounds (records, one process each) a case needs in an environment to measure its spread there.
MIN_ROUNDS = 2
#: The spread assumed where a case has a single round and none can be measured: the standard deviation
#: of the log of a case's round medians measured on the 2-core CI machine kind, 0.20 (68 cases, 8 rounds
#: a side; docs/gate.md, "The speed probe"; ``python benchmarks/bench_gate.py --faults slow10 --rounds 8``,
#: its "round spread" lines). Two single rounds then give a band of exp(2 * 0.20 * sqrt(2)) = 1.76x,
#: inside the 18-37 ms (2.06x) that eight fresh processes gave for one step (ENVIRONMENTS.md, shared notes).
ASSUMED_ROUND_SD_LOG = 0.20
#: Instruction counts of one step differ between fresh processes by 0 (torch 1.10) to 5e-4 (2.15) for a
#: 40-47 M-instruction train step, and by up to 0.75% for the smallest smoke case, 2.8 M (docs/gate.md,
#: "Instruction counts"): a change below 1% is "unchanged".
INSTRUCTION_BAND = 0.01
#: Verdicts that say a change is real.
_CHANGED = ("regressed", "improved")
_CELL = ["model", "precision", "env"]
_PAIR_COLUMNS = ["case_key", "model", "precision", "mode", "env", "env_label", "env_fingerprint", "median_rounds_s",
                 "rounds", "round_sd_log", "instr_status", "instructions_per_iter", "instructions_spread",
                 "peak_mem_bytes", "tensor_peak_bytes"]
#: The columns of ``cells``.
CELL_COLUMNS = _CELL + ["ratio", "n", "lo", "hi", "basis", "n_preferred", "band", "band_source", "within",
                        "rounds_lo", "rounds_hi", "modes", "gate", "gate_pair"]


def case_pairs(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """Every ok record of an environment other than ``ref`` matched by case key with the ok record of
    ``ref``; the reference's columns carry the suffix ``_ref``."""
    ok = plain_columns(df.loc[df["status"] == "ok", _PAIR_COLUMNS])
    base = ok[ok["env"] == ref].drop(columns=["model", "precision", "mode", "env"])
    return ok[ok["env"] != ref].merge(base, on="case_key", suffixes=("", "_ref"))


def _ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = pd.to_numeric(a, errors="coerce").astype(float) / pd.to_numeric(b, errors="coerce").astype(float)
    return r.where(np.isfinite(r) & (r > 0))


def _with_basis(pairs: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``preferred`` (this case has the deterministic measure on both sides), ``use_best`` (every case of
    its cell has) and ``ratio`` on the cell's measure."""
    if kind == TIME:
        best = _ratio(pairs["instructions_per_iter"], pairs["instructions_per_iter_ref"])
        can = (pairs["instr_status"] == "ok") & (pairs["instr_status_ref"] == "ok") & best.notna()
        plain = _ratio(pairs["median_rounds_s"], pairs["median_rounds_s_ref"])
    else:
        best = _ratio(pairs["tensor_peak_bytes"], pairs["tensor_peak_bytes_ref"])
        can = best.notna()
        plain = _ratio(pairs["peak_mem_bytes"], pairs["peak_mem_bytes_ref"])
    use_best = can.groupby([pairs[c] for c in _CELL], sort=False).transform("all").astype(bool)
    return pairs.assign(preferred=can, use_best=use_best, ratio=best.where(use_best, plain))


def _noise(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per pair: the squared spread of the wall-time log ratio, its assumed sides (0-2), the summed
    repeat spread of the instruction counts and the fewest rounds of the two sides."""
    sd_here = pairs["round_sd_log"].where(pairs["rounds"] >= MIN_ROUNDS)
    sd_ref = pairs["round_sd_log_ref"].where(pairs["rounds_ref"] >= MIN_ROUNDS)
    return pairs.assign(
        _var=sd_here.fillna(ASSUMED_ROUND_SD_LOG) ** 2 + sd_ref.fillna(ASSUMED_ROUND_SD_LOG) ** 2,
        _assumed=sd_here.isna().astype(int) + sd_ref.isna().astype(int),
        _ispread=pairs["instructions_spread"].fillna(0.0) + pairs["instructions_spread_ref"].fillna(0.0),
        _rounds=np.minimum(pairs["rounds"], pairs["rounds_ref"]), _rounds_hi=np.maximum(pairs["rounds"],
                                                                                         pairs["rounds_ref"]))


def _gate(pairs: pd.DataFrame, verdicts: Optional[pd.DataFrame], kind: str) -> pd.DataFrame:
    """Per cell: ``gate`` ({verdict: count} of the verdicts of ``kind`` on its cases between its two
    environments, either way round) and ``gate_pair`` ('candidate against baseline' labels)."""
    empty = pd.DataFrame(columns=_CELL + ["gate", "gate_pair"])
    if verdicts is None or verdicts.empty or "baseline_env_label" not in verdicts.columns:
        return empty
    v = verdicts[(verdicts["kind"] == kind) & verdicts["baseline_env_label"].notna()]
    v = v[v["env_label"].astype(str) != v["baseline_env_label"].astype(str)]  # the same environment twice: no cell
    if v.empty:
        return empty
    v = pd.DataFrame({"case_key": v["case_key"], "_cand": v["env_label"].astype(str),
                      "_base": v["baseline_env_label"].astype(str), "_fp": v["env_fingerprint"].astype(str),
                      "verdict": v["verdict"]})
    keep = _CELL + ["case_key", "env_fingerprint", "env_fingerprint_ref"]
    left = pairs.assign(_here=pairs["env_label"].astype(str), _there=pairs["env_label_ref"].astype(str))[
        keep + ["_here", "_there"]]
    theirs = ["case_key", "_cand", "_base"]
    matched = pd.concat([left.merge(v, left_on=["case_key", "_here", "_there"], right_on=theirs),
                         left.merge(v, left_on=["case_key", "_there", "_here"], right_on=theirs)], ignore_index=True)
    matched = matched[(matched["_fp"] == matched["env_fingerprint"].astype(str)) |
                      (matched["_fp"] == matched["env_fingerprint_ref"].astype(str))]
    if matched.empty:
        return empty
    rows = []
    for cell, sub in matched.groupby(_CELL, sort=False):
        counts: Dict[str, int] = sub["verdict"].value_counts().to_dict()
        first = sub.iloc[0]
        rows.append(dict(zip(_CELL, cell), gate={str(k): int(n) for k, n in counts.items()},
                         gate_pair="%s against %s" % (first["_cand"], first["_base"])))
    return pd.DataFrame(rows, columns=_CELL + ["gate", "gate_pair"])


def cells(df: pd.DataFrame, ref: str, kind: str, verdicts: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The heatmap cells of ``kind`` (``TIME`` or ``MEMORY``) against ``ref``: one row per (model,
    precision, env) with an ok case in both, columns ``CELL_COLUMNS``.

    ``ratio`` (geometric mean of here / reference; > 1 costs more), ``n`` cases, ``lo`` and ``hi``
    (their smallest and largest ratio), ``basis`` (``BASES``), ``n_preferred`` (cases that have the
    deterministic measure on both sides), ``band`` (the ratio a change must exceed either way, NaN
    when none), ``band_source`` (measured | assumed | partly assumed | instruction repeats | gate |
    ''), ``within`` (within noise), ``rounds_lo``/``rounds_hi`` (fewest and most rounds of a case on
    either side), ``modes`` ([(mode, ratio, n)]), ``gate`` ({verdict: n} or None) and ``gate_pair``.
    ``verdicts``: ``compare.verdicts_frame``, whose judgement wins where it covers a cell.
    """
    pairs = _with_basis(case_pairs(df, ref), kind)
    pairs = _noise(pairs[pairs["ratio"].notna()])
    if pairs.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    pairs = pairs.assign(_log=np.log(pairs["ratio"]))
    grouped = pairs.groupby(_CELL, sort=False)
    out = grouped.agg(log_mean=("_log", "mean"), n=("_log", "size"), lo=("ratio", "min"), hi=("ratio", "max"),
                      n_preferred=("preferred", "sum"), use_best=("use_best", "first"), var=("_var", "mean"),
                      assumed=("_assumed", "sum"), ispread=("_ispread", "max"), rounds_lo=("_rounds", "min"),
                      rounds_hi=("_rounds_hi", "max")).reset_index()
    best, plain = BASES[kind]
    out["ratio"] = np.exp(out["log_mean"])
    out["basis"] = np.where(out["use_best"], best, plain)
    if kind == TIME:
        instr_band = np.log1p(np.maximum(INSTRUCTION_BAND, out["ispread"]))
        wall_band = NOISE_MULTIPLE * np.sqrt(out["var"])
        band_log = np.where(out["use_best"], instr_band, wall_band)
        out["band"] = np.exp(band_log)
        out["band_source"] = np.where(out["use_best"], "instruction repeats", np.where(
            out["assumed"] == 0, "measured", np.where(out["assumed"] == 2 * out["n"], "assumed", "partly assumed")))
        out["within"] = np.abs(out["log_mean"]) < band_log
    else:
        out["band"] = math.nan
        out["band_source"] = ""
        out["within"] = False
    modes = pairs.groupby(_CELL + ["mode"], sort=False)["_log"].agg(log_mean="mean", n="size").reset_index()
    by_cell: Dict = {}
    for r in modes.itertuples(index=False):
        by_cell.setdefault((r.model, r.precision, r.env), []).append((str(r.mode), math.exp(r.log_mean), int(r.n)))
    out["modes"] = [by_cell.get(key, []) for key in zip(out["model"], out["precision"], out["env"])]
    gate = _gate(pairs, verdicts, kind)
    out = out.merge(gate, on=_CELL, how="left")
    judged = np.array([isinstance(g, dict) for g in out["gate"]], dtype=bool)
    unchanged = np.array([isinstance(g, dict) and not any(v in _CHANGED for v in g) for g in out["gate"]])
    out["within"] = np.where(judged, unchanged, out["within"].to_numpy(dtype=bool))
    out["band_source"] = np.where(judged, "gate", out["band_source"])
    out["gate"] = [g if isinstance(g, dict) else None for g in out["gate"]]
    out["gate_pair"] = out["gate_pair"].fillna("")
    return out[CELL_COLUMNS]
