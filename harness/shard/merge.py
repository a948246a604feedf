"""Join the record folders of a sharded run (``torchmatrix merge SHARD_DIR... --out DIR``,
``harness.commands.merge``).

Each shard of ``run --shard K/N`` writes its own folder (``OUT/ENV_LABEL.jsonl`` as any run,
every record with a ``shard`` part: ``harness.record.parts.Shard``). The merge reads the
top-level ``*.jsonl`` of every folder, groups them by environment label (the file name)
and, for each environment, refuses with one line and exit 2, writing nothing, when:

* a line is not a record of this schema (a cut last line: finish the shard with ``--resume``),
  or has a field this version does not know (merged records are written in this schema);
* a record has no ``shard`` part (the folder is not the output of ``run --shard``);
* its records disagree on the scenario name, the scenario's content hash, the shard count
  or the split (shards run from different scenario files, ``--only`` filters, duration
  stores or model zoos);
* one shard comes from two files, or one case key occurs twice (within a file too: an
  ``--append`` run), naming the key and both places;
* a shard is missing (naming every missing one) or incomplete (fewer records than its
  cases: an interrupted run).

Then it writes ``DIR/ENV_LABEL.jsonl`` atomically: every record in the order of the
unsharded case list (``shard.position``), serialised by ``harness.record.schema`` (a current
record's line is unchanged), so merging the same shards again gives the same bytes and
a file already holding them is left alone. ``ENV_LABEL.env.json`` is copied from the
folder of shard 1; an environment with a skip note only (no records in any folder) gets
the first folder's note. The profiler traces the records name (``profile.trace_dir``,
``harness.runner.profile``) are copied beside them, so the report's links hold; a trace folder
missing from its shard is named in a note. ``--out`` may be new, hold other files, or hold an earlier merge
of the same split: a record file there of anything else (another scenario or split, an
unsharded run) is refused, never overwritten; other environments' files are not touched.
"""
import glob
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from harness.vocab import ExitCode

#: The part of a record's ``shard`` that every shard of one split shares.
_SHARED = ("count", "scenario_hash", "split_hash")


class MergeError(ValueError):
    """The shards cannot be merged; the message is one line naming the file, shard or case key."""


