"""Read the report's records, with the files parsed in parallel when the input is large.

JSON parsing dominates a large report (100,000 records: about 200 MB of JSONL). Each
record file is read by ``harness.analysis.load.load_records`` on its own, in a pool of
forked worker processes, and the frames are joined in file order: the same rows and
the same problems as one ``load_records`` call. Small inputs, one file, one CPU, no
``fork``, a worker failure, or a file without any good record (whose message
``load_records`` words for the whole input) all take the plain serial call instead.
"""
import multiprocessing
import os
import warnings
from typing import List, Optional, Sequence, Tuple

import pandas as pd

from harness.analysis.load import InputError, expand_paths, load_records
from harness.record.schema import COLUMN_NAMES, REPORT_COLUMNS

#: Below this many bytes of input the pool costs more than it saves.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
#: Columns the report never reads (the raw samples are the gate's business): dropped in the workers.
UNUSED_COLUMNS = tuple(c for c in COLUMN_NAMES if c not in REPORT_COLUMNS)


def _load_one(path: str) -> Optional[Tuple[pd.DataFrame, List[str]]]:
    try:
        df, problems = load_records([path])
    except InputError:
        return None
    return df.drop(columns=[c for c in UNUSED_COLUMNS if c in df.columns]), problems


def _serial(paths: Sequence[str]) -> Tuple[pd.DataFrame, List[str]]:
    df, problems = load_records(paths)
    return df.drop(columns=[c for c in UNUSED_COLUMNS if c in df.columns]), problems


def load_for_report(paths: Sequence[str], workers: Optional[int] = None,
                    min_bytes: int = PARALLEL_MIN_BYTES) -> Tuple[pd.DataFrame, List[str]]:
    """``load_records(paths)`` less ``UNUSED_COLUMNS``, parallel over files when the input
    holds at least ``min_bytes``; the same rows and problems, the same errors."""
    files = expand_paths(list(paths))
    try:
        total = sum(os.path.getsize(f) for f in files)
    except OSError:
        total = 0
    if workers is None:
        workers = min(len(files), os.cpu_count() or 1, 8)
    if (workers < 2 or len(files) < 2 or total < min_bytes
            or "fork" not in multiprocessing.get_all_start_methods()):
        return _serial(paths)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: the child only parses JSON
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = pool.map(_load_one, files, chunksize=1)
    except Exception:  # noqa: BLE001 (any pool trouble: the serial call gives the real result or error)
        return _serial(paths)
    if any(r is None for r in results):
        return _serial(paths)
    problems = [p for _, file_problems in results for p in file_problems]
    return pd.concat([df for df, _ in results], ignore_index=True), problems
