"""The cells of the report's relative heatmaps, without HTML: per model, precision and environment,
the step cost or the peak memory against the reference environment, the measure the cell rests on,
and whether its change lies beyond the noise (``sections/performance.py`` draws the cells).

A cell's ``ratio`` is the geometric mean over the cases that ran ok in both environments of
(here / reference): above 1 costs more. One measure per cell (``basis``), never two mixed in a mean:
the first of the kind's chain (``harness.measures.CHAINS``) that every case of the cell carries in both
environments, else the last (``basis.with_basis``), as the gate chooses for a pair:

- time: ``instructions`` per step (callgrind; repeatable to under 1% between processes), else
  ``wall time`` per step (per case the median of its round medians);
- memory: the exact CPU ``tensor peak``, else the ``process peak`` (the CUDA allocator's on a GPU).

Noise (``within``: drawn neutral, not coloured), by the measure's rule (``harness.measures.NOISE_*``)
with the gate's thresholds (``harness.scenario.gate_config.DEFAULTS`` unless given):

- wall time over paired rounds (the interleaved engine's records, ``round_paired``): the cell's ratio is
  the geometric mean over its cases with a 95% t interval over rounds (``paired``), the cells of the
  heatmap corrected together by Benjamini-Hochberg; coloured only where ``paired.judge`` calls it
  decisive (``band_source`` "paired rounds"). Records of the engine that were not paired (a CI job that
  held one environment) or have fewer than two rounds in common: no interval, never coloured
  (``band_source`` "not paired");
- wall time of records from before rounds (``NOISE_ROUNDS``): |log ratio| below ``ROUND_NOISE_MULTIPLE``
  times the cell's spread, the root mean square over its cases of sqrt(sd_here^2 + sd_ref^2), sd being
  the standard deviation of the log of the case's round medians in one environment: measured where the
  case has ``min_rounds`` there, else ``ASSUMED_ROUND_SD_LOG`` (``band_source`` says measured, assumed or
  partly assumed). Not divided by the number of cases: one process runs every case of an environment, so
  its speed moves them all together and a mean over cases is as noisy as one case;
- instructions (``NOISE_COUNTS``): a change within the gate's limit, ``instructions_frac`` or
  ``instructions_spread_factor`` times the larger repeat spread of the two sides' counts where that is
  larger (the largest over the cell's cases), is "unchanged";
- memory (``NOISE_SIZE``): no band (the tensor peak is exact; the process peak's spread is not measured
  here);
- the gate's verdicts, when given, judge each cell holding a case they judged between the cell's
  two environments (an ``ab`` run's base and head, say): the cell is within noise unless one of
  those verdicts of its kind is regressed or improved (``band_source`` "gate").

Never imports torch.
"""
import math
from typing import Any, Dict, Mapping, Optional

import numpy as np
import pandas as pd

from harness.analysis.report import basis, paired
from harness.analysis.report.frame import plain_columns
from harness.measures import (
    ASSUMED_ROUND_SD_LOG,
    CHAINS,
    NOISE_COUNTS,
    NOISE_ROUNDS,
    ROUND_NOISE_MULTIPLE,
    WALL_TIME,
    count_limit,
    default_thresholds,
)

TIME, MEMORY = "time", "memory"
#: Verdicts that say a change is real.
_CHANGED = ("regressed", "improved")
_CELL = ["model", "precision", "env"]
_PAIR_COLUMNS = ["case_key", "model", "precision", "mode", "env", "env_label", "env_fingerprint", "rounds",
                 "round_sd_log", "round_of"] + [c for kind in (TIME, MEMORY) for c in basis.columns(kind, rounds=True)]
#: ``band_source`` of a wall-time cell judged on its paired rounds, and of one of the engine's unpaired records.
PAIRED, NOT_PAIRED = "paired rounds", "not paired"
#: The interval columns of a cell judged on paired rounds (NaN or 0 elsewhere): ``paired.judge``'s.
INTERVAL_COLUMNS = ["ci_lo", "ci_hi", "p_value", "q_value", "paired_rounds", "paired_cases", "decisive"]
#: The columns of ``cells``.
CELL_COLUMNS = _CELL + ["ratio", "n", "lo", "hi", "basis", "n_preferred", "band", "band_source", "within",
                        "rounds_lo", "rounds_hi", "modes", "gate", "gate_pair"] + INTERVAL_COLUMNS