class _Env:
    """One environment's records across the shard folders, checked as they are read."""

    def __init__(self, label: str):
        self.label = label
        self.records: List[Tuple[Tuple[int, int], str, Dict]] = []  # ((round, position), case key, record)
        self.ref: Optional[Tuple[str, Dict]] = None  # (where, the first record) every other one must agree with
        self.shard_file: Dict[int, str] = {}
        self.shard_cases: Dict[int, int] = {}
        self.shard_records: Dict[int, int] = {}
        self.seen: Dict[Tuple[str, int], str] = {}  # (case key, round) -> where
        self.fingerprints: Dict[str, str] = {}
        self.traces: List[Tuple[str, str]] = []  # (shard folder, a record's profiler trace folder in it)

    def add(self, folder: str, path: str) -> None:
        from harness.record.schema import Record, check
        from harness.record.store import iter_records

        for lineno, rec, problem in iter_records(path):
            where = "%s:%d" % (path, lineno)
            if rec is None:
                raise MergeError("%s: %s" % (where, problem))
            strict = check(rec, strict=True)
            if strict:
                raise MergeError("%s: %s (written by another torchmatrix version? merge with that one)" % (
                    where, strict))
            key = rec.get("case_key") or Record.from_dict(rec).case.key
            part = rec.get("shard")
            if not part:
                raise MergeError("%s: case %s has no shard part: %s is not the output of `run --shard K/N`" % (
                    where, key, folder))
            self._agree(where, rec)
            index = part["index"]
            owner = self.shard_file.setdefault(index, path)
            if owner != path:
                raise MergeError("%s: shard %d/%d twice: in %s and %s" % (self.label, index, part["count"], owner,
                                                                        path))
            round_index = int((rec.get("round") or {}).get("index") or 1)  # a shard run in rounds: a record each
            if (key, round_index) in self.seen:
                raise MergeError("%s: case %s twice: %s and %s" % (self.label, key, self.seen[(key, round_index)],
                                                                   where))
            self.seen[(key, round_index)] = where
            self.shard_cases[index] = part["cases"]
            if round_index == 1:  # a complete shard has each of its cases' first round
                self.shard_records[index] = self.shard_records.get(index, 0) + 1
            fingerprint = (rec.get("env") or {}).get("fingerprint")
            if fingerprint:
                self.fingerprints.setdefault(fingerprint, where)
            self.records.append(((round_index, part["position"]), key, rec))
            trace_dir = (rec.get("profile") or {}).get("trace_dir")
            if trace_dir:
                self.traces.append((folder, trace_dir))

    def _agree(self, where: str, rec: Dict) -> None:
        if self.ref is None:
            self.ref = (where, rec)
            return
        ref_where, ref = self.ref
        if rec.get("scenario") != ref.get("scenario"):
            raise MergeError("%s: scenario %r, but %s has %r: shards of different scenarios" % (
                where, rec.get("scenario"), ref_where, ref.get("scenario")))
        for name in _SHARED:
            got, want = rec["shard"][name], ref["shard"][name]
            if got != want:
                why = {"count": "shards of splits into different numbers of shards",
                       "scenario_hash": "the shards ran different contents of the scenario file; run every shard "
                                        "from the same one",
                       "split_hash": "the shards split the cases differently: run every shard with the same "
                                     "--only, --shard-durations and torchmatrix commit"}[name]
                raise MergeError("%s: shard.%s %r, but %s has %r: %s" % (where, name, got, ref_where, want, why))

    def check_complete(self) -> None:
        """Every shard 1..N present, each with a record of each of its cases."""
        count = self.ref[1]["shard"]["count"]
        missing = [k for k in range(1, count + 1) if k not in self.shard_file]
        if missing:
            raise MergeError("%s: shard%s %s of %d missing (found %s); give every shard's folder" % (
                self.label, "s" if len(missing) > 1 else "", ", ".join(map(str, missing)), count,
                ", ".join("%d in %s" % (k, os.path.dirname(p) or ".") for k, p in sorted(self.shard_file.items()))))
        for index in sorted(self.shard_file):
            if self.shard_records[index] != self.shard_cases[index]:
                raise MergeError("%s: shard %d/%d in %s holds %d of its %d cases (an interrupted run? finish it "
                                 "with `run --shard %d/%d --resume`)" % (
                                     self.label, index, count, self.shard_file[index], self.shard_records[index],
                                     self.shard_cases[index], index, count))

    def text(self) -> str:
        """The merged record file: the records in the unsharded case order."""
        from harness.record.schema import Record

        ordered = sorted(self.records, key=lambda r: r[:2])  # ((round, position), key): the unsharded order
        return "".join(Record.from_dict(rec).to_json() + "\n" for _, _, rec in ordered)


