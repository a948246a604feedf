"""The record files: one JSONL file per (run, environment), appended one record a line.

Writing is append-only, flushed and fsynced per line: a crash or kill loses at most
the case in flight. A writer that finds an unterminated last line (a kill mid-write, a
full disk) moves it to ``<file>.partial`` before appending, so no record is glued to a
fragment. Reading tolerates bad lines and reports each as ``(line, None, problem)``;
what a good record is comes from ``harness.record.schema``. Instruction counts, made after the
timed rounds (``harness.engine.coordinator``), go to a counts file beside the record file
(``counts_path``: ``<label>.counts``, one ``{"case_key", "round", "instructions"}`` a line,
appended and fsynced the same way); reading a record file merges them into its records' ``instructions``
part, so every reader sees one record. The extras a run of several rounds or variants makes after its
timed rounds (the FLOPs and the tensor peak) go to the extras file (``extras_path``: ``<label>.extras``,
one ``{"case_key", "round", "flops", "memory", "extras"}`` a line) and are merged the same way
(``merge_after_rounds``). ``OutputLock`` keeps a second run
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


#: The counts file of a record file: ``<label>.counts`` beside ``<label>.jsonl`` (not ``*.jsonl``: the
#: analysis side reads every ``*.jsonl`` of a folder as records).
COUNTS_SUFFIX = ".counts"


#: The extras file of a record file: ``<label>.extras`` (the pass after the timed rounds).
EXTRAS_SUFFIX = ".extras"
#: Every file beside a record file that reading it merges, or that moves with it.
SIDE_SUFFIXES = (COUNTS_SUFFIX, EXTRAS_SUFFIX)


def side_path(path: str, suffix: str) -> str:
    """The file beside the record file ``path`` with ``suffix`` (``COUNTS_SUFFIX``, ``EXTRAS_SUFFIX``)."""
    return (path[:-len(".jsonl")] if path.endswith(".jsonl") else path) + suffix


def counts_path(path: str) -> str:
    """The counts file of the record file ``path``."""
    return side_path(path, COUNTS_SUFFIX)


def extras_path(path: str) -> str:
    """The extras file of the record file ``path``."""
    return side_path(path, EXTRAS_SUFFIX)


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


class SideWriter(RecordWriter):
    """Append ``{"case_key", "round", ...}`` lines to a file beside a record file (``side_path``), one
    fsynced line each, as the record file itself."""

    def __init__(self, record_path: str, suffix: str):
        super().__init__(side_path(record_path, suffix))

    def append(self, entry: Dict[str, Any]) -> None:  # type: ignore[override]
        """Write ``entry`` as one line."""
        self._fh.write(json.dumps(entry, sort_keys=True, allow_nan=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())


class CountsWriter(SideWriter):
    """Append instruction counts (``{"case_key", "round", "instructions"}``) to a record file's counts file."""

    def __init__(self, record_path: str):
        super().__init__(record_path, COUNTS_SUFFIX)


class ExtrasWriter(SideWriter):
    """Append the pass after the rounds' parts (``{"case_key", "round", "flops", "memory", "extras"}``) to a
    record file's extras file."""

    def __init__(self, record_path: str):
        super().__init__(record_path, EXTRAS_SUFFIX)


def _read_side(path: str) -> Dict[Tuple[str, int], Dict]:
    """``{(case key, round): entry}`` of the side file ``path`` (missing: empty); unreadable lines are
    skipped (an entry cut by a kill is made again on ``--resume``)."""
    found: Dict[Tuple[str, int], Dict] = {}
    try:
        fh = open(path, "rb")
    except OSError:
        return found
    with fh:
        for raw in fh:
            try:
                entry = json.loads(raw.decode("utf-8"))
                found[(str(entry["case_key"]), int(entry["round"]))] = dict(entry)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue
    return found


def read_counts(path: str) -> Dict[Tuple[str, int], Dict]:
    """``{(case key, round): instructions part}`` of the record file ``path``'s counts file (none: empty)."""
    found = {}
    for key, entry in _read_side(counts_path(path)).items():
        if isinstance(entry.get("instructions"), dict):
            found[key] = dict(entry["instructions"])
    return found


