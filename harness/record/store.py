"""The record files: one JSONL file per (run, environment), appended one record a line.

Writing is append-only, flushed and fsynced per line: a crash or kill loses at most
the case in flight. A writer that finds an unterminated last line (a kill mid-write, a
full disk) moves it to ``<file>.partial`` before appending, so no record is glued to a
fragment. Reading tolerates bad lines and reports each as ``(line, None, problem)``;
what a good record is comes from ``harness.record.schema``. ``OutputLock`` keeps a second run
off a record file in use. Standard library only (the runner writes, the analysis side
reads).
"""
import fcntl
import json
import os
import socket
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from harness.record.schema import Record, check, upgrade


def set_aside_unterminated_tail(path: str) -> Optional[Tuple[int, str]]:
    """Cut a last line that has no newline from ``path`` and append it to ``<path>.partial``.

    Returns ``(bytes moved, sidecar path)``, or None when the file ends cleanly (or is
    missing or empty). The fragment is kept, never deleted: it may be evidence.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if size == 0:
        return None
    with open(path, "r+b") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return None
        cut, end = 0, size
        while end > 0:  # the last newline, reading backwards a block at a time
            start = max(0, end - 65536)
            fh.seek(start)
            i = fh.read(end - start).rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            end = start
        fh.seek(cut)
        fragment = fh.read()
        sidecar = path + ".partial"
        with open(sidecar, "ab") as side:
            side.write(fragment + b"\n")
            side.flush()
            os.fsync(side.fileno())
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())
    return len(fragment), sidecar


class RecordWriter:
    """Append records to a JSONL file, one fsynced line per record.

    ``set_aside`` is ``(bytes, sidecar)`` when an unterminated last line was moved to
    the sidecar on opening (see ``set_aside_unterminated_tail``), else None.
    """

    def __init__(self, path: str):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.set_aside = set_aside_unterminated_tail(path)
        self._fh = open(path, "a", encoding="utf-8")

    def append(self, record: Any) -> None:
        """Write ``record`` (a ``Record``, or its dict, checked strictly) as one line."""
        if not isinstance(record, Record):
            record = Record.from_dict(record, strict=True)
        self._fh.write(record.to_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:  # the flush of a line that already failed (a full disk): that line is lost, and said so
            pass

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
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:  # one bad byte spoils its line, not the file
                yield lineno, None, "not UTF-8 (%s)" % exc
                continue
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


class OutputLocked(Exception):
    """Another live run holds the record file; the message names it."""


class OutputLock:
    """An exclusive lock on a record file for one run: ``<file>.lock`` holds the owner's pid,
    host and start time, and an advisory ``flock`` that the kernel drops when the owner
    dies, so a lock left by a killed run is stale by construction and taken over.
    """

    def __init__(self, records_path: str):
        self.path = records_path + ".lock"
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock or raise ``OutputLocked`` naming the holder."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputLocked("%s is being written by another run (%s); wait for it to finish or use another "
                               "--out" % (self.path[: -len(".lock")], holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("pid %d on %s since %s" % (os.getpid(), socket.gethostname(),
                                                   time.strftime("%Y-%m-%dT%H:%M:%S"))).encode("utf-8"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # The file stays (unlinking it would let a waiting opener lock a dead inode); empty = free.
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
