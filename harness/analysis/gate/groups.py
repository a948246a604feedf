"""Records grouped by (case key, environment fingerprint) on one side, and environment texts.

Several records of one case in one environment on one side (the rounds of an A/B run or of the
interleaved engine) form one ``Group`` and are pooled: wall time over every ok round, a figure only
the extras round fills (``harness.analysis.extras_columns``) over the ok rounds that ran the extras
(``Group.ok_for``). Matching rules: docs/gate.md, "Matching".
"""
import math
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from harness.analysis.extras_columns import is_extras_column, ran_extras
from harness.analysis.gate.stats import median, num, positive_samples
from harness.measures import Measure

#: Environment fields named when two fingerprints differ.
ENV_FIELDS = ("torch", "python", "numpy", "cuda", "cudnn", "device", "device_name")


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def short(text: Any, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def fingerprint(row: Dict) -> str:
    """The record's environment fingerprint; records from before it had one: its main fields."""
    fp = row.get("env_fingerprint")
    if isinstance(fp, str) and fp:
        return fp
    parts = ["%s=%s" % (f, row.get(f)) for f in ("torch", "python", "cuda", "device", "device_name")]
    return "fields:" + ";".join(parts)


def env_text(row: Dict) -> str:
    """``torch 2.1.2, py 3.11.7, cpu``: the environment of a record, for people."""
    bits = []
    for field, label in (("torch", "torch"), ("python", "py"), ("device", ""), ("cuda", "CUDA")):
        value = row.get(field)
        if not missing(value):
            bits.append(("%s %s" % (label, value)).strip())
    return ", ".join(bits)


def env_diff(b: Dict, c: Dict) -> str:
    """Why two records' environments differ, naming the fields (``b``/``c`` carry ``_fp``)."""
    diffs = []
    for field in ENV_FIELDS:
        vb, vc = b.get(field), c.get(field)
        if missing(vb) and missing(vc):
            continue
        if str(vb) != str(vc):
            diffs.append("%s %s → %s" % (field, vb, vc))
    if not diffs:
        return "environment fingerprints differ (%s vs %s) in fields other than %s" % (
            short(b.get("_fp"), 24), short(c.get("_fp"), 24), ", ".join(ENV_FIELDS))
    return "different environments: " + "; ".join(diffs)


class Group:
    """The records (rows of ``load_records``, as dicts) of one (case_key, fingerprint) on one side."""

    def __init__(self, rows: List[Dict]):
        self.rows = rows
        self.first = rows[0]
        self.statuses = [str(r.get("status")) for r in rows]
        self.reasons = [r.get("reason") for r in rows]
        self.ok = [r for r in rows if r.get("status") == "ok"]
        #: the ok records whose round ran the extras (all of them for records from before rounds)
        self.ok_extras = [r for r in self.ok if ran_extras(r)]

    def ok_for(self, column: str) -> List[Dict]:
        """The ok records that could carry ``column``: those whose round ran the extras for a column
        only that round fills (a timing-only round leaves it null, which is not a loss), else all."""
        return self.ok_extras if is_extras_column(column) else self.ok

    @property
    def label(self) -> Optional[str]:
        label = self.first.get("env_label")
        return label if isinstance(label, str) else None

    @property
    def model(self) -> Any:
        return self.first.get("model")

    def samples(self) -> Tuple[List[float], List[float]]:
        """(pooled samples, per-round medians) over the ok records."""
        pooled, round_medians = [], []
        for row in self.ok:
            samples = positive_samples(row.get("samples_s"))
            if samples:
                pooled.extend(samples)
                round_medians.append(median(samples))
            else:
                value = num(row.get("median_s"))
                if value is not None and value > 0:
                    pooled.append(value)
                    round_medians.append(value)
        return pooled, round_medians

    def relative(self) -> Optional[Tuple[str, List[float], List[float]]]:
        """(probe description, pooled step/probe ratios, per-round median ratios) over the ok
        records; None unless every one holds probe times aligned with its samples."""
        descriptions, pooled, round_medians = set(), [], []
        for row in self.ok:
            samples = positive_samples(row.get("samples_s"))
            probes = positive_samples(row.get("probe_samples_s"))
            description = row.get("probe")
            if not samples or len(probes) != len(samples) or not isinstance(description, str):
                return None
            ratios = [s / p for s, p in zip(samples, probes)]
            descriptions.add(description)
            pooled.extend(ratios)
            round_medians.append(median(ratios))
        if len(descriptions) != 1:
            return None
        return descriptions.pop(), pooled, round_medians

    def counts(self, measure: Measure) -> Optional[Tuple[List[float], List[float]]]:
        """(the counted figure of ``measure`` per step, its repeats' spread) of the ok records whose
        pass counted it (``measure.only_where``), or None when none did (a side may count in one round
        only: counts are deterministic). ``measure``: ``harness.measures.INSTRUCTIONS``."""
        column, ok = measure.only_where
        counts, spreads = [], []
        for row in self.ok:
            value = num(row.get(measure.column))
            if row.get(column) == ok and value is not None and value > 0:
                counts.append(value)
                spreads.append(num(row.get(measure.spread_column)) or 0.0)
        return (counts, spreads) if counts else None

    def column(self, name: str, ok_only: bool = True) -> List[Any]:
        """The non-missing values of a column, over the ok records (or all)."""
        rows = self.ok if ok_only else self.rows
        return [r.get(name) for r in rows if not missing(r.get(name))]

    def nonfinite(self, names: Tuple[str, ...]) -> Optional[str]:
        """``column at file:line`` of the first ok record holding NaN or Infinity in one of
        ``names`` (a number or a list of numbers), else None. A column only the extras round fills is
        read from the rounds that ran the extras: a timing-only round's null reads as NaN in the table."""
        for row in self.ok:
            for name in names:
                if is_extras_column(name) and not ran_extras(row):
                    continue
                value = row.get(name)
                values = value if isinstance(value, list) else [value]
                if any(isinstance(x, float) and not math.isfinite(x) for x in values):
                    return "%s at %s:%s" % (name, row.get("source"), row.get("line"))
        return None

    def numbers(self, name: str) -> List[float]:
        """The finite numbers of a column over the ok records."""
        return [x for x in (num(v) for v in self.column(name)) if x is not None]


def group_records(df: pd.DataFrame) -> Dict[Tuple[str, str], Group]:
    """The records of one side by (case_key, fingerprint), sorted; rows without a case key dropped."""
    grouped: Dict[Tuple[str, str], List[Dict]] = {}
    for row in df.to_dict("records"):
        if missing(row.get("case_key")):
            continue
        fp = fingerprint(row)
        row["_fp"] = fp
        grouped.setdefault((str(row["case_key"]), fp), []).append(row)
    return {k: Group(v) for k, v in sorted(grouped.items())}
