"""What the rounds of a case show together: several records of one case in one environment.

``ab`` and ``run --append`` measure a case once per round, each round in a fresh process.
``frame.prepare_frame`` keeps the latest record of each case and environment; before it
does, ``combine_rounds`` adds to every record what only all the rounds show: how many ok
rounds there were, the median of their medians, how far the round medians spread (the
noise between processes, which the samples of one process cannot show), and the
instruction counts of an earlier round when the latest round has none (``ab
--instructions`` counts in the first round only: the counts are deterministic). Never
imports torch.
"""
from typing import Sequence

import numpy as np
import pandas as pd

#: Columns ``combine_rounds`` adds.
ROUND_COLUMNS = ("rounds", "median_rounds_s", "round_sd_log")
#: The instruction figures taken together from the round that counted.
INSTRUCTION_COLUMNS = ("instr_status", "instr_reason", "instructions_per_iter", "instructions_spread")


def combine_rounds(df: pd.DataFrame, keys: Sequence[str] = ("env", "case_key")) -> pd.DataFrame:
    """Add ``ROUND_COLUMNS`` to ``df`` (sorted oldest first), per group of ``keys``.

    ``rounds``: ok records with a positive median; ``median_rounds_s``: the median of their
    medians; ``round_sd_log``: the sample standard deviation of the log of their medians (NaN
    below two rounds). An ok record without an instruction status takes the instruction
    columns of the latest earlier record of its group that has one. Returns ``df``, changed.
    """
    median = pd.to_numeric(df["median_s"], errors="coerce")
    ok = (df["status"] == "ok") & np.isfinite(median) & (median > 0)
    good = median.where(ok)
    groups = [df[k] for k in keys]
    by_group = good.groupby(groups, sort=False, dropna=False, observed=True)
    df["rounds"] = by_group.transform("count").astype(int)
    df["median_rounds_s"] = by_group.transform("median")
    df["round_sd_log"] = np.log(good).groupby(groups, sort=False, dropna=False, observed=True).transform("std")
    _carry_instructions(df, groups, ok)
    return df


def _carry_instructions(df: pd.DataFrame, groups, ok: pd.Series) -> None:
    """Ok records without an instruction status take the latest earlier one of their group, all
    its columns together (a status, its reason and its count belong to one pass)."""
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
