"""What the rounds of a case show together: several records of one case in one environment.

The interleaved engine (``harness.engine``), ``ab`` and ``run --append`` measure a case once per
round, each round in a fresh process. ``frame.prepare_frame`` keeps the latest record of each case
and environment; before it does, ``combine_rounds`` adds to every record what only all the rounds
show: how many ok rounds there were, the median of their medians, how far the round medians spread
(the noise between processes, which the samples of one process cannot show), and each paired round's
median by its round index (what ``paired`` compares across environments). A record of a round that did
not run the extras (the engine's rounds 2..R: timing only) takes every extras column
(``harness.analysis.extras_columns.EXTRAS_COLUMNS``: accuracy, tensor peak, FLOPs, checks, profile,
task, instruction counts) from the round of its case that ran them; a record from before rounds takes
the instruction counts of an earlier round when it has none (``ab --instructions`` counts in the first
round only: the counts are deterministic). Never imports torch.
"""
from typing import Dict, Sequence

import numpy as np
import pandas as pd

from harness.analysis.extras_columns import EXTRAS_COLUMNS, RAN_EXTRAS_COLUMN

#: Columns ``combine_rounds`` adds.
ROUND_COLUMNS = ("rounds", "median_rounds_s", "round_sd_log", "round_medians_s")
#: The instruction figures taken together from the round that counted (records from before rounds).
INSTRUCTION_COLUMNS = ("instr_status", "instr_reason", "instructions_per_iter", "instructions_spread")


def combine_rounds(df: pd.DataFrame, keys: Sequence[str] = ("env", "case_key")) -> pd.DataFrame:
    """Add ``ROUND_COLUMNS`` to ``df`` (sorted oldest first), per group of ``keys``.

    ``rounds``: ok records with a positive median; ``median_rounds_s``: the median of their
    medians; ``round_sd_log``: the sample standard deviation of the log of their medians (NaN
    below two rounds); ``round_medians_s``: ``{round index: median}`` of the ok records that were
    paired in their round (``round_paired``; the latest record of an index wins), empty for records
    from before rounds or of a lone variant. An ok record whose round did not run the extras takes
    ``EXTRAS_COLUMNS`` from the latest ok record of its group whose round did; an ok record from before
    rounds without an instruction status takes the instruction columns of the latest earlier record of
    its group that has one. Returns ``df``, changed.
    """
    median = pd.to_numeric(df["median_s"], errors="coerce")
    ok = (df["status"] == "ok") & np.isfinite(median) & (median > 0)
    good = median.where(ok)
    groups = [df[k] for k in keys]
    by_group = good.groupby(groups, sort=False, dropna=False, observed=True)
    df["rounds"] = by_group.transform("count").astype(int)
    df["median_rounds_s"] = by_group.transform("median")
    df["round_sd_log"] = np.log(good).groupby(groups, sort=False, dropna=False, observed=True).transform("std")
    df["round_medians_s"] = _paired_medians(df, keys, good)
    ran = df[RAN_EXTRAS_COLUMN] if RAN_EXTRAS_COLUMN in df.columns else pd.Series(None, index=df.index, dtype=object)
    _carry_extras(df, groups, ok, ran)
    _carry_instructions(df, groups, ok & ran.isna().to_numpy())
    return df


def _paired_medians(df: pd.DataFrame, keys: Sequence[str], good: pd.Series) -> pd.Series:
    """Per row, ``{round index: median}`` of the paired ok rounds of its group (empty when none)."""
    empty = pd.Series([{} for _ in range(len(df))], index=df.index, dtype=object)
    if "round" not in df.columns or "round_paired" not in df.columns:
        return empty
    index = pd.to_numeric(df["round"], errors="coerce")
    paired = df["round_paired"].astype(object).eq(True) & index.notna() & good.notna()
    if not paired.any():
        return empty
    sub = df.loc[paired, list(keys)].assign(_round=index[paired].astype(int), _median=good[paired].astype(float))
    by_group: Dict[tuple, Dict[int, float]] = {}
    for row in zip(*(sub[k].tolist() for k in keys), sub["_round"].tolist(), sub["_median"].tolist()):
        by_group.setdefault(row[:-2], {})[row[-2]] = row[-1]  # oldest first: the latest record of a round wins
    keyed = zip(*(df[k].tolist() for k in keys))
    return pd.Series([dict(by_group.get(k, {})) for k in keyed], index=df.index, dtype=object)


def _carry_extras(df: pd.DataFrame, groups, ok: pd.Series, ran: pd.Series) -> None:
    """Ok records whose round did not run the extras take every extras column, all together (a part's
    figures belong to one pass), from the latest ok record of their group whose round ran them."""
    timing_only = (ran.astype(object).eq(False) & ok).to_numpy()
    source_rows = (ran.astype(object).eq(True) & ok).to_numpy()
    if not timing_only.any() or not source_rows.any():
        return
    position = pd.Series(np.where(source_rows, np.arange(len(df)), np.nan), index=df.index)
    source = position.groupby(groups, sort=False, dropna=False, observed=True).transform("last").to_numpy()
    take = timing_only & ~np.isnan(source)
    if not take.any():
        return
    rows = source[take].astype(int)
    for col in EXTRAS_COLUMNS:
        if col in df.columns:
            values = df[col].to_numpy(dtype=object).copy()
            values[take] = values[rows]
            df[col] = pd.Series(values, index=df.index).infer_objects()


def _carry_instructions(df: pd.DataFrame, groups, ok: pd.Series) -> None:
    """Ok records (from before rounds) without an instruction status take the latest earlier one of
    their group, all its columns together (a status, its reason and its count belong to one pass)."""
    if "instr_status" not in df.columns:
        return
    has = df["instr_status"].notna().to_numpy()
    if has.all() or not has.any():
        return
    position = pd.Series(np.where(has, np.arange(len(df)), np.nan), index=df.index)
    source = position.groupby(groups, sort=False, dropna=False, observed=True).ffill()
    take = (~has) & ok.to_numpy() & source.notna().to_numpy()
    if not take.any():
        return
    rows = source.to_numpy()[take].astype(int)
    for col in INSTRUCTION_COLUMNS:
        if col in df.columns:
            values = df[col].to_numpy(dtype=object).copy()
            values[take] = values[rows]
            df[col] = pd.Series(values, index=df.index).infer_objects()