def case_pairs(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """Every ok record of an environment other than ``ref`` matched by case key with the ok record of
    ``ref``; the reference's columns carry the suffix ``_ref``."""
    ok = plain_columns(df.loc[df["status"] == "ok", [c for c in dict.fromkeys(_PAIR_COLUMNS) if c in df]])
    base = ok[ok["env"] == ref].drop(columns=["model", "precision", "mode", "env"])
    return ok[ok["env"] != ref].merge(base, on="case_key", suffixes=("", "_ref"))


def _spread(pairs: pd.DataFrame, column: Optional[str]) -> pd.Series:
    """Per pair, the larger relative spread of the two sides' counts (0 where unknown), as the gate takes it."""
    if not column or column not in pairs:
        return pd.Series(0.0, index=pairs.index)
    here = pd.to_numeric(pairs[column], errors="coerce").fillna(0.0)
    return np.maximum(here, pd.to_numeric(pairs[column + "_ref"], errors="coerce").fillna(0.0))


def _noise(pairs: pd.DataFrame, kind: str, min_rounds: int) -> pd.DataFrame:
    """Per pair: the squared spread of the wall-time log ratio, its assumed sides (0-2), the repeat
    spread of the counts of the chain's counted measure and the fewest rounds of the two sides."""
    sd_here = pairs["round_sd_log"].where(pairs["rounds"] >= min_rounds)
    sd_ref = pairs["round_sd_log_ref"].where(pairs["rounds_ref"] >= min_rounds)
    counted = next((m for m in CHAINS[kind] if m.noise == NOISE_COUNTS), None)
    return pairs.assign(
        _var=sd_here.fillna(ASSUMED_ROUND_SD_LOG) ** 2 + sd_ref.fillna(ASSUMED_ROUND_SD_LOG) ** 2,
        _assumed=sd_here.isna().astype(int) + sd_ref.isna().astype(int),
        _ispread=_spread(pairs, counted.spread_column if counted else None),
        _rounds=np.minimum(pairs["rounds"], pairs["rounds_ref"]), _rounds_hi=np.maximum(pairs["rounds"],
                                                                                         pairs["rounds_ref"]),
        _engine=_from_engine(pairs))


def _from_engine(pairs: pd.DataFrame) -> pd.Series:
    """Per pair: either side is a record of the interleaved engine (it has a round part)."""
    if "round_of" not in pairs or "round_of_ref" not in pairs:
        return pd.Series(False, index=pairs.index)
    return pairs["round_of"].notna() | pairs["round_of_ref"].notna()


def _paired(out: pd.DataFrame, df: pd.DataFrame, ref: str, th: Mapping[str, Any]) -> pd.DataFrame:
    """The wall-time cells with their paired-round interval, judged as one family (``paired.judge``), their
    ``ratio`` the paired geometric mean; the engine's cells without one: within noise, ``NOT_PAIRED``."""
    wall = (out["basis"] == WALL_TIME.label).to_numpy()
    found = paired.intervals(paired.round_ratios(df, ref), _CELL)
    found = found[found["lo"].notna()]
    merged = out[["model", "precision", "env"]].astype(str).merge(
        found.astype({c: str for c in _CELL}), on=_CELL, how="left")
    has = wall & merged["lo"].notna().to_numpy()
    judged = paired.judge(merged[has], th) if has.any() else merged.iloc[:0].assign(q_value=[], decisive=[])
    out = out.assign(ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, q_value=np.nan, paired_rounds=0, paired_cases=0,
                     decisive=False)
    if has.any():
        out.loc[has, "ratio"] = judged["ratio"].to_numpy()
        out.loc[has, ["ci_lo", "ci_hi", "p_value", "q_value"]] = judged[["lo", "hi", "p_value", "q_value"]].to_numpy()
        out.loc[has, ["paired_rounds", "paired_cases"]] = judged[["paired_rounds", "paired_cases"]].to_numpy()
        out.loc[has, "decisive"] = judged["decisive"].to_numpy(dtype=bool)
    unpaired = wall & ~has & out["from_engine"].to_numpy(dtype=bool)
    within = np.where(has, ~out["decisive"].to_numpy(dtype=bool), np.where(unpaired, True, out["within"]))
    source = np.where(has, PAIRED, np.where(unpaired, NOT_PAIRED, out["band_source"]))
    band = np.where(has | unpaired, np.nan, out["band"])
    return out.assign(within=within.astype(bool), band_source=source, band=band)


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


def _bands(out: pd.DataFrame, kind: str, th: Mapping[str, Any]) -> pd.DataFrame:
    """``band``, ``band_source`` and ``within`` of each cell, by the noise rule of its measure."""
    rule = {m.label: m for m in CHAINS[kind]}
    band_log = np.full(len(out), np.nan)
    source = np.full(len(out), "", dtype=object)
    for label, m in rule.items():
        on = (out["basis"] == label).to_numpy()
        if m.noise == NOISE_COUNTS:
            band_log[on] = np.log1p([count_limit(m, th, s) for s in out.loc[on, "ispread"]])
            source[on] = "instruction repeats"
        elif m.noise == NOISE_ROUNDS:
            band_log[on] = ROUND_NOISE_MULTIPLE * np.sqrt(out.loc[on, "var"].to_numpy(dtype=float))
            assumed, n = out.loc[on, "assumed"].to_numpy(), out.loc[on, "n"].to_numpy()
            source[on] = np.where(assumed == 0, "measured", np.where(assumed == 2 * n, "assumed", "partly assumed"))
    with np.errstate(invalid="ignore"):
        within = np.abs(out["log_mean"].to_numpy()) < band_log  # NaN band: no noise drawn, never within
    return out.assign(band=np.exp(band_log), band_source=source, within=within)


def cells(df: pd.DataFrame, ref: str, kind: str, verdicts: Optional[pd.DataFrame] = None,
          thresholds: Optional[Mapping[str, Any]] = None) -> pd.DataFrame:
    """The heatmap cells of ``kind`` (``TIME`` or ``MEMORY``) against ``ref``: one row per (model,
    precision, env) with an ok case in both, columns ``CELL_COLUMNS``.

    ``ratio`` (geometric mean of here / reference; > 1 costs more; over paired rounds where the cell has
    them), ``n`` cases, ``lo`` and ``hi``
    (their smallest and largest ratio), ``basis`` (the label of its measure, ``harness.measures``),
    ``n_preferred`` (cases that have the chain's first measure on both sides), ``band`` (the ratio a
    change must exceed either way, NaN when none), ``band_source`` (paired rounds | not paired | measured |
    assumed | partly assumed | instruction repeats | gate | ''), ``within`` (within noise), ``rounds_lo``/
    ``rounds_hi`` (fewest and most rounds of a case on either side), ``modes`` ([(mode, ratio, n)]), ``gate``
    ({verdict: n} or None), ``gate_pair`` and ``INTERVAL_COLUMNS`` (``ci_lo``/``ci_hi``: the 95% interval
    of the ratio, ``p_value``, ``q_value``: Benjamini-Hochberg over the heatmap's paired cells,
    ``paired_rounds``, ``paired_cases``, ``decisive``). ``verdicts``: ``compare.verdicts_frame``, whose
    judgement wins where it covers a cell; ``thresholds``: the gate's (its defaults when None).
    """
    th = thresholds if thresholds is not None else default_thresholds()
    pairs = basis.with_basis(case_pairs(df, ref), kind, by=_CELL, rounds=True)
    pairs = _noise(pairs[pairs["ratio"].notna()], kind, th["min_rounds"])
    if pairs.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    pairs = pairs.assign(_log=np.log(pairs["ratio"].astype(float)))
    grouped = pairs.groupby(_CELL, sort=False)
    out = grouped.agg(log_mean=("_log", "mean"), n=("_log", "size"), lo=("ratio", "min"), hi=("ratio", "max"),
                      n_preferred=("preferred", "sum"), basis=("basis", "first"), var=("_var", "mean"),
                      assumed=("_assumed", "sum"), ispread=("_ispread", "max"), rounds_lo=("_rounds", "min"),
                      rounds_hi=("_rounds_hi", "max"), from_engine=("_engine", "max")).reset_index()
    out["ratio"] = np.exp(out["log_mean"])
    out = _bands(out, kind, th)
    if kind == TIME:
        out = _paired(out, df, ref, th)
    else:
        out = out.assign(ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, q_value=np.nan, paired_rounds=0,
                         paired_cases=0, decisive=False)
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
