"""The record files: one JSONL file per (run, environment), appended one record a line.

Writing is append-only, flushed and fsynced per line: a crash or kill loses at most
the case in flight. Reading tolerates a truncated last line and reports every bad
line as ``(line, None, problem)``; what a good record is comes from ``harness.record``.
Standard library only (the runner writes, the analysis side reads).
"""
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

from harness.record import Record, check, upgrade


class RecordWriter:
    """Append records to a JSONL file, one fsynced line per record."""

    def __init__(self, path: str):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def append(self, record: Any) -> None:
        """Write ``record`` (a ``Record``, or its dict, checked strictly) as one line."""
        if not isinstance(record, Record):
            record = Record.from_dict(record, strict=True)
        self._fh.write(record.to_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def iter_records(path: str, loads=None) -> Iterator[Tuple[int, Optional[Dict], Optional[str]]]:
    """Yield ``(line_number, record, problem)`` for each non-blank line of ``path``.

    ``record`` is None and ``problem`` says why when a line is not a record of a
    readable schema version (a truncated last line after a kill, a field of the wrong
    type). ``loads`` is a faster parser to try first (the analysis side passes
    orjson's); lines it refuses, such as the NaN/Infinity that ``json`` writes, fall
    back to ``json.loads``. Records are returned lifted to ``SCHEMA_VERSION``.
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = None
                if loads is not None:
                    try:
                        rec = loads(line)
                    except ValueError:
                        rec = None
                if rec is None:
                    rec = json.loads(line)
            except ValueError as exc:
                yield lineno, None, "not valid JSON (%s)" % exc
                continue
            problem = check(rec)
            if problem:
                yield lineno, None, problem
            else:
                yield lineno, upgrade(rec), None


def read_records(path: str) -> List[Dict]:
    """Every good record of ``path`` (bad lines are skipped; see ``iter_records``)."""
    return [rec for _, rec, _ in iter_records(path) if rec is not None]


def held_case_keys(path: str) -> set:
    """Case keys ``path`` already holds a record for (what ``--resume`` skips)."""
    if not os.path.exists(path):
        return set()
    return {rec["case_key"] for rec in read_records(path) if "case_key" in rec}
