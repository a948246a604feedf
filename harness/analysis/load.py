"""Load result records into a pandas DataFrame, one row per record.

Inputs are JSONL files or folders of them (``*.jsonl`` directly inside; the
``previous/`` folders kept by re-runs are not read). Problems never stop the load:
a truncated or non-JSON line, a record of another schema version, a file with no
records, each becomes a message naming the file and line, and the good records are
still returned. No input at all, a missing path, or no good record anywhere raises
``InputError``.
"""
import glob
import os
from typing import Iterable, List, Tuple

import pandas as pd

from harness.record import iter_records

try:  # three to four times faster on large stores; plain json where it is missing
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is in the analysis extra
    _fast_loads = None

CASE_AXES = ("model", "mode", "batch_size", "size", "precision", "checkpoint", "device",
             "channels_last", "compile")


class InputError(Exception):
    """Bad input to the analysis side: the message names the file and what is wrong."""


def expand_paths(paths: Iterable[str]) -> List[str]:
    """Files named, plus the ``*.jsonl`` files inside folders named; sorted, unique."""
    files: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, "*.jsonl")))
            if not found:
                raise InputError("%s: folder holds no *.jsonl record files" % path)
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise InputError("%s: no such file or folder" % path)
    if not files:
        raise InputError("no record files given")
    return sorted(dict.fromkeys(files))


def _flatten(rec: dict, source: str, lineno: int) -> dict:
    case = rec.get("case") or {}
    env = rec.get("env") or {}
    timing = rec.get("timing") or {}
    memory = rec.get("memory") or {}
    acc = rec.get("accuracy") or {}
    task = rec.get("task") or {}
    row = {axis: case.get(axis) for axis in CASE_AXES}
    row.update({
        "case_key": rec.get("case_key"),
        "status": rec.get("status"),
        "reason": rec.get("reason"),
        "scenario": rec.get("scenario"),
        "run_id": rec.get("run_id"),
        "time_utc": rec.get("time_utc"),
        "env_label": rec.get("env_label"),
        "env_fingerprint": env.get("fingerprint"),
        "torch": env.get("torch"),
        "python": env.get("python"),
        "numpy": env.get("numpy"),
        "cuda": env.get("cuda"),
        "cudnn": env.get("cudnn"),
        "device_name": env.get("device_name"),
        "git_commit": env.get("git_commit"),
        "duration_s": rec.get("duration_s"),
        "samples_s": timing.get("samples_s"),
        "probe_samples_s": timing.get("probe_samples_s"),
        "probe": timing.get("probe"),
        "median_s": timing.get("median_s"),
        "iqr_s": timing.get("iqr_s"),
        "throughput_per_s": timing.get("throughput_per_s"),
        "timing_reduced": timing.get("reduced"),
        "peak_mem_bytes": memory.get("peak_bytes"),
        "mem_method": memory.get("method"),
        "acc_passed": acc.get("passed"),
        "acc_tolerance": acc.get("tolerance"),
        "out_rel_err": (acc.get("outputs") or {}).get("rel_err"),
        "out_max_abs_err": (acc.get("outputs") or {}).get("max_abs_err"),
        "out_cosine": (acc.get("outputs") or {}).get("cosine"),
        "grad_rel_err": (acc.get("grads") or {}).get("rel_err"),
        "output_probe": acc.get("output_probe"),
        "output_norm": acc.get("output_norm"),
        "task_metric": task.get("metric"),
        "task_higher_is_better": task.get("higher_is_better"),
        "task_before": task.get("before"),
        "task_after": task.get("after"),
        "source": source,
        "line": lineno,
    })
    return row


def load_records(paths: Iterable[str]) -> Tuple[pd.DataFrame, List[str]]:
    """Read every record of ``paths``; return the rows and the problems found.

    Raises ``InputError`` when a path is missing or no good record is found.
    """
    files = expand_paths(list(paths))
    rows, problems = [], []
    for path in files:
        count = 0
        try:
            for lineno, rec, problem in iter_records(path, loads=_fast_loads):
                if rec is None:
                    problems.append("%s:%d: %s" % (path, lineno, problem))
                    continue
                rows.append(_flatten(rec, path, lineno))
                count += 1
        except (OSError, UnicodeDecodeError) as exc:
            problems.append("%s: cannot read (%s)" % (path, exc))
        if count == 0:
            problems.append("%s: no records" % path)
    if not rows:
        raise InputError("no good records in %s%s" % (
            ", ".join(files), (" (" + "; ".join(problems[:5]) + ")") if problems else ""))
    return pd.DataFrame(rows), problems
