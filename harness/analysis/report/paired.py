"""Wall-time differences between two environments with their 95% interval, from paired rounds.

The interleaved engine (``harness.engine``) measures every case once per round in every environment,
the environments of one case one right after another, so round ``i`` of a case here and round ``i``
of the same case in the reference ran side by side: machine drift between rounds cancels in their
ratio. Everything here rests on those pairs (``rounds.combine_rounds`` keeps each paired round's
median by its index, ``round_medians_s``):

- per case, the log ratio of the two environments' round medians for each round index both have,
  then a t interval over rounds (``scipy.stats.t``, n - 1 degrees of freedom);
- per group of cases (a heatmap cell: model and precision; an environment's card: all its cases), per
  round the mean over the group's cases of their log ratios (a geometric mean), then a t interval over
  rounds: the round, not the case, is the unit of replication, since one process's speed moves all
  the cases it runs;
- ``judge``: the p-values of a family (the cells of one heatmap, the cards, the cases of an upgrade)
  corrected for many comparisons by Benjamini-Hochberg (``harness.analysis.gate.stats.bh_qvalues``:
  ``scipy.stats.false_discovery_control`` where scipy has it, as the gate's time verdicts are); a
  difference is decisive when its q is within the gate's ``q`` and it exceeds ``floor_frac``.

Records without a round part, of a lone variant or of a CI job that held one environment
(``round_paired`` False), and cases with fewer than ``MIN_PAIRED_ROUNDS`` rounds in common have no
interval: ``UNPAIRED`` says so on the page. Data only: the sections write the text. Never imports torch.
"""
import math
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

from harness.analysis.gate.stats import bh_qvalues
from harness.analysis.report.frame import plain_columns

#: The confidence level of every interval.
LEVEL = 0.95
#: Fewer rounds in common than this: no interval (one round pair has no spread to measure).
MIN_PAIRED_ROUNDS = 2
#: The gate threshold whose fraction a decisive wall-time difference must exceed: the smallest change the
#: gate calls on a time measure (``instructions_frac``, 2%). Not ``time_factor`` (10%): that is the bar for
#: failing a pull request; across releases a real 5% change, shown real by its interval, is worth colour.
FLOOR_KEY = "instructions_frac"
#: What the page says where there is no interval.
UNPAIRED = "single run, not paired: no interval"
#: What the page says of a difference whose interval or size does not decide it.
WITHIN = "within noise"
#: What the page says of a difference its interval shows real but smaller than the floor (``%s``: the floor).
SMALL = "real but below the %s floor"
#: The correction for many comparisons, in words (the page names it once per family).
CORRECTION = "Benjamini-Hochberg"
#: Columns of ``round_ratios``.
RATIO_COLUMNS = ["case_key", "model", "precision", "mode", "env", "round", "log_ratio"]
#: Columns ``intervals`` and ``case_intervals`` give besides the group's own.
INTERVAL_COLUMNS = ["ratio", "lo", "hi", "log_mean", "p_value", "paired_rounds", "paired_cases"]


def floor_frac(thresholds: Mapping[str, Any]) -> float:
    """The fraction a decisive difference must exceed (``FLOOR_KEY`` of the gate's thresholds)."""
    return float(thresholds[FLOOR_KEY])