def _folders(shard_dirs: Sequence[str], out_dir: str) -> List[str]:
    seen: Dict[str, str] = {}
    for folder in shard_dirs:
        if not os.path.isdir(folder):
            raise MergeError("%s: %s" % (folder, "a file, not a shard's output folder" if os.path.exists(folder)
                                         else "no such folder"))
        real = os.path.realpath(folder)
        if real in seen:
            raise MergeError("%s: given twice (also as %s)" % (folder, seen[real]))
        seen[real] = folder
    if os.path.realpath(out_dir) in seen:
        raise MergeError("--out %s: is one of the shard folders; merge into another folder" % out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise MergeError("--out %s: is a file, not a folder for record files" % out_dir)
    return list(shard_dirs)


def _check_out_file(path: str, env: _Env) -> Optional[bytes]:
    """The bytes of an earlier merge of the same split at ``path`` (None when there is no file);
    ``MergeError`` when it holds anything else."""
    from harness.record.store import iter_records

    if not os.path.exists(path):
        return None
    ref = env.ref[1]
    for lineno, rec, problem in iter_records(path):
        part = (rec or {}).get("shard") or {}
        if rec is None or rec.get("scenario") != ref.get("scenario") or any(
                part.get(name) != ref["shard"][name] for name in _SHARED):
            raise MergeError("--out: %s:%d holds another store's records (%s), not an earlier merge of these shards; "
                             "merge into another folder" % (path, lineno, problem or "scenario %r%s" % (
                                 rec.get("scenario"), ", not sharded" if not part else ", another split")))
    with open(path, "rb") as fh:
        return fh.read()


def _read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _plan_traces(env: "_Env", out_dir: str, plan: List) -> List[str]:
    """Add the files of every profiler trace folder the environment's records name (``profile.trace_dir``,
    relative to the shard folder) to ``plan``, copied to the same place under ``out_dir``; return the
    folders that are missing (a shard artifact uploaded without its traces)."""
    missing = []
    for folder, trace_dir in env.traces:
        src = os.path.join(folder, *trace_dir.split("/"))
        if not os.path.isdir(src):
            missing.append(src)
            continue
        for name in sorted(os.listdir(src)):
            if os.path.isfile(os.path.join(src, name)):
                dst = os.path.join(out_dir, *trace_dir.split("/"), name)
                plan.append((dst, _read_bytes(os.path.join(src, name)), _read_bytes(dst)))
    return missing


def merge_shards(shard_dirs: Sequence[str], out_dir: str, print_fn=print) -> int:
    """Check the shard folders and write the merged store to ``out_dir`` (see the module docstring)."""
    from harness.fileio import atomic_write_bytes

    try:
        folders = _folders(shard_dirs, out_dir)
        files: Dict[str, List[Tuple[str, str]]] = {}
        notes: Dict[str, str] = {}  # label -> the first folder's ENV_LABEL.env.json
        for folder in folders:
            for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
                files.setdefault(os.path.basename(path)[: -len(".jsonl")], []).append((folder, path))
            for path in sorted(glob.glob(os.path.join(folder, "*.env.json"))):
                notes.setdefault(os.path.basename(path)[: -len(".env.json")], path)
        envs: List[_Env] = []
        for label in sorted(files):
            env = _Env(label)
            for folder, path in files[label]:
                env.add(folder, path)
            if env.ref is None:  # empty files only: a skipped environment, like one with a note alone
                continue
            env.check_complete()
            envs.append(env)
        if not envs:
            raise MergeError("%s: no records in any *.jsonl file of these folders" % ", ".join(folders))
        plan = []  # (path, new bytes, old bytes) for every file to write, all checked before the first write
        missing_traces: Dict[str, List[str]] = {}
        for env in envs:
            path = os.path.join(out_dir, env.label + ".jsonl")
            plan.append((path, env.text().encode("utf-8"), _check_out_file(path, env)))
            first = os.path.join(os.path.dirname(env.shard_file[1]), env.label + ".env.json")
            if os.path.exists(first):
                note = os.path.join(out_dir, env.label + ".env.json")
                plan.append((note, _read_bytes(first), _read_bytes(note)))
            missing_traces[env.label] = _plan_traces(env, out_dir, plan)
        merged = {env.label for env in envs}
        for label, src in sorted(notes.items()):
            if label not in merged and not os.path.exists(os.path.join(out_dir, label + ".jsonl")):
                note = os.path.join(out_dir, label + ".env.json")
                plan.append((note, _read_bytes(src), _read_bytes(note)))
    except MergeError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return ExitCode.INPUT
    except OSError as exc:
        print("error: cannot read %s: %s" % (exc.filename or "the shards", exc.strerror or exc), file=sys.stderr)
        return ExitCode.INPUT
    try:
        os.makedirs(out_dir, exist_ok=True)
        for path, data, old in plan:
            if data != old:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write_bytes(path, data)
    except OSError as exc:
        print("error: cannot write to %s: %s" % (out_dir, exc.strerror or exc), file=sys.stderr)
        return ExitCode.INPUT
    changed = {path for path, data, old in plan if data != old}
    for env in envs:
        path = os.path.join(out_dir, env.label + ".jsonl")
        print_fn("%s: %d shards, %d records -> %s%s" % (env.label, len(env.shard_file), len(env.records), path,
                                                        "" if path in changed else " (unchanged)"))
        if env.traces:
            print_fn("   %d profiler trace folders -> %s" % (len(env.traces) - len(missing_traces[env.label]),
                                                           os.path.join(out_dir, "profiles", env.label)))
        for folder in missing_traces[env.label]:
            print_fn("   note: %s is named by a record but missing: its trace is not in the merged store" % folder)
        if len(env.fingerprints) > 1:
            print_fn("   note: the shards ran in %d different environments (fingerprints %s): their timings are not "
                     "comparable with each other" % (len(env.fingerprints), ", ".join(sorted(env.fingerprints))))
    return ExitCode.OK