def read_after_rounds(path: str) -> Dict[Tuple[str, int], Dict]:
    """``{(case key, round): {"flops", "memory", "extras"}}`` of the record file ``path``'s extras file."""
    return _read_side(extras_path(path))


def merge_after_rounds(rec: Dict, entry: Dict) -> Dict:
    """``rec`` (a first-round record whose ``extras.deferred`` names what the pass after the rounds ran) with
    that pass's ``entry``: its ``flops`` part, its tensor-peak fields added to ``memory``, its extras'
    seconds and failures added to ``extras`` (which keeps ``deferred``: where they ran)."""
    merged = dict(rec)
    if entry.get("flops") is not None:
        merged["flops"] = entry["flops"]
    if entry.get("memory"):
        merged["memory"] = dict(rec.get("memory") or {}, **entry["memory"])
    done = entry.get("extras") or {}
    part = dict(rec.get("extras") or {})
    for name in ("seconds", "failed"):
        part[name] = dict(part.get(name) or {}, **(done.get(name) or {}))
    merged["extras"] = part
    return merged


def _round_of(rec: Dict) -> int:
    return int((rec.get("round") or {}).get("index") or 1)


def iter_records(path: str, loads=None) -> Iterator[Tuple[int, Optional[Dict], Optional[str]]]:
    """Yield ``(line_number, record, problem)`` for each non-blank line of ``path``.

    ``record`` is None and ``problem`` says why when a line is not a record of a
    readable schema version (a truncated last line after a kill, a field of the wrong
    type). ``loads`` is a faster parser to try first (the analysis side passes
    orjson's); lines it refuses, such as the NaN/Infinity that ``json`` writes, fall
    back to ``json.loads``. Records are returned lifted to ``SCHEMA_VERSION``, with their counts from
    the counts file (``read_counts``) where the record has none.
    """
    counts = read_counts(path)
    after = read_after_rounds(path)
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
                continue
            counted = counts.get((rec.get("case_key"), _round_of(rec))) \
                if counts and not rec.get("instructions") else None
            if counted is not None and check(dict(rec, instructions=counted)) is None:
                rec = dict(rec, instructions=counted)
            made = after.get((rec.get("case_key"), _round_of(rec))) \
                if after and (rec.get("extras") or {}).get("deferred") else None
            if made is not None:
                merged = merge_after_rounds(rec, made)
                if check(merged) is None:
                    rec = merged
            yield lineno, upgrade(rec), None


def read_records(path: str) -> List[Dict]:
    """Every good record of ``path`` (bad lines are skipped; see ``iter_records``)."""
    return [rec for _, rec, _ in iter_records(path) if rec is not None]


def rotate_aside(path: str) -> Optional[str]:
    """Move an earlier run's records aside (never delete them); return the new place."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(os.path.getmtime(path)))
    dest_dir = os.path.join(os.path.dirname(path), "previous", stamp)
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, os.path.basename(path))
    os.replace(path, dest)
    for suffix in SIDE_SUFFIXES:
        if os.path.exists(side_path(path, suffix)):
            os.replace(side_path(path, suffix), os.path.join(dest_dir, os.path.basename(side_path(path, suffix))))
    env_json = path[: -len(".jsonl")] + ".env.json"
    if os.path.exists(env_json):
        os.replace(env_json, os.path.join(dest_dir, os.path.basename(env_json)))
    # the traces go with their records: a record names its trace folder relative to its own folder
    traces = os.path.join(os.path.dirname(path), "profiles", os.path.basename(path)[: -len(".jsonl")])
    if os.path.isdir(traces):
        os.makedirs(os.path.join(dest_dir, "profiles"), exist_ok=True)
        os.replace(traces, os.path.join(dest_dir, "profiles", os.path.basename(traces)))
    return dest


def write_env_json(out_dir: str, label: str, env: Dict, status: str = "ok", reason: Optional[str] = None) -> None:
    """``OUT/LABEL.env.json``: the environment's versions, or why it was skipped."""
    from harness.fileio import atomic_write_text

    doc = {"env_label": label, "status": status, "reason": reason, "versions": env}
    atomic_write_text(os.path.join(out_dir, label + ".env.json"), json.dumps(doc, indent=1, sort_keys=True))


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