def _t(mean: np.ndarray, sd: np.ndarray, n: np.ndarray, level: float) -> Tuple[np.ndarray, ...]:
    """Vectorised Student's t: (low, high, two-sided p) of means ``mean`` with sample sd ``sd`` of ``n``
    values; NaN below ``MIN_PAIRED_ROUNDS``; a zero sd gives a zero-width interval, p 0 (1 at a mean of 0)."""
    mean, sd, n = (np.asarray(a, dtype=float) for a in (mean, sd, n))
    enough = n >= MIN_PAIRED_ROUNDS
    dof = np.where(enough, n - 1, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = sd / np.sqrt(np.where(enough, n, 1.0))
        half = stats.t.ppf(0.5 + level / 2.0, dof) * se
        p = np.where(se > 0, 2.0 * stats.t.sf(np.abs(mean) / se, dof), np.where(mean != 0, 0.0, 1.0))
    nan = np.full(mean.shape, np.nan)
    return (np.where(enough, mean - half, nan), np.where(enough, mean + half, nan), np.where(enough, p, nan))


def t_interval(log_values: Sequence[float], level: float = LEVEL) -> Tuple[float, float, float, float]:
    """(mean, low, high, two-sided p that the mean is 0) of ``log_values`` by Student's t, NaN below
    ``MIN_PAIRED_ROUNDS`` values. Values all alike: a zero-width interval, p 0 (or 1 at a mean of 0)."""
    x = np.asarray([v for v in log_values if v == v], dtype=float)
    if x.size < MIN_PAIRED_ROUNDS:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    lo, hi, p = _t(np.array([mean]), np.array([x.std(ddof=1)]), np.array([x.size]), level)
    return mean, float(lo[0]), float(hi[0]), float(p[0])


def round_ratios(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """Per case of every environment but ``ref`` and per round index it shares with ``ref`` (both paired
    in that round), the log of (round median here / round median in ``ref``); columns ``RATIO_COLUMNS``.
    Reads the prepared frame's ok rows and their ``round_medians_s``."""
    need = ["case_key", "model", "precision", "mode", "env", "round_medians_s"]
    if "round_medians_s" not in df.columns:
        return pd.DataFrame(columns=RATIO_COLUMNS)
    ok = plain_columns(df.loc[df["status"] == "ok", need])
    ok = ok.loc[np.array([isinstance(m, dict) and len(m) > 0 for m in ok["round_medians_s"]], dtype=bool)]
    base = ok[ok["env"] == ref][["case_key", "round_medians_s"]]
    pairs = ok[ok["env"] != ref].merge(base, on="case_key", suffixes=("", "_ref"))
    rows = []
    for key, model, precision, mode, env, here, there in zip(
            pairs["case_key"], pairs["model"], pairs["precision"], pairs["mode"], pairs["env"],
            pairs["round_medians_s"], pairs["round_medians_s_ref"]):
        for index in sorted(set(here) & set(there)):
            a, b = here[index], there[index]
            if a > 0 and b > 0:
                rows.append((key, model, precision, mode, env, index, math.log(a / b)))
    return pd.DataFrame(rows, columns=RATIO_COLUMNS)


def _columns(means: np.ndarray, sds: np.ndarray, rounds: np.ndarray, cases: np.ndarray) -> dict:
    """``INTERVAL_COLUMNS`` of groups with these log means, sds over rounds, rounds and cases."""
    lo, hi, p = _t(means, sds, rounds, LEVEL)
    enough = np.asarray(rounds) >= MIN_PAIRED_ROUNDS
    return {"ratio": np.exp(means), "lo": np.exp(lo), "hi": np.exp(hi), "log_mean": np.where(enough, means, np.nan),
            "p_value": p, "paired_rounds": np.asarray(rounds, dtype=int), "paired_cases": np.asarray(cases, dtype=int)}


def intervals(ratios: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by`` (``INTERVAL_COLUMNS``; ``ratio``, ``lo``, ``hi`` as ratios here / reference).

    ``by == ["env"]`` (a whole environment): per round the mean over the group's cases of their log
    ratios, then the t interval over those rounds. Every round mean averages the same cases: those that
    have every round of the group, or, where fewer than half the cases do, all cases over the rounds
    that every case has. A group inside an environment (a heatmap cell): ``within_env``."""
    by = list(by)
    if ratios.empty:
        return pd.DataFrame(columns=by + INTERVAL_COLUMNS)
    if by != ["env"] and "env" in by:
        return within_env(ratios, by)
    wide = ratios.pivot_table(index=by + ["case_key"], columns="round", values="log_ratio", aggfunc="mean",
                              observed=True)
    keys, means, sds, rounds, cases = [], [], [], [], []
    for group, sub in wide.groupby(level=list(range(len(by))), sort=False):
        values = sub.to_numpy(dtype=float)
        values = values[:, ~np.isnan(values).all(axis=0)]  # rounds no case of the group has
        complete = ~np.isnan(values).any(axis=1)
        if complete.sum() * 2 >= len(values):
            values = values[complete]
        else:
            values = values[:, ~np.isnan(values).any(axis=0)]
        per_round = values.mean(axis=0) if values.size else np.array([])
        keys.append(group if isinstance(group, tuple) else (group,))
        means.append(float(per_round.mean()) if per_round.size else math.nan)
        sds.append(float(per_round.std(ddof=1)) if per_round.size >= 2 else math.nan)
        rounds.append(per_round.size)
        cases.append(len(values) if per_round.size else 0)
    out = pd.DataFrame(keys, columns=by)
    return out.assign(**_columns(np.array(means), np.array(sds), np.array(rounds), np.array(cases)))


def within_env(ratios: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group of ``by`` inside an environment (a heatmap cell, one case): the two levels of a paired
    round apart. A round's process speed moves every case of the environment alike: that shift is the
    environment's mean log ratio in the round (``m_r``, over all its cases), known as well as the
    environment's own interval knows it (variance ``var(m_r) / R``, R - 1 degrees of freedom). What is
    left of a case's log ratio in a round (``d_cr - m_r``) is that case's own noise, independent from
    round to round: its variance comes from the spread of those residuals around each case's mean
    (``n - C`` degrees of freedom for n values of C cases). The group's log mean is the mean residual
    plus the environment's shift; its variance the sum of the two parts, with Welch-Satterthwaite's
    degrees of freedom. Three rounds of a 4-case cell then carry 12 values of case noise instead of
    3 round means (measured on the default scenario: docs/engine.md, "Intervals")."""
    by = list(by)
    env_round = ratios.groupby(["env", "round"], observed=True)["log_ratio"].mean()
    shift = env_round.groupby(level="env").agg(["mean", "var", "size"])
    data = ratios.assign(residual=ratios["log_ratio"].to_numpy() - env_round.reindex(
        pd.MultiIndex.from_arrays([ratios["env"], ratios["round"]])).to_numpy())
    # each value's deviation from its case's mean residual inside the group: the case's own noise
    by_case = by if "case_key" in by else by + ["case_key"]
    data["dev2"] = (data["residual"] - data.groupby(by_case, sort=False, observed=True)["residual"].transform(
        "mean")) ** 2
    groups = data.groupby(by, sort=False, observed=True).agg(
        n=("residual", "size"), residual=("residual", "mean"), ss=("dev2", "sum"), rounds=("round", "nunique"),
        cases=("case_key", "nunique")).reset_index()
    env = groups["env"].to_numpy()
    m = shift["mean"].reindex(env).to_numpy(dtype=float)
    var_m = shift["var"].reindex(env).to_numpy(dtype=float)
    r_env = shift["size"].reindex(env).to_numpy(dtype=float)
    n, c = groups["n"].to_numpy(dtype=float), groups["cases"].to_numpy(dtype=float)
    df_e = n - c
    mean_a = groups["residual"].to_numpy(dtype=float) + m
    with np.errstate(divide="ignore", invalid="ignore"):
        v_shift = var_m / r_env
        v_noise = groups["ss"].to_numpy(dtype=float) / df_e / n
        total = v_shift + v_noise
        dof = total ** 2 / (np.where(v_shift > 0, v_shift ** 2 / (r_env - 1), 0.0) + v_noise ** 2 / df_e)
        se = np.sqrt(total)
        half_a = stats.t.ppf(0.5 + LEVEL / 2.0, dof) * se
        p_a = 2.0 * stats.t.sf(np.abs(mean_a) / se, dof)
    judged = (r_env >= MIN_PAIRED_ROUNDS) & (df_e >= 1)
    flat = judged & (total <= 0)  # every residual alike: a zero-width interval
    half_a = np.where(judged, np.where(flat, 0.0, half_a), np.nan)
    p_a = np.where(judged, np.where(flat, np.where(mean_a != 0, 0.0, 1.0), p_a), np.nan)
    out = groups[by].copy()
    enough = ~np.isnan(half_a)
    return out.assign(ratio=np.exp(mean_a), lo=np.where(enough, np.exp(mean_a - half_a), np.nan),
                      hi=np.where(enough, np.exp(mean_a + half_a), np.nan),
                      log_mean=np.where(enough, mean_a, np.nan), p_value=p_a.astype(float),
                      paired_rounds=groups["rounds"].to_numpy(dtype=int), paired_cases=c.astype(int))


def case_intervals(ratios: pd.DataFrame) -> pd.DataFrame:
    """Per (env, case): its interval over its paired rounds, the environment's shift apart (``within_env``)."""
    by = ["env", "case_key"]
    if ratios.empty:
        return pd.DataFrame(columns=by + INTERVAL_COLUMNS)
    return within_env(ratios, by)


def judge(table: pd.DataFrame, thresholds: Mapping[str, Any]) -> pd.DataFrame:
    """``table`` (of ``intervals``) with ``q_value`` (``CORRECTION`` over its rows that have an interval:
    the family), ``decisive`` (q within the gate's ``q`` and the change beyond ``floor_frac``) and ``small``
    (q within ``q``, the change within the floor: real, too small to colour)."""
    p = pd.to_numeric(table["p_value"], errors="coerce") if len(table) else pd.Series(dtype=float)
    has = p.notna().to_numpy()
    q = np.full(len(table), np.nan)
    if has.any():
        q[has] = bh_qvalues(p[has].tolist())
    floor = math.log1p(floor_frac(thresholds))
    with np.errstate(invalid="ignore"):
        big = np.abs(pd.to_numeric(table["log_mean"], errors="coerce").to_numpy(dtype=float)) > floor
        decisive = has & (q <= float(thresholds["q"])) & big
        small = has & (q <= float(thresholds["q"])) & ~big
    return table.assign(q_value=q, decisive=decisive, small=small)


def undecided_words(row: Mapping[str, Any], thresholds: Mapping[str, Any]) -> str:
    """What the page says of a difference that is not decisive: ``SMALL`` when its interval shows it real
    but within the floor (``judge``'s ``small``), else ``WITHIN``."""
    if row.get("small"):
        return SMALL % ("%g%%" % (100 * floor_frac(thresholds)))
    return WITHIN


def env_intervals(df: pd.DataFrame, ref: str, thresholds: Mapping[str, Any]) -> pd.DataFrame:
    """Per environment but ``ref``: the geometric mean of its cases' wall-time ratios to ``ref`` over paired
    rounds with its interval, judged as one family (``judge``); columns ``env`` and those of ``judge``."""
    return judge(intervals(round_ratios(df, ref), ["env"]), thresholds)


def interval_of(table: Optional[pd.DataFrame], **where: Any) -> Optional[Mapping[str, Any]]:
    """The row of ``table`` whose columns equal ``where`` as a dict, if it has an interval; else None."""
    if table is None or table.empty:
        return None
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column].astype(str) == str(value)).to_numpy()
    hit = table[mask]
    if hit.empty or not hit["lo"].notna().iloc[0]:
        return None
    return hit.iloc[0].to_dict()
