"""The largest-batch searches among the records (cases with ``batch_size = "max"``), kept apart.

A search record has no timing and no accuracy: its answer is the ``max_batch`` part. The report
takes them out of the measured cases before those are prepared (``split_searches``) and shows
them in their own section, one row per search and a column per environment
(``search_table``).
"""
from typing import List, Sequence, Tuple

import pandas as pd

from harness.analysis.report.frame import parse_torch_version
from harness.vocab import MAX_BATCH

#: What identifies a search across environments: its case less the batch size.
SEARCH_KEY = ("model", "mode", "size", "precision", "checkpoint", "device", "channels_last", "compile",
              "sdpa_backend", "python_optimized")


def split_searches(raw: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(the measured cases, the searches) of a frame of ``load_records`` rows."""
    if "batch_size" not in raw.columns:
        return raw, raw.iloc[0:0]
    is_search = raw["batch_size"].astype(str) == MAX_BATCH
    return raw.loc[~is_search].reset_index(drop=True), raw.loc[is_search].reset_index(drop=True)


def env_names(searches: pd.DataFrame) -> pd.Series:
    """Each search's environment as the report names it: the label, and the fingerprint's head when
    one label holds searches of the same case from two machines (as ``frame.prepare_frame`` does)."""
    env = searches["env_label"].fillna("?").astype(str)
    fp = searches["env_fingerprint"].fillna("").astype(str)
    trip = pd.DataFrame({"env": env, "key": searches["case_key"], "fp": fp}).drop_duplicates()
    shared = set(trip.loc[trip.duplicated(["env", "key"]), "env"])
    return env.where(~env.isin(shared), env + " @" + fp.str[:10])


def search_table(searches: pd.DataFrame, env_order: Sequence[str]) -> Tuple[pd.DataFrame, List[str]]:
    """The latest record of each search per environment (by ``time_utc``, file order breaking ties),
    with an ``env`` column, and the environments in order: ``env_order`` first, then any other."""
    if searches.empty:
        return searches.assign(env=[]), []
    df = searches.assign(env=env_names(searches), _order=range(len(searches)))
    df = df.sort_values(["time_utc", "_order"], na_position="first", kind="stable")
    df = df.drop_duplicates(["case_key", "env"], keep="last").sort_values("_order").drop(columns="_order")
    present = list(dict.fromkeys(df["env"]))
    torch_of = df.groupby("env")["torch"].first()
    envs = [e for e in env_order if e in present] + sorted(
        (e for e in present if e not in env_order), key=lambda e: (parse_torch_version(torch_of.get(e)), e))
    return df.reset_index(drop=True), envs
