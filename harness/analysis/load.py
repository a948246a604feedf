"""Load result records into a pandas DataFrame, one row per record.

The columns are ``harness.record.schema.COLUMNS``, derived from the record schema. Inputs
are JSONL files or folders of them (``*.jsonl`` directly inside; the
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

from harness.analysis import pytest_benchmark
from harness.record.schema import COLUMN_NAMES, flatten
from harness.record.store import iter_records

try:  # three to four times faster on large stores; plain json where it is missing
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is in the analysis extra
    _fast_loads = None


class InputError(Exception):
    """Bad input to the analysis side: the message names the file and what is wrong."""


def expand_paths(paths: Iterable[str]) -> List[str]:
    """Files named, plus the ``*.jsonl`` files inside folders named (a folder without any: the
    pytest-benchmark runs saved in it); sorted, unique."""
    files: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, "*.jsonl"))) or pytest_benchmark.storage_files(path)
            if not found:
                raise InputError("%s: folder holds no *.jsonl record files (nor pytest-benchmark's saved "
                                 "NNNN_*.json runs)" % path)
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise InputError("%s: no such file or folder" % path)
    if not files:
        raise InputError("no record files given")
    return sorted(dict.fromkeys(files))


def load_records(paths: Iterable[str]) -> Tuple[pd.DataFrame, List[str]]:
    """Read every record of ``paths``; return the rows and the problems found.

    Raises ``InputError`` when a path is missing or no good record is found.
    """
    files = expand_paths(list(paths))
    rows, problems = [], []
    for path in files:
        count = 0
        try:
            # pytest-benchmark's JSON (*.json) is read as records too (harness.analysis.pytest_benchmark).
            reader = (pytest_benchmark.iter_benchmark_records if pytest_benchmark.is_benchmark_file(path)
                      else iter_records)
            for lineno, rec, problem in reader(path, loads=_fast_loads):
                if rec is None:
                    problems.append("%s:%d: %s" % (path, lineno, problem))
                    continue
                row = flatten(rec)
                row["source"], row["line"] = path, lineno
                rows.append(row)
                count += 1
        except pytest_benchmark.BenchmarkFileError as exc:
            raise InputError(str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            problems.append("%s: cannot read (%s)" % (path, exc))
        if count == 0:
            problems.append("%s: no records" % path)
    if not rows:
        raise InputError("no good records in %s%s" % (
            ", ".join(files), (" (" + "; ".join(problems[:5]) + ")") if problems else ""))
    return pd.DataFrame(rows, columns=list(COLUMN_NAMES)), problems
