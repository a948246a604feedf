"""Compact JSON datasets embedded in the report for its in-browser tables and charts.

A dataset is column-wise: categorical columns are dictionary-encoded (small integer
codes plus one list of labels in display order), numbers are written with a few
significant digits, and columns that belong to the case rather than the record (model,
batch size, precision...) are stored once per case and referenced by a case index. So
100,000 records cost a few megabytes, not tens. The page's script
(``assets/report.js``) decodes this format::

    {"n": rows, "columns": [{"key", "label", "kind": "cat"|"num"|"int"|"text",
                             "fmt", "ref"?}],
     "dicts": {key: [labels]}, "data": {key: [values or codes]},
     "refs": {"case": {key: [codes]}}, "refidx": {"case": [case index per row]}}

A missing number is ``null``; a missing category is code ``-1`` (shorter, and there
are many: every ok record has no reason).
"""
import json
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    """One column of a dataset: ``src`` is the frame column (defaults to ``key``)."""

    key: str
    label: str
    kind: str = "cat"  # cat | num | int | text
    fmt: str = ""  # how the page shows values: status, verdict, pct, sci, tratio, mratio, p, bytes, count
    digits: int = 4  # significant digits kept for num columns
    order: Optional[Sequence[str]] = None  # display order of categories (others follow, sorted)
    src: Optional[str] = None
    filter: bool = True  # offer a drop-down filter (cat) in the page
    ref: Optional[str] = None  # stored per case (see module docstring)


def _json_list(items: List[str]) -> str:
    return "[" + ",".join(items) + "]"


def _plain(values: List) -> str:
    """JSON array of numbers or None, non-finite values as null."""
    return json.dumps([v if v is None or math.isfinite(v) else None for v in values], separators=(",", ":"),
                      allow_nan=False)


def round_sig(arr: np.ndarray, digits: int) -> np.ndarray:
    """Round to ``digits`` significant digits so that the shortest repr is short ('12.35', not '12.3456789').

    Dividing an integer-valued float by an exact power of ten is correctly rounded, so
    the result is the double nearest the short decimal and prints as it.
    """
    arr = np.asarray(arr, dtype=float)
    out = np.full(arr.shape, np.nan)
    good = np.isfinite(arr) & (arr != 0)
    out[np.isfinite(arr) & (arr == 0)] = 0.0
    x = arr[good]
    k = digits - 1 - np.floor(np.log10(np.abs(x))).astype(int)
    pos = k >= 0
    res = np.empty_like(x)
    p_pos = 10.0 ** np.clip(k[pos], 0, 22)
    res[pos] = np.round(x[pos] * p_pos) / p_pos
    p_neg = 10.0 ** np.clip(-k[~pos], 0, 22)
    res[~pos] = np.round(x[~pos] / p_neg) * p_neg
    deep = pos & (k > 22)  # below 1e-22: keep as is
    if deep.any():
        res[deep] = x[deep]
    out[good] = res
    return out


def _num_json(values: pd.Series, digits: int) -> str:
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    rounded = round_sig(arr, digits)
    return _plain([None if v != v else (int(v) if v.is_integer() and abs(v) < 1e15 else v)
                   for v in rounded.tolist()])


def _int_json(values: pd.Series) -> str:
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return _plain([None if v != v else int(v) for v in arr.tolist()])


def _encode_column(values: pd.Series, col: Column, dicts: Dict[str, List[str]]) -> str:
    if col.kind == "num":
        return _num_json(values, col.digits)
    if col.kind == "int":
        return _int_json(values)
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    labels = [u if isinstance(u, str) else str(u) for u in uniques]
    head = [v for v in (col.order or ()) if v in set(labels)]
    cats = head + sorted(set(labels) - set(head))
    position = {lab: i for i, lab in enumerate(cats)}
    remap = np.array([position[lab] for lab in labels] + [-1], dtype=np.int64)
    new_codes = remap[codes]  # -1 (missing) indexes the trailing -1
    dicts[col.key] = cats
    return json.dumps(new_codes.tolist(), separators=(",", ":"))


def encode_dataset(frame: pd.DataFrame, columns: Sequence[Column], ref_key: Optional[str] = None) -> str:
    """The dataset JSON for ``frame`` (see the module docstring).

    Columns with ``ref="case"`` are stored once per distinct value of the frame
    column ``ref_key`` (the case key) and looked up through ``refidx``.
    """
    dicts: Dict[str, List[str]] = {}
    data_parts, ref_parts = [], []
    refidx_part = ""
    ref_cols = [c for c in columns if c.ref]
    if ref_cols:
        if ref_key is None:
            raise ValueError("columns with ref need ref_key")
        codes, uniques = pd.factorize(frame[ref_key], sort=False)
        firsts = frame.iloc[np.unique(codes, return_index=True)[1]]
        refidx_part = '"refidx":{"case":' + json.dumps(codes.tolist(), separators=(",", ":")) + "}"
        for col in ref_cols:
            ref_parts.append(json.dumps(col.key) + ":" + _encode_column(firsts[col.src or col.key], col, dicts))
    for col in columns:
        if col.ref:
            continue
        data_parts.append(json.dumps(col.key) + ":" + _encode_column(frame[col.src or col.key], col, dicts))
    meta = [{k: v for k, v in (("key", c.key), ("label", c.label), ("kind", c.kind), ("fmt", c.fmt),
                               ("filter", c.filter), ("ref", c.ref)) if v not in (None, "")}
            for c in columns]
    parts = ['"n":%d' % len(frame), '"columns":' + json.dumps(meta, separators=(",", ":")),
             '"dicts":' + json.dumps(dicts, separators=(",", ":")),
             '"data":{' + ",".join(data_parts) + "}"]
    if ref_cols:
        parts.append('"refs":{"case":{' + ",".join(ref_parts) + "}}")
        parts.append(refidx_part)
    return script_safe("{" + ",".join(parts) + "}")


def script_safe(text: str) -> str:
    """JSON text made safe inside ``<script type="application/json">``."""
    return text.replace("</", "<\\/").replace("<!--", "\\u003c!--")
