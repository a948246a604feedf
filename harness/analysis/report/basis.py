"""Which measure a comparison of two records rests on, and its ratio: the report's reading of
``harness.measures.CHAINS``, as the gate reads it for a pair.

A comparison is a record (a case here) and its twin (the case in the reference environment, the
baseline, or without checkpointing), side by side in one row, the twin's columns with a suffix. Per
group of rows (a heatmap cell, an environment's card; or each row alone) the ratio rests on the first
measure of the kind's chain that every row of the group carries on both sides, else on the last
where a row has it; one measure per group, never two mixed in a mean. Never imports torch.
"""
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd

from harness.measures import CHAINS, Measure


def figure_column(measure: Measure, rounds: bool) -> str:
    """The column of a case's figure: over its rounds (``rounds_column``) where asked and known."""
    return measure.rounds_column if rounds and measure.rounds_column else measure.column


def columns(kind: str, rounds: bool = False) -> List[str]:
    """The record columns the chain of ``kind`` reads: figures, the columns that validate them, spreads."""
    out: List[str] = []
    for m in CHAINS[kind]:
        out += [figure_column(m, rounds)] + [c for c in (m.only_where[0] if m.only_where else None,
                                                         m.spread_column) if c]
    return list(dict.fromkeys(out))


def ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    """``a / b`` where both are positive finite numbers, else NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = pd.to_numeric(a, errors="coerce").astype(float) / pd.to_numeric(b, errors="coerce").astype(float)
    return r.where(np.isfinite(r) & (r > 0))


def _has(pairs: pd.DataFrame, measure: Measure, column: str, suffix: str) -> pd.Series:
    """Per row, the ratio of ``column`` when both sides carry ``measure`` (``only_where`` holds), else NaN."""
    r = ratio(pairs[column], pairs[column + suffix]) if column in pairs and column + suffix in pairs else \
        pd.Series(np.nan, index=pairs.index)
    if measure.only_where:
        where, value = measure.only_where
        if where not in pairs or where + suffix not in pairs:
            return r.where(False)
        r = r.where((pairs[where] == value) & (pairs[where + suffix] == value))
    return r


def with_basis(pairs: pd.DataFrame, kind: str, by: Optional[Sequence[str]] = None, suffix: str = "_ref",
               rounds: bool = False) -> pd.DataFrame:
    """``pairs`` with ``preferred`` (the row carries the chain's first measure on both sides), ``basis``
    (the label of the measure its group rests on) and ``ratio`` (here / twin on it; NaN where the row
    lacks it). ``by``: the columns of a group (None: each row alone); ``rounds``: a case's figure over
    its rounds where the measure has one (``Measure.rounds_column``)."""
    chain = CHAINS[kind]
    ratios = [_has(pairs, m, figure_column(m, rounds), suffix) for m in chain]
    chosen = pd.Series(len(chain) - 1, index=pairs.index)
    groups = [pairs[c] for c in by] if by else None
    for i in reversed(range(len(chain) - 1)):  # the first measure every row of the group carries wins
        has = ratios[i].notna()
        every = has.groupby(groups, sort=False, observed=True, dropna=False).transform("all") if by else has
        chosen = chosen.where(~every.astype(bool).to_numpy(), i)
    picked = pd.Series(np.nan, index=pairs.index)
    for i, r in enumerate(ratios):
        picked = picked.where(chosen != i, r)
    labels = np.array([m.label for m in chain], dtype=object)
    return pairs.assign(preferred=ratios[0].notna(), basis=labels[chosen.to_numpy()], ratio=picked)
